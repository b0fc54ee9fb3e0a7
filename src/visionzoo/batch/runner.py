"""`extract`: features of any number of images streamed to feature files, resumable.

The inputs (sorted) are cut into fixed partitions; each partition becomes one shard per model,
written atomically when its last batch is done. Memory holds one partition at most, a crash
loses at most the partitions in flight, and `resume=True` skips every shard that exists.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from ..cpus import default_workers, usable_cpus
from ..data.inputs import absolute, common_root, expand_inputs
from ..data.video import Sampling
from ..errors import UsageError
from ..progress import progress_bar
from ..store import Location, finalize, finished_shards, layout_for
from ..store.manifest import read_json
from ..store.shards import sweep_killed_writes
from ..versions import package_versions
from ..zoo.spec import DEFAULT_LAYER
from .config import ExtractConfig, ExtractResult
from .models import feature_model
from .partition import BatchPlan, Job, computed_batches, flush, n_partitions
from .reader import frame_items

# Keys that must agree between an interrupted run and its resumption.
_RESUME_KEYS = ("model", "weights_sha256", "layer", "pool", "normalize", "dtype", "dim", "partition_size", "inputs",
                "precision", "calibration")
_RESUME_DEFAULTS = {"precision": "fp32"}   # files written before precision was recorded are fp32


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(name).name or name)


def _outputs(out: Location, names: list[str | None], fmt: str | None) -> list[Location]:
    if len(names) == 1:
        return [out]
    suffix = {"npy": ".npy", "pkl": ".pkl"}.get(fmt or "", "")
    return [out / (_safe_name(n) + suffix) for n in names]  # several models: OUT is a folder


def _inputs_key(files: Sequence[str]) -> dict[str, Any]:
    return {"count": len(files), "sha256": hashlib.sha256("\n".join(files).encode()).hexdigest()}


def _prepare(name: str | None, out: Location, files: list[str], cfg: ExtractConfig, threads: int) -> Job:
    layout = layout_for(out, cfg.format)
    if layout.exists() and not cfg.resume:
        raise UsageError(f"{layout.out} already exists; pass --resume to finish an interrupted run, or choose another --out")
    fm = feature_model(name, cfg.layer, cfg.pool, cfg.normalize, backend=cfg.backend, device=cfg.device,
                       threads=threads, precision=cfg.precision, calibration=cfg.calibration)
    manifest = {
        "format_version": 1,
        "model": str(name) if name is not None else fm.spec["name"],
        "spec": fm.spec,
        "weights_sha256": fm.weights_sha256,
        "preprocessing": fm.spec["preprocessing"],
        "layer": cfg.layer,
        "pool": cfg.pool,
        "normalize": cfg.normalize,
        "dim": fm.dim,
        "dtype": cfg.dtype,
        "format": layout.fmt,
        "backend": fm.backend,
        "precision": fm.precision,
        "calibration": fm.calibration,
        "partition_size": cfg.partition_size,
        "inputs": _inputs_key(files),
        "root": common_root(files),
        "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": "running",
    }
    previous = None
    if layout.complete():
        previous = read_json(layout.manifest)
    elif layout.running_manifest.is_file():
        previous = read_json(layout.running_manifest)
    if previous is not None:
        changed = [k for k in _RESUME_KEYS if previous.get(k, _RESUME_DEFAULTS.get(k)) != manifest[k]]
        was = previous.get("precision", "fp32")
        if was != manifest["precision"]:
            raise UsageError(f"cannot resume {layout.out}: it holds {was} features and this run asks for "
                             f"{manifest['precision']}; the two are not comparable and are never mixed in one file "
                             f"(resume with --precision {was}, or choose another --out)")
        if changed:
            raise UsageError(f"cannot resume {layout.out}: it was made with other {', '.join(changed)} "
                             f"(resume needs the same inputs and settings); choose another --out")
        manifest["created"] = previous.get("created", manifest["created"])
    sweep_killed_writes(layout.shards)
    done = set(range(n_partitions(len(files), cfg.partition_size))) if layout.complete() else finished_shards(layout.shards)
    return Job(layout, fm.runner, fm.preprocessing, manifest, done, parallel=fm.parallel)


def extract(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    model: str | os.PathLike | Sequence[str] | None = None,
    *,
    layer: str = DEFAULT_LAYER,
    pool: str | None = None,
    normalize: bool = False,
    format: str | None = None,  # noqa: A002 - the CLI's --format
    dtype: str = "float32",
    batch_size: int | None = None,
    workers: int | None = None,
    backend: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    resume: bool = False,
    partition_size: int = 1024,
    progress: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    num_workers: int | None = None,
    sampling: Sampling | None = None,
    precision: str = "fp32",
    calibration: str | os.PathLike | None = None,
) -> ExtractResult:
    """Extract features of files, folders (recursive) or globs into feature file(s) at `out`.

    `model` may name several models ("a,b" or a list): each image is decoded once and `out`
    becomes a folder with one feature file per model. An existing `out` is an error unless
    `resume=True`, which computes only the partitions not yet written. `engine="ray"` computes
    the same partitions as Ray tasks (`ray_address`, `num_workers`), with the same output.
    Videos give the frames `sampling` keeps, as rows keyed `PATH#t=SECONDS`. `precision="int8"`
    runs the ONNX export quantized on the photos of `calibration` (a folder; None: bundled photos),
    recorded in the manifest.
    """
    cfg = ExtractConfig(model=model, layer=layer, pool=pool, normalize=normalize, format=format, dtype=dtype,
                        batch_size=batch_size, workers=workers, backend=backend, device=device, threads=threads,
                        resume=resume, partition_size=partition_size, progress=progress, engine=engine,
                        ray_address=ray_address, num_workers=num_workers, sampling=sampling or Sampling(),
                        precision=precision, calibration=None if calibration is None else os.fspath(calibration))
    return run(inputs, out, cfg)


def run(inputs, out: str | os.PathLike, cfg: ExtractConfig) -> ExtractResult:
    start = time.perf_counter()
    cfg.check()
    listed = expand_inputs(inputs, videos=True)
    # rows name their images (and video frames, PATH#t=SECONDS) from anywhere (the manifest's "root")
    files = frame_items(absolute(listed.files), cfg.sampling)
    names = cfg.model_names()
    # Inference gets every core: ONNX Runtime as one decode + infer pipeline per core; PyTorch as
    # a pool of that many threads, with `workers` decoding threads beside it.
    threads = cfg.threads or usable_cpus()
    jobs = [_prepare(n, o, files, cfg, threads) for n, o in zip(names, _outputs(Location.of(out), names, cfg.format))]

    # Pipelines run 8 images a call (as fast as 16 or 32 there, and half the activation memory).
    cfg = replace(cfg, batch_size=cfg.batch_size or (8 if min(j.parallel for j in jobs) > 1 else 16))
    workers = default_workers(len(files), cfg.batch_size) if cfg.workers is None else cfg.workers
    bounds = [(k, k * cfg.partition_size, min(len(files), (k + 1) * cfg.partition_size))
              for k in range(n_partitions(len(files), cfg.partition_size))]
    pending = [(k, a, b) for k, a, b in bounds if any(k not in j.done for j in jobs)]
    for job in jobs:
        if pending and any(k not in job.done for k, _, _ in pending):
            job.layout.start(job.manifest)

    plan = BatchPlan(pending, cfg.batch_size)
    n_pending = sum(b - a for _, a, b in pending)
    in_flight: dict[int, list[tuple[str, str]]] = {}  # failures of partitions not yet written
    with progress_bar(total=n_pending, unit="img", disable=not cfg.progress, desc="extract") as bar:
        if cfg.engine == "ray":  # the same partitions as Ray tasks, each reader -> model -> shard writer
            from .ray_engine import run_partitions

            run_partitions(files, jobs, pending, cfg, bar.update)
            plan = BatchPlan([], cfg.batch_size)
        for batch, (k, last) in zip(computed_batches(files, jobs, plan, workers), plan.ends()):
            in_flight.setdefault(k, []).extend((files[i], reason) for i, reason in batch.failures)
            for job, rows in zip(jobs, batch.outputs or [None] * len(jobs)):
                if k in job.done:
                    continue
                if rows is not None:
                    job.rows.append(rows)
                    job.paths += [files[i] for i in batch.indices]
                if last:
                    flush(job, k, in_flight[k], cfg.dtype)
            if last:
                del in_flight[k]
            bar.update(len(batch.indices) + len(batch.failures))

    results = [read_json(j.layout.manifest) if j.layout.complete() else finalize(j.layout, j.manifest) for j in jobs]
    first = results[0]
    return ExtractResult(
        outputs=[str(j.layout.out) for j in jobs],
        total=len(files),
        count=int(first["count"]),
        computed=n_pending,
        failures=[(f["path"], f["reason"]) for f in first["failures"]],
        skipped=listed.skipped,
        backends=[j.manifest["backend"] + (" int8" if j.manifest["precision"] == "int8" else "") for j in jobs],
        seconds=time.perf_counter() - start,
    )
