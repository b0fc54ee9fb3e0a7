"""The reader: decode each image once, in background threads, for every model of the run.

Batches never straddle partitions, so the runner can write a partition's shard as soon as its
last batch is back. Models that share preprocessing share the decoded image too.

Threads, not processes: PIL's JPEG decoding and resizing release the GIL, so a thread decodes
beside ONNX Runtime's inference threads with no second Python (no forked torch, no tensor
copies between processes: peak memory stays one process). The transform is the one classify
and embed use, so extract's features equal theirs.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch

from ..data import eval_transform
from ..data.decode import ImageDecodeError, load_rgb
from ..zoo import Preprocessing


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(n_images: int, batch_size: int) -> int:
    """Decoding threads: none for a single batch; else about a quarter of the cores (at least one).

    Decoding a ~500 px JPEG and its transform cost ~5 ms of one core, a light CNN's forward
    pass ~17 ms of CPU on ONNX Runtime, so one decoding thread keeps 2-4 cores of inference fed.
    """
    if n_images <= batch_size:
        return 0
    return max(1, min(16, usable_cpus() // 4))


@dataclass
class MultiBatch:
    indices: list[int]                        # positions in the input list of the decoded images
    tensors: list[torch.Tensor] | None        # one (len(indices), C, H, W) per preprocessing
    failures: list[tuple[int, str]] = field(default_factory=list)


def _read_batch(paths: Sequence[str], preps: list[Callable], target: int, positions: list[int]) -> MultiBatch:
    good, failures = [], []
    for i in positions:
        try:
            img = load_rgb(paths[i], target)
            good.append((i, [p(img) for p in preps]))
        except ImageDecodeError as exc:
            failures.append((i, exc.reason))
        except Exception as exc:  # noqa: BLE001 - a transform choking on a pathological image
            failures.append((i, f"preprocessing failed ({type(exc).__name__}: {exc})"))
    tensors = [torch.stack([ims[k] for _, ims in good]) for k in range(len(preps))] if good else None
    return MultiBatch([i for i, _ in good], tensors, failures)


def iter_multi_batches(
    paths: Sequence[str],
    preprocessings: Sequence[Preprocessing],
    batches: Sequence[list[int]],
    workers: int,
) -> Iterator[MultiBatch]:
    """Yield one MultiBatch per entry of `batches` (lists of positions), in that order.

    `workers` threads decode up to `workers + 1` batches ahead of the consumer; 0 decodes inline.
    """
    target = max(p.resize_size for p in preprocessings)
    preps = [eval_transform(p) for p in preprocessings]
    if workers <= 0:
        for positions in batches:
            yield _read_batch(paths, preps, target, positions)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="vz-decode") as pool:
        ahead: deque = deque()
        todo = iter(batches)
        for positions in todo:
            ahead.append(pool.submit(_read_batch, paths, preps, target, positions))
            if len(ahead) > workers:
                break
        while ahead:
            batch = ahead.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                ahead.append(pool.submit(_read_batch, paths, preps, target, nxt))
            yield batch
