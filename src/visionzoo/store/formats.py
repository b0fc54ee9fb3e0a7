"""Where each format puts its files, how a finished run's shards become the final file, and loading.

- parquet (default): OUT is a folder (a Parquet dataset any Arrow/pandas/Spark reader opens):
  `part-NNNNN.parquet` (path, feature) shards, `_failures.parquet` (path, reason) and
  `_manifest.json`; each shard also carries the manifest in its schema metadata.
- npy: `OUT.npy` (N x D matrix), `OUT.paths.txt` (one path per line, same order), `OUT.npy.manifest.json`.
- pkl: `OUT.pkl`, the classic `{image_path: 1-D numpy array}` dict, and `OUT.pkl.manifest.json`.
npy and pkl runs stream their shards into `OUT.npy.parts/` (or `.pkl.parts/`) and turn them into
the final file at the end, then remove that folder.
"""
from __future__ import annotations

import os
import pickle
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, write_json
from ..errors import UsageError
from .manifest import MANIFEST_FILE, read_json, sidecar
from .shards import iter_shards, read_table_features, shard_failures, shard_rows

FORMATS = ("parquet", "npy", "pkl")
_SUFFIX = {"npy": ".npy", "pkl": ".pkl"}
FAILURES_FILE = "_failures.parquet"


@dataclass(frozen=True)
class Layout:
    fmt: str
    out: Path           # what the user reads: the Parquet folder, the .npy or the .pkl
    shards: Path        # where partitions are written as the run goes
    manifest: Path      # the final manifest

    @property
    def running_manifest(self) -> Path:
        return self.shards / MANIFEST_FILE

    def complete(self) -> bool:
        return self.manifest.is_file() and read_json(self.manifest).get("status") == "complete"

    def exists(self) -> bool:
        if self.fmt == "parquet":
            return self.out.is_dir() and any(self.out.iterdir()) or self.out.is_file()
        return self.out.exists() or self.shards.exists() or self.manifest.exists()


def infer_format(out: str | os.PathLike, fmt: str | None = None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(out).suffix.lower()
    return {".npy": "npy", ".pkl": "pkl", ".pickle": "pkl"}.get(suffix, "parquet")


def layout_for(out: str | os.PathLike, fmt: str | None = None) -> Layout:
    fmt = infer_format(out, fmt)
    out = Path(out)
    if fmt == "parquet":
        return Layout(fmt, out, out, out / MANIFEST_FILE)
    if out.suffix.lower() not in (_SUFFIX[fmt], ".pickle"):
        out = out.with_name(out.name + _SUFFIX[fmt])
    return Layout(fmt, out, out.with_name(out.name + ".parts"), sidecar(out))


def finalize(layout: Layout, manifest: dict[str, Any]) -> dict[str, Any]:
    """Turn the finished shards into the user's file(s); the manifest is written last."""
    failures = shard_failures(layout.shards)
    rows = shard_rows(layout.shards)
    if layout.fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"path": pa.array([f["path"] for f in failures], pa.string()),
                          "reason": pa.array([f["reason"] for f in failures], pa.string())})
        with atomic_path(layout.out / FAILURES_FILE) as tmp:
            pq.write_table(table, tmp)
    elif layout.fmt == "npy":
        _write_npy(layout, manifest["dtype"], manifest["dim"])
    else:
        table = {p: v.astype(manifest["dtype"]) for _, paths, block, _ in iter_shards(layout.shards)
                 for p, v in zip(paths, block)}
        with atomic_path(layout.out) as tmp, open(tmp, "wb") as f:
            pickle.dump(table, f, protocol=4)
    manifest = {**manifest, "count": rows, "failures": failures, "status": "complete",
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_json(layout.manifest, manifest)
    if layout.shards != layout.out:
        shutil.rmtree(layout.shards)
    return manifest


def _write_npy(layout: Layout, dtype: str, dim: int) -> None:
    """Stream the shards into a memory-mapped .npy, so memory stays flat however many rows."""
    with atomic_path(layout.out) as tmp, atomic_path(paths_file(layout.out)) as paths_tmp:
        matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(shard_rows(layout.shards), dim))
        start = 0
        with open(paths_tmp, "w", encoding="utf-8") as f:
            for _, paths, block, _ in iter_shards(layout.shards):
                matrix[start:start + len(paths)] = block
                start += len(paths)
                f.writelines(p + "\n" for p in paths)
        matrix.flush()
        del matrix


def paths_file(npy: Path) -> Path:
    return npy.with_name(npy.stem + ".paths.txt")


def _sorted(paths: list[str], matrix: np.ndarray) -> tuple[list[str], np.ndarray]:
    order = sorted(range(len(paths)), key=paths.__getitem__)
    if order == list(range(len(paths))):
        return paths, matrix
    return [paths[i] for i in order], matrix[order]


def load_features(path: str | os.PathLike, allow_pickle: bool = False) -> tuple[list[str], np.ndarray]:
    """(paths, float32 matrix (N, D)) from any feature file, rows sorted by path.

    A .pkl is only read with `allow_pickle=True`: unpickling a file can run arbitrary code.
    """
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.exists():
        raise UsageError(f"no such feature file: {p}")
    if p.is_dir():
        parts = [(paths, m) for _, paths, m, _ in iter_shards(p)]
        if not parts and not (p / MANIFEST_FILE).is_file():
            raise UsageError(f"{p} is not a visionzoo feature folder (no part-*.parquet, no {MANIFEST_FILE})")
        paths = [q for ps, _ in parts for q in ps]
        dim = int(read_json(p / MANIFEST_FILE).get("dim") or 0) if (p / MANIFEST_FILE).is_file() else 0
        matrix = np.concatenate([m for _, m in parts]) if parts else np.zeros((0, dim), np.float32)
        return _sorted(paths, matrix)
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        return _sorted(*read_table_features(pq.read_table(p, columns=["path", "feature"])))
    if suffix == ".npy":
        if not paths_file(p).is_file():
            raise UsageError(f"{p} has no paths file beside it (expected {paths_file(p)})")
        matrix = np.load(p, allow_pickle=False).astype(np.float32, copy=False)
        paths = paths_file(p).read_text("utf-8").splitlines()
        if len(paths) != len(matrix):
            raise UsageError(f"{p} has {len(matrix)} rows but {paths_file(p)} lists {len(paths)} paths")
        return _sorted(paths, matrix.reshape(len(paths), -1))
    if suffix in (".pkl", ".pickle"):
        if not allow_pickle:
            raise UsageError(
                f"{p} is a pickle, and unpickling can run arbitrary code; load it only if you trust "
                f"its source, with load_features(path, allow_pickle=True) (or use parquet/npy)"
            )
        with open(p, "rb") as f:
            table = pickle.load(f)
        if not isinstance(table, dict):
            raise UsageError(f"{p} does not hold a {{path: vector}} dict")
        paths = sorted(table)
        if not paths:
            return [], np.zeros((0, 0), np.float32)
        return paths, np.stack([np.asarray(table[k], dtype=np.float32).reshape(-1) for k in paths])
    raise UsageError(f"unknown feature file type {p.suffix!r}; expected a Parquet folder/file, .npy or .pkl")
