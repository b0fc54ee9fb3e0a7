"""One partition's work, the same under every engine: decode its batches, run every model of the
run on them, and write each model's rows as the partition's shard (atomically, so a shard that
exists is complete and `--resume` skips it)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

import numpy as np

from ..store import Layout, write_shard
from .reader import MultiBatch, iter_multi_batches


@dataclass
class Job:
    """One model's share of the run."""

    layout: Layout
    runner: Any
    preprocessing: Any
    manifest: dict[str, Any]
    done: set[int]
    rows: list[np.ndarray] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    parallel: int = 1          # threads that may call `runner` at once


class BatchPlan:
    """Batches of positions over the pending partitions, generated lazily (flat memory for any N)."""

    def __init__(self, pending: list[tuple[int, int, int]], batch_size: int):
        self.pending, self.batch_size = pending, batch_size

    def __len__(self) -> int:
        return sum(-(-(b - a) // self.batch_size) for _, a, b in self.pending)

    def __iter__(self):
        for _, a, b in self.pending:
            for s in range(a, b, self.batch_size):
                yield list(range(s, min(b, s + self.batch_size)))

    def ends(self):
        """(partition, is its last batch) for each batch, in the same order."""
        for k, a, b in self.pending:
            for s in range(a, b, self.batch_size):
                yield k, s + self.batch_size >= b


def n_partitions(n: int, size: int) -> int:
    return (n + size - 1) // size


def computed_batches(files: Sequence[str], jobs: list[Job], plan: BatchPlan, workers: int) -> Iterator[MultiBatch]:
    """The plan's batches, decoded and run through every job's model (`batch.outputs`, one per job).

    Runners that take calls from several threads (ONNX Runtime on CPU) get one pipeline per
    thread, decoding and inferring a batch each; otherwise `workers` threads decode ahead while
    this thread runs the model (PyTorch, GPUs).
    """
    if not len(plan):
        return iter(())
    preps = list(dict.fromkeys(j.preprocessing for j in jobs))

    def infer(tensors: list[np.ndarray]) -> list[np.ndarray]:
        return [j.runner(tensors[preps.index(j.preprocessing)]) for j in jobs]

    pipelines = min(j.parallel for j in jobs)
    if pipelines > 1:
        return iter_multi_batches(files, preps, plan, pipelines, infer=infer)
    return (replace(b, outputs=infer(b.tensors) if b.tensors is not None else None)
            for b in iter_multi_batches(files, preps, plan, workers))


def flush(job: Job, k: int, failures: list[tuple[str, str]], dtype: str) -> None:
    """Write partition k of one model as a shard and forget its rows."""
    dim = job.manifest["dim"]
    matrix = np.concatenate(job.rows) if job.rows else np.zeros((0, dim), np.float32)
    write_shard(job.layout.shards, k, job.paths, matrix, failures, dtype=dtype, manifest=job.manifest)
    job.rows, job.paths = [], []
    job.done.add(k)
