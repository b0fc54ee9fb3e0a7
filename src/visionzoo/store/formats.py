"""Where each format puts its files, how a finished run's shards become the final file, and loading.

- parquet (default): OUT is a folder (a Parquet dataset any Arrow/pandas/Spark reader opens):
  `part-NNNNN.parquet` (path, feature) shards, `_failures.parquet` (path, reason) and
  `_manifest.json`; each shard also carries the manifest in its schema metadata.
- npy: `OUT.npy` (N x D matrix), `OUT.paths.txt` (one path per line, same order), `OUT.npy.manifest.json`.
- pkl: `OUT.pkl`, the classic `{image_path: 1-D numpy array}` dict, and `OUT.pkl.manifest.json`.
npy and pkl runs stream their shards into `OUT.npy.parts/` (or `.pkl.parts/`) and turn them into
the final file at the end, then remove that folder.
OUT is a local path or a URI pyarrow opens (s3://bucket/feats.parquet, gs://, hdfs://): see location.py.
"""
from __future__ import annotations

import io
import os
import pickle
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from .location import Location
from .manifest import MANIFEST_FILE, read_json, sidecar
from .shards import iter_shards, read_table_features, shard_summary, string_array

FORMATS = ("parquet", "npy", "pkl")
_SUFFIX = {"npy": ".npy", "pkl": ".pkl"}
FAILURES_FILE = "_failures.parquet"


@dataclass(frozen=True)
class Layout:
    fmt: str
    out: Location       # what the user reads: the Parquet folder, the .npy or the .pkl
    shards: Location    # where partitions are written as the run goes
    manifest: Location  # the final manifest

    @property
    def running_manifest(self) -> Location:
        return self.shards / MANIFEST_FILE

    def complete(self) -> bool:
        return self.manifest.is_file() and read_json(self.manifest).get("status") == "complete"

    def exists(self) -> bool:
        if self.fmt == "parquet":
            return self.out.is_dir() and bool(self.out.listdir()) or self.out.is_file()
        return self.out.exists() or self.shards.exists() or self.manifest.exists()

    def start(self, manifest: dict[str, Any]) -> None:
        """Ready the shard folder for a run (or its resumption) with `manifest`."""
        self.shards.mkdir(parents=True, exist_ok=True)
        self.running_manifest.write_json(manifest)


def infer_format(out: str | os.PathLike | Location, fmt: str | None = None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Location.of(out).suffix.lower()
    return {".npy": "npy", ".pkl": "pkl", ".pickle": "pkl"}.get(suffix, "parquet")


def layout_for(out: str | os.PathLike | Location, fmt: str | None = None) -> Layout:
    fmt = infer_format(out, fmt)
    out = Location.of(out)
    if fmt == "parquet":
        return Layout(fmt, out, out, out / MANIFEST_FILE)
    if out.suffix.lower() not in (_SUFFIX[fmt], ".pickle"):
        out = out.with_name(out.name + _SUFFIX[fmt])
    return Layout(fmt, out, out.with_name(out.name + ".parts"), sidecar(out))


def finalize(layout: Layout, manifest: dict[str, Any]) -> dict[str, Any]:
    """Turn the finished shards into the user's file(s); the manifest is written last."""
    rows, failures = shard_summary(layout.shards)
    if layout.fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_arrays([string_array([f["path"] for f in failures]),
                                      string_array([f["reason"] for f in failures])], names=["path", "reason"])
        with (layout.out / FAILURES_FILE).atomic_output() as out:
            pq.write_table(table, out)
    elif layout.fmt == "npy":
        _write_npy(layout, manifest["dtype"], manifest["dim"], rows)
    else:
        table = {p: v.astype(manifest["dtype"]) for _, paths, block, _ in iter_shards(layout.shards)
                 for p, v in zip(paths, block)}
        with layout.out.atomic_output() as out:
            pickle.dump(table, out, protocol=4)
    manifest = {**manifest, "count": rows, "failures": failures, "status": "complete",
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    layout.manifest.write_json(manifest)
    if layout.shards != layout.out:
        layout.shards.remove_tree()
    return manifest


def write_features(out: str | os.PathLike | Location, paths: list[str], matrix: np.ndarray, manifest: dict[str, Any],
                   failures: list[tuple[str, str]] = (), *, fmt: str | None = None, shard_rows: int = 4096) -> dict:
    """A whole feature file from rows in memory (in shards of `shard_rows`), with its manifest."""
    from .shards import write_shard

    layout = layout_for(out, fmt)
    if layout.exists():
        raise UsageError(f"{layout.out} exists; remove it or choose another --out")
    manifest = {"dim": int(matrix.shape[1]), "dtype": "float32", **manifest, "format": layout.fmt}
    layout.shards.mkdir(parents=True, exist_ok=True)
    starts = range(0, max(len(paths), 1), shard_rows)
    for k, a in enumerate(starts):
        write_shard(layout.shards, k, paths[a:a + shard_rows], matrix[a:a + shard_rows],
                    list(failures) if k == len(starts) - 1 else [], dtype=manifest["dtype"], manifest=manifest)
    return finalize(layout, manifest)


def _write_npy(layout: Layout, dtype: str, dim: int, rows: int) -> None:
    """Stream the shards, one at a time, into the .npy (header, then rows in order), so memory
    stays flat however many rows, on any filesystem."""
    with layout.out.atomic_output() as matrix, paths_file(layout.out).atomic_output() as names:
        np.lib.format.write_array_header_1_0(matrix, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                      "fortran_order": False, "shape": (rows, dim)})
        for _, paths, block, _ in iter_shards(layout.shards):
            matrix.write(np.ascontiguousarray(block, dtype=dtype).tobytes())
            names.write("".join(p + "\n" for p in paths).encode())


def paths_file(npy: Location) -> Location:
    return npy.with_name(npy.stem + ".paths.txt")


def _sorted(paths: list[str], matrix: np.ndarray) -> tuple[list[str], np.ndarray]:
    order = sorted(range(len(paths)), key=paths.__getitem__)
    if order == list(range(len(paths))):
        return paths, matrix
    return [paths[i] for i in order], matrix[order]


def load_features(path: str | os.PathLike | Location, allow_pickle: bool = False) -> tuple[list[str], np.ndarray]:
    """(paths, float32 matrix (N, D)) from any feature file, local or a URI (s3://...), rows sorted by path.

    A .pkl is only read with `allow_pickle=True`: unpickling a file can run arbitrary code.
    """
    import pyarrow.parquet as pq

    p = Location.of(path)
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
        with p.open_input() as f:
            return _sorted(*read_table_features(pq.read_table(f, columns=["path", "feature"])))
    if suffix == ".npy":
        if not paths_file(p).is_file():
            raise UsageError(f"{p} has no paths file beside it (expected {paths_file(p)})")
        with p.open_input() as f:
            matrix = np.load(f, allow_pickle=False).astype(np.float32, copy=False)
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
        table = pickle.load(io.BytesIO(p.read_bytes()))
        if not isinstance(table, dict):
            raise UsageError(f"{p} does not hold a {{path: vector}} dict")
        paths = sorted(table)
        if not paths:
            return [], np.zeros((0, 0), np.float32)
        return paths, np.stack([np.asarray(table[k], dtype=np.float32).reshape(-1) for k in paths])
    raise UsageError(f"unknown feature file type {p.suffix!r}; expected a Parquet folder/file, .npy or .pkl")
