"""`faces index`: every face of every photo into a face index (tasks/faces/faceindex.py), in
shards, resumable, and incremental.

A run takes the photos not yet in the index (each shard lists the photos of its partition, so a
photo with no face or an unreadable one counts as done too), cuts them into partitions numbered
after the index's last shard, and writes each partition's shard atomically when its last photo
is done; the manifest says which partitions are this run's. After a crash, `resume=True` takes
the same photos, finds the same partitions and computes only those without a shard: the rows
are the same as an uninterrupted run's. A run over photos all in the index adds nothing.

The photos are computed as `extract` computes images: on CPU one pipeline per core (decode,
detect, align, embed, each thread its own batches), or as Ray tasks, one per partition
(`engine="ray"`), with the same shards either way.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Sequence

from ..cpus import usable_cpus
from ..data.inputs import absolute, expand_inputs
from ..data.video import is_video_name
from ..errors import UsageError
from ..ordered import ordered_map
from ..progress import progress_bar
from ..store import Layout, finalize, layout_for, write_shard
from ..store.manifest import read_json
from ..store.shards import sweep_killed_writes
from ..tasks.faces.detectors import MIN_SCORE
from ..tasks.faces.faceindex import KIND, photos_by_shard, shard_rows
from ..tasks.faces.indexing import DETECT_SIZE, index_photos, settings
from ..versions import package_versions
from .config import check_engine
from .partition import BatchPlan

# What every run of one index must share, so its rows are comparable.
_SAME_KEYS = ("kind", "model", "weights_sha256", "detection", "chip", "dim")


@dataclass
class FaceIndexResult:
    out: str
    photos: int                     # photos named by the inputs
    computed: int                   # photos read by this call
    faces: int                      # faces in the index now
    added: int                      # faces this call added
    failures: list[tuple[str, str]] = field(default_factory=list)  # photos of this call that failed
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


def _sha(files: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(files).encode()).hexdigest()


def _manifest(partition_size: int, detect_size: int, min_score: float) -> dict[str, Any]:
    return {"format_version": 1, "kind": KIND, "task": "faces", **settings(detect_size, min_score), "format": "parquet",
            "dtype": "float32", "partition_size": partition_size, "versions": package_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "status": "running"}


@dataclass
class _Plan:
    manifest: dict[str, Any]
    todo: list[str]                 # this run's photos, in partition order
    first: int                      # the number of this run's first partition
    done: set[int]                  # this run's partitions already written


def _plan(layout: Layout, files: list[str], resume: bool, partition_size: int, detect_size: int,
          min_score: float) -> _Plan:
    manifest = _manifest(partition_size, detect_size, min_score)
    if not layout.exists():
        return _Plan(manifest, files, 0, set())
    if not layout.manifest.is_file():
        raise UsageError(f"{layout.out} exists and is not a face index; choose another --out")
    previous = read_json(layout.manifest)
    changed = [k for k in _SAME_KEYS if previous.get(k) != manifest[k]]
    if changed:
        raise UsageError(f"{layout.out} was made with other {', '.join(changed)}; index these photos into "
                         f"another --out")
    manifest["created"] = previous.get("created", manifest["created"])
    sweep_killed_writes(layout.shards)
    shards = photos_by_shard(layout.shards)
    if previous.get("status") == "running":
        run = previous["run"]
        if not resume:
            raise UsageError(f"{layout.out} holds an interrupted run; pass --resume to finish it")
        before = {p for k, ps in shards.items() if k < run["first"] for p in ps}
        todo = [f for f in files if f not in before]
        if _sha(todo) != run["sha256"] or run["partition_size"] != partition_size:
            raise UsageError(f"cannot resume {layout.out}: the interrupted run had other photos or another "
                             f"partition size (resume needs the same inputs and settings)")
        return _Plan(manifest, todo, run["first"], {k for k in shards if k >= run["first"]})
    indexed = {p for ps in shards.values() for p in ps}
    return _Plan(manifest, [f for f in files if f not in indexed], max(shards, default=-1) + 1, set())


def _write(layout: Layout, k: int, photos, manifest: dict[str, Any]) -> tuple[int, list[tuple[str, str]]]:
    keys, matrix, columns, failures, metadata = shard_rows(photos)
    write_shard(layout.shards, k, keys, matrix, failures, dtype="float32", manifest=manifest, columns=columns,
                metadata=metadata)
    return len(keys), failures


def _work(manifest: dict[str, Any]):
    """The per-batch function of a run: `index_photos` with the run's detection size."""
    detection = manifest["detection"]
    return partial(index_photos, detect_size=detection["sides"][1], min_score=detection.get("min_score", 0.5))


