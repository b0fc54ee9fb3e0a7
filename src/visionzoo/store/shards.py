"""Shards: one Parquet file per input partition, written atomically (visionzoo.atomic).

A shard that exists is complete, so resuming after a crash or `kill -9` skips it and recomputes
only unfinished partitions. Its schema metadata holds the run's manifest and the partition's
failures, so even a lone shard describes itself.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..atomic import atomic_path
from .manifest import FAILURES_KEY, META_KEY

SHARD_NAME = "part-{:05d}.parquet"
_SHARD_RE = re.compile(r"^part-(\d{5,})\.parquet$")


def shard_path(folder: Path, index: int) -> Path:
    return folder / SHARD_NAME.format(index)


def finished_shards(folder: str | os.PathLike) -> set[int]:
    folder = Path(folder)
    if not folder.is_dir():
        return set()
    return {int(m.group(1)) for m in map(_SHARD_RE.match, os.listdir(folder)) if m}


def features_table(paths: list[str], matrix: np.ndarray, dtype: str = "float32", metadata: dict | None = None):
    """A (path, feature) table with a fixed-size list column of `dtype` floats."""
    import pyarrow as pa

    dim = matrix.shape[1]
    values = pa.array(np.ascontiguousarray(matrix, dtype=dtype).reshape(-1))
    feature = pa.FixedSizeListArray.from_arrays(values, dim)
    return pa.table({"path": pa.array(paths, pa.string()), "feature": feature}).replace_schema_metadata(metadata)


def write_shard(folder: Path, index: int, paths: list[str], matrix: np.ndarray, failures: list[tuple[str, str]],
                *, dtype: str, manifest: dict[str, Any]) -> Path:
    import pyarrow.parquet as pq

    meta = {META_KEY: json.dumps(manifest, default=str).encode(),
            FAILURES_KEY: json.dumps([{"path": p, "reason": r} for p, r in failures]).encode()}
    table = features_table(paths, matrix, dtype, meta)
    final = shard_path(folder, index)
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp)
    return final


def read_table_features(table) -> tuple[list[str], np.ndarray]:
    column = table.column("feature")
    dim = column.type.list_size
    chunks = [c.flatten().to_numpy(zero_copy_only=False) for c in column.chunks]
    flat = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return table.column("path").to_pylist(), flat.astype(np.float32, copy=False).reshape(-1, dim)


def iter_shards(folder: Path) -> Iterator[tuple[int, list[str], np.ndarray, list[dict[str, str]]]]:
    """(index, paths, float32 matrix, failures) for each shard, in partition order."""
    import pyarrow.parquet as pq

    for index in sorted(finished_shards(folder)):
        table = pq.read_table(shard_path(folder, index))
        paths, matrix = read_table_features(table)
        failures = json.loads((table.schema.metadata or {}).get(FAILURES_KEY, b"[]"))
        yield index, paths, matrix, failures


def shard_failures(folder: Path) -> list[dict[str, str]]:
    """Every failed input of the finished shards (read from their metadata only), in partition order."""
    import pyarrow.parquet as pq

    out: list[dict[str, str]] = []
    for index in sorted(finished_shards(folder)):
        meta = pq.read_schema(shard_path(folder, index)).metadata or {}
        out += json.loads(meta.get(FAILURES_KEY, b"[]"))
    return out


def shard_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(shard_path(folder, i)).num_rows for i in finished_shards(folder))
