"""The Ray engine: the local runner's partitions as Ray tasks, on this machine or an existing cluster.

Each task runs the local runner's per-partition steps (reader -> model -> shard writer) and writes
its shard atomically into the same folder, so the rows, their order, the manifest and `--resume`
are the same whichever engine computed a partition. A task whose worker or node dies is retried
(Ray's max_retries); a task that raises stops the run, and `--resume` under either engine
finishes it. Every node must see the inputs and the output at the same paths: a shared
filesystem, or URIs of an object store (s3://, gs://; store/location.py) that each worker opens
with its own credentials; workers load each model once and keep it for the partitions that follow.

Ray is an optional dependency (`pip install 'visionzoo[ray]'`), imported only here.
"""
from __future__ import annotations

import math
import os
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ..cpus import default_workers, usable_cpus
from ..data.inputs import absolute as absolute_paths
from ..errors import UsageError
from .config import ExtractConfig
from .partition import BatchPlan, Job, computed_batches, flush

if TYPE_CHECKING:
    from ..tasks.classify import ImageResult

MAX_RETRIES = 3                       # per task, for workers or nodes that die (not for exceptions)
LOCAL_OBJECT_STORE = 128 * 1024**2    # tasks pass file names and small results only


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install 'visionzoo[ray]'") from None
    return ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Ray, connected: to `address` ("auto", "HOST:6379", "ray://HOST:10001"; $RAY_ADDRESS when
    unset), to the Ray this process already started, or to a small local Ray that ends with the run."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        if address or os.environ.get("RAY_ADDRESS"):
            ray.init(address=address, logging_level="WARNING")
        else:
            ray.init(num_cpus=usable_cpus(), object_store_memory=LOCAL_OBJECT_STORE, include_dashboard=False,
                     logging_level="ERROR")  # not its notes on cluster security: this one ends with the run
    except ConnectionError as exc:
        raise UsageError(f"cannot reach a Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class Placement:
    """How many tasks run at once and what each one asks Ray for."""

    workers: int
    cpus: int
    gpus: int

    def decoders(self, n_images: int, batch_size: int, asked: int | None) -> int:
        """Decoding processes in a task: the local runner's choice, within the task's CPUs."""
        return asked if asked is not None else max(0, min(default_workers(n_images, batch_size), self.cpus - 1))


def placement(ray, num_workers: int | None, device: str) -> Placement:
    """One task per GPU when the cluster has GPUs (and the device allows), else one per node,
    each with an equal share of the CPUs (never more than the largest node has)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    use_gpus = int(total.get("GPU", 0)) if device == "auto" or device.startswith("cuda") else 0
    if device.startswith("cuda") and not use_gpus:
        raise UsageError(f"--device {device}: the Ray cluster has no GPU")
    workers = num_workers or use_gpus or max(1, len(nodes))
    largest = max((int(n["Resources"].get("CPU", 0)) for n in nodes), default=1)
    cpus = max(1, min(largest, int(total.get("CPU", 1)) // workers))
    return Placement(workers, cpus, 1 if use_gpus else 0)


def _run_tasks(ray, task, calls: Sequence[tuple], place: Placement, on_done: Callable[[int, Any], None]) -> None:
    """Submit `task(*args)` for each args of `calls` in order, `place.workers` in flight at once;
    `on_done(index, result)` as each finishes. A task's exception stops the run (the others are
    cancelled; the shards they already wrote stay)."""
    remote = ray.remote(task).options(num_cpus=place.cpus, num_gpus=place.gpus, max_retries=MAX_RETRIES)
    queue, running = deque(enumerate(calls)), {}
    try:
        while queue or running:
            while queue and len(running) < place.workers:
                i, args = queue.popleft()
                running[remote.remote(*args)] = i
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                on_done(running.pop(ref), ray.get(ref))
    finally:
        for ref in running:
            ray.cancel(ref)


# --------------------------------------------------------------------------- extract
@dataclass(frozen=True)
class _TaskOptions:
    batch_size: int
    workers: int
    threads: int
    backend: str
    device: str
    dtype: str


_MODELS: dict[tuple, Any] = {}  # per worker process: its FeatureModels, loaded once


def _feature_model(name: str, manifest: dict[str, Any], opts: _TaskOptions) -> Any:
    """The run's model in this worker, loaded once; refuses weights or preprocessing that differ
    from the driver's (another version on this node would silently change the features)."""
    key = (name, manifest["weights_sha256"], manifest["layer"], manifest["pool"], manifest["normalize"],
           opts.backend, opts.device, opts.threads, manifest.get("precision", "fp32"))
    if key not in _MODELS:
        from .models import feature_model

        cal = manifest.get("calibration") or {}
        fm = feature_model(name, manifest["layer"], manifest["pool"], manifest["normalize"], backend=opts.backend,
                           device=opts.device, threads=opts.threads, precision=manifest.get("precision", "fp32"),
                           calibration=None if cal.get("source", "bundled") == "bundled" else cal["source"])
        if fm.weights_sha256 != manifest["weights_sha256"]:
            raise UsageError(f"model {name!r} on this Ray node has other weights than on the driver")
        if fm.calibration != manifest.get("calibration"):
            raise UsageError(f"the int8 calibration photos of model {name!r} differ on this Ray node from the driver's")
        if fm.spec["preprocessing"] != manifest["preprocessing"]:
            raise UsageError(f"model {name!r} on this Ray node has other preprocessing than on the driver")
        _MODELS[key] = fm
    return _MODELS[key]