def index_partition(k: int, files: Sequence[str], layout: Layout, manifest: dict[str, Any], threads: int,
                    batch_size: int) -> tuple[int, list]:
    """One Ray task: partition k (photos `files`, absolute paths) computed by `threads` pipelines
    and written as its shard, as the local runner writes it; (faces, failures)."""
    batches = [list(files[a:a + batch_size]) for a in range(0, len(files), batch_size)]
    photos = [p for done in ordered_map(_work(manifest), batches, threads if len(batches) > 1 else 0) for p in done]
    return _write(layout, k, photos, manifest)


def _on_ray(files: list[str], pending: list[tuple[int, int, int]], layout: Layout, manifest: dict[str, Any],
            batch_size: int, ray_address: str | None, num_workers: int | None,
            progress: Callable[[int], Any]) -> tuple[int, list]:
    """The pending partitions as Ray tasks, one per partition, each writing its shard."""
    from dataclasses import replace

    from .ray_engine import _run_tasks, placement, ray_session

    added, failures = [0], []
    with ray_session(ray_address) as ray:
        place = placement(ray, num_workers, "cpu")
        shards = replace(layout, shards=layout.shards.resolve())
        calls = [(k, files[a:b], shards, manifest, place.cpus, batch_size) for k, a, b in pending]

        def done(i: int, report: tuple[int, list]) -> None:
            added[0] += report[0]
            failures.extend(report[1])
            progress(pending[i][2] - pending[i][1])

        _run_tasks(ray, index_partition, calls, place, done)
    return added[0], failures


def _local(files: list[str], pending: list[tuple[int, int, int]], layout: Layout, manifest: dict[str, Any],
           threads: int, batch_size: int, progress: Callable[[int], Any]) -> tuple[int, list]:
    """The pending partitions with `threads` pipelines over batches that never straddle two partitions."""
    plan = BatchPlan(pending, batch_size)
    added, failures, photos = 0, [], []
    work = ([files[i] for i in positions] for positions in plan)
    for done, (k, last) in zip(ordered_map(_work(manifest), work, threads), plan.ends()):
        photos += done
        progress(len(done))
        if last:
            n, failed = _write(layout, k, photos, manifest)
            added, failures, photos = added + n, failures + failed, []
    return added, failures


def index_faces(inputs, out: str | os.PathLike, *, resume: bool = False, partition_size: int = 1024,
                detect_size: int = DETECT_SIZE, min_score: float | None = None, threads: int | None = None, batch_size: int | None = None,
                engine: str = "local", ray_address: str | None = None, num_workers: int | None = None,
                progress: bool = False) -> FaceIndexResult:
    """Index every face of the photos `inputs` (files, folders, globs) into the face index `out`.
    `detect_size`: the long side of the copy faces are found in (faces down to ~3% of it);
    `min_score`: the detection floor (None: BlazeFace's MIN_SCORE, 0.6);
    `batch_size`: photos a pipeline takes at once (their faces are embedded in one call)
    [default: 4, fewer when there are too few photos to keep every pipeline busy]."""
    start = time.perf_counter()
    check_engine(engine)
    if partition_size < 1 or (batch_size is not None and batch_size < 1):
        raise UsageError("partition size and batch size must be at least 1")
    if detect_size < 256:
        raise UsageError("the detection size must be at least 256 px")
    listed = expand_inputs(inputs)
    videos = [f for f in listed.files if is_video_name(f)]
    if videos:
        raise UsageError(f"{videos[0]} is a video: a face index holds photos (for the faces in a video, "
                         f"`visionzoo faces detect VIDEO` or `visionzoo faces find GALLERY VIDEO`)")
    layout = layout_for(out, "parquet")
    files = absolute(listed.files)  # a photo is known by its path: the same from any working folder
    plan = _plan(layout, files, resume, partition_size, detect_size, MIN_SCORE if min_score is None else min_score)
    bounds = [(plan.first + j, a, min(len(plan.todo), a + partition_size))
              for j, a in enumerate(range(0, len(plan.todo), partition_size))]
    pending = [b for b in bounds if b[0] not in plan.done]
    added, failures = 0, []
    if bounds:
        manifest = {**plan.manifest, "run": {"first": plan.first, "photos": len(plan.todo), "sha256": _sha(plan.todo),
                                             "partition_size": partition_size}}
        if pending:
            layout.start(manifest)
        threads = threads or usable_cpus()
        batch_size = batch_size or max(1, min(4, len(plan.todo) // (2 * threads)))
        with progress_bar(total=sum(b - a for _, a, b in pending), unit="photo", disable=not progress,
                          desc="faces") as bar:
            if engine == "ray":
                added, failures = _on_ray(plan.todo, pending, layout, manifest, batch_size, ray_address,
                                          num_workers, bar.update)
            else:
                added, failures = _local(plan.todo, pending, layout, manifest, threads, batch_size, bar.update)
        final = finalize(layout, manifest)
    else:
        final = read_json(layout.manifest) if layout.manifest.is_file() else {"count": 0}
    return FaceIndexResult(str(layout.out), len(files), sum(b - a for _, a, b in pending),
                           int(final.get("count", 0)), added, failures, listed.skipped, time.perf_counter() - start)
