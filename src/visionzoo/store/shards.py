"""Shards: one Parquet file per input partition, written atomically (visionzoo.atomic).

A shard that exists is complete, so resuming after a crash or `kill -9` skips it and recomputes
only unfinished partitions. Its schema metadata holds the run's manifest and the partition's
failures, so even a lone shard describes itself. Folders are Locations: local or s3://, gs://, ...
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Iterator

import numpy as np

from ..atomic import sweep_temporaries
from ..holds import hold_point
from .location import Location

META_KEY = b"visionzoo"              # Parquet schema metadata: the run's manifest
FAILURES_KEY = b"visionzoo.failures"  # Parquet schema metadata: the shard's failed inputs
SHARD_NAME = "part-{:05d}.parquet"
_SHARD_RE = re.compile(r"^part-(\d{5,})\.parquet$")


def shard_path(folder: str | os.PathLike | Location, index: int) -> Location:
    return Location.of(folder) / SHARD_NAME.format(index)


def finished_shards(folder: str | os.PathLike | Location) -> set[int]:
    """The partitions whose shard exists (one listing, also on an object store)."""
    return {int(m.group(1)) for m in map(_SHARD_RE.match, Location.of(folder).listdir()) if m}


def sweep_killed_writes(folder: str | os.PathLike | Location) -> None:
    """Before a run resumes into `folder`: delete the half-written shards of a run that was killed there
    (they are hidden and never read, but take disk). Local folders only: an object store keeps none."""
    folder = Location.of(folder)
    if folder.local:
        sweep_temporaries(folder.path)


def string_array(values: list[str]):
    """A pyarrow string array built from raw buffers: `pa.array` and `pa.table(dict)` import pandas
    (0.2 s of every extract process) only to ask whether they were handed a pandas object."""
    import pyarrow as pa

    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def features_table(paths: list[str], matrix: np.ndarray, dtype: str = "float32", metadata: dict | None = None,
                   columns: dict[str, Any] | None = None):
    """A (path, feature) table with a fixed-size list column of `dtype` floats (from buffers, as
    `string_array`), then any extra `columns` (name -> pyarrow array, one value per row)."""
    import pyarrow as pa

    values = np.ascontiguousarray(matrix, dtype=dtype).reshape(-1)
    flat = pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])
    feature = pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1])
    extra = columns or {}
    return pa.Table.from_arrays([string_array(paths), feature, *extra.values()],
                                names=["path", "feature", *extra]).replace_schema_metadata(metadata)


def write_shard(folder: str | os.PathLike | Location, index: int, paths: list[str], matrix: np.ndarray,
                failures: list[tuple[str, str]], *, dtype: str, manifest: dict[str, Any],
                columns: dict[str, Any] | None = None, metadata: dict[bytes, bytes] | None = None) -> Location:
    """Partition `index` as one Parquet file, atomically; `columns` and `metadata` add what a
    kind of feature file keeps beside each row (a face index: the face's box, landmarks, chip)."""
    import pyarrow.parquet as pq

    meta = {META_KEY: json.dumps(manifest, default=str).encode(),
            FAILURES_KEY: json.dumps([{"path": p, "reason": r} for p, r in failures]).encode(), **(metadata or {})}
    table = features_table(paths, matrix, dtype, meta, columns)
    final = shard_path(folder, index)
    with final.atomic_output() as out:
        pq.write_table(table, out)
    hold_point("shard")
    return final


def read_table_features(table) -> tuple[list[str], np.ndarray]:
    column = table.column("feature")
    dim = column.type.list_size
    chunks = [c.flatten().to_numpy(zero_copy_only=False) for c in column.chunks]
    flat = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return table.column("path").to_pylist(), flat.astype(np.float32, copy=False).reshape(-1, dim)


def iter_shards(folder: str | os.PathLike | Location) -> Iterator[tuple[int, list[str], np.ndarray, list[dict[str, str]]]]:
    """(index, paths, float32 matrix, failures) for each shard, in partition order."""
    import pyarrow.parquet as pq

    for index in sorted(finished_shards(folder)):
        with shard_path(folder, index).open_input() as f:
            table = pq.read_table(f)
        paths, matrix = read_table_features(table)
        failures = json.loads((table.schema.metadata or {}).get(FAILURES_KEY, b"[]"))
        yield index, paths, matrix, failures


def _footer(shard: Location):
    import pyarrow.parquet as pq

    with shard.open_input() as f:
        return pq.read_metadata(f)


def shard_summary(folder: str | os.PathLike | Location) -> tuple[int, list[dict[str, str]]]:
    """(rows, every failed input) of the finished shards, in partition order, from their footers only
    (read 16 at a time: on an object store each costs a round trip)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        footers = list(pool.map(_footer, [shard_path(folder, i) for i in sorted(finished_shards(folder))]))
    failures = [f for meta in footers for f in json.loads((meta.metadata or {}).get(FAILURES_KEY, b"[]"))]
    return sum(meta.num_rows for meta in footers), failures