def _extract_partition(k: int, names: list[str], read: list[str], jobs: list[tuple[str, Any, dict]],
                       opts: _TaskOptions) -> dict[str, Any]:
    """One Ray task: partition k (files `names`, read from `read`) for each (model, layout,
    manifest) still missing it, written as the local runner writes it."""

    start = time.perf_counter()
    built = []
    for name, layout, manifest in jobs:
        fm = _feature_model(name, manifest, opts)
        built.append(Job(layout, fm.runner, fm.preprocessing, {**manifest, "backend": fm.backend}, set(),
                          parallel=fm.parallel))
    loaded = time.perf_counter()
    failures: list[tuple[str, str]] = []
    plan = BatchPlan([(k, 0, len(read))], opts.batch_size)
    for batch in computed_batches(read, built, plan, opts.workers):
        failures += [(names[i], reason) for i, reason in batch.failures]
        for job, rows in zip(built, batch.outputs or []):
            job.rows.append(rows)
            job.paths += [names[i] for i in batch.indices]
    for job in built:
        flush(job, k, failures, opts.dtype)
    return {"partition": k, "backends": [j.manifest["backend"] for j in built], "pid": os.getpid(),
            "load_s": loaded - start, "compute_s": time.perf_counter() - loaded}


def run_partitions(files: list[str], jobs: list[Job], pending: list[tuple[int, int, int]], cfg: ExtractConfig,
                   progress: Callable[[int], Any]) -> list[dict[str, Any]]:
    """Compute the `pending` partitions (k, start, stop) of `files` for `jobs` as Ray tasks.

    Returns each task's report (partition, backends, load and compute seconds), in finishing order.
    """
    if not pending:
        return []
    reports: list[dict[str, Any]] = []
    with ray_session(cfg.ray_address) as ray:
        place = placement(ray, cfg.num_workers, cfg.device)
        calls = []
        for k, a, b in pending:
            decoders = place.decoders(b - a, cfg.batch_size, cfg.workers)
            opts = _TaskOptions(cfg.batch_size, decoders, cfg.threads or place.cpus,
                                cfg.backend, cfg.device, cfg.dtype)
            todo = [(j.manifest["model"], replace(j.layout, shards=j.layout.shards.resolve()), j.manifest)
                    for j in jobs if k not in j.done]
            calls.append((k, files[a:b], files[a:b], todo, opts))

        def done(i: int, report: dict[str, Any]) -> None:
            reports.append(report)
            progress(pending[i][2] - pending[i][1])

        _run_tasks(ray, _extract_partition, calls, place, done)
    used = {b for r in reports for b in r["backends"]}
    for job in jobs:
        job.done.update(k for k, _, _ in pending)
        if used and used != {job.manifest["backend"]}:  # workers chose otherwise (e.g. GPU nodes)
            job.manifest["backend"] = ",".join(sorted(used))
    return reports


# --------------------------------------------------------------------------- classify
_CLASSIFIERS: dict[tuple, Any] = {}


def _classify_partition(names: list[str], read: list[str], model: Any, weights: str | None, top_k: int,
                        batch_size: int, workers: int, device: str) -> list[ImageResult]:
    """One Ray task: the local `classify` on a slice of the files, the model loaded once per worker."""
    from ..tasks.classify import classify
    from ..zoo import as_model

    if isinstance(model, (str, type(None))):
        key = (model, weights)
        if key not in _CLASSIFIERS:
            _CLASSIFIERS[key] = as_model(model, weights)[0]
        model = _CLASSIFIERS[key]
    results = classify(read, model, top_k=top_k, batch_size=batch_size, workers=workers, device=device)
    for r, name in zip(results, names):
        r.path = name
    return results


def classify_on_ray(files: list[str], model: Any, *, top_k: int, weights: str | os.PathLike | None,
                    batch_size: int, workers: int | None, device: str, ray_address: str | None,
                    num_workers: int | None, progress: bool) -> list[ImageResult]:
    """`classify` over `files` with slices of them as Ray tasks; results in the same order."""
    from torch import nn

    from ..progress import progress_bar

    absolute = absolute_paths(files)  # workers may not share the driver's working folder
    with ray_session(ray_address) as ray, progress_bar(total=len(files), unit="img", disable=not progress,
                                                         desc="classify") as bar:
        place = placement(ray, num_workers, device)
        shipped = ray.put(model) if isinstance(model, nn.Module) else (os.fspath(model) if model else None)
        size = max(batch_size, min(1024, math.ceil(len(files) / (4 * place.workers))))
        calls = [(files[a:a + size], absolute[a:a + size], shipped, os.fspath(weights) if weights else None, top_k,
                  batch_size, place.decoders(len(files[a:a + size]), batch_size, workers), device)
                 for a in range(0, len(files), size)]
        parts: dict[int, list[ImageResult]] = {}

        def done(i: int, results: list[ImageResult]) -> None:
            parts[i] = results
            bar.update(len(results))

        _run_tasks(ray, _classify_partition, calls, place, done)
    return [r for i in sorted(parts) for r in parts[i]]
