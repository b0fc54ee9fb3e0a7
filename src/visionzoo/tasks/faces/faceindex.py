"""A face index: every face of a photo library in one Parquet feature folder (visionzoo.store).

One row per face: `path` (`PHOTO#faceK@x1,y1,x2,y2`, the region key every feature-file reader
takes) and `feature` (the 128-d descriptor), so `search`, `cluster` and `probe` read it as it is;
then `photo`, `face` (K, largest first), `box` (x1, y1, x2, y2), `score`, `landmarks` (dlib's 5
points as x1, y1 ... x5, y5), all in the photo's pixels as displayed, and `chip`: the aligned
150 x 150 face chip the descriptor was computed from, as JPEG bytes (contact sheets, crops and
naming groups need no photo decoded again). Each shard also lists, in its metadata, every photo
of its partition (with faces, without, or unreadable), so adding photos later reads only new ones.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...data.regions import region_key
from ...errors import UsageError
from ...store.location import Location
from ...store.manifest import MANIFEST_FILE, read_json
from ...store.shards import finished_shards, shard_path, string_array
from .indexing import PhotoFaces
from .recognize import DIM

PHOTOS_KEY = b"visionzoo.photos"  # Parquet schema metadata: every photo of the shard's partition
KIND = "face index"


def shard_rows(photos: Sequence[PhotoFaces]) -> tuple[list[str], np.ndarray, dict, list[tuple[str, str]], dict]:
    """(keys, descriptors, extra columns, failures, metadata) of one partition's photos, as
    `store.write_shard` takes them."""
    import pyarrow as pa

    faces = [(p, k) for p in photos for k in range(len(p))]
    keys = [region_key(p.path, f"face{k}", p.boxes[k]) for p, k in faces]
    matrix = np.stack([p.embeddings[k] for p, k in faces]) if faces else np.zeros((0, DIM), np.float32)

    def numbers(values: list, dtype, width: int | None = None):
        """From buffers, as store.shards builds its columns (`pa.array` would import pandas)."""
        flat = np.ascontiguousarray(np.asarray(values, dtype).reshape(-1))
        arr = pa.Array.from_buffers(pa.from_numpy_dtype(flat.dtype), len(flat), [None, pa.py_buffer(flat)])
        return arr if width is None else pa.FixedSizeListArray.from_arrays(arr, width)

    chips = [p.jpegs[k] for p, k in faces]
    offsets = np.zeros(len(chips) + 1, np.int32)
    np.cumsum([len(c) for c in chips], out=offsets[1:])
    columns = {
        "photo": string_array([p.path for p, _ in faces]),
        "face": numbers([k for _, k in faces], np.int32),
        "box": numbers([p.boxes[k] for p, k in faces] or np.zeros((0, 4)), np.float32, 4),
        "score": numbers([p.scores[k] for p, k in faces], np.float32),
        "landmarks": numbers([p.points[k] for p, k in faces] or np.zeros((0, 10)), np.float32, 10),
        "chip": pa.Array.from_buffers(pa.binary(), len(chips), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(chips))]),
    }
    failures = [(p.path, p.error) for p in photos if p.error]
    metadata = {PHOTOS_KEY: json.dumps([p.path for p in photos]).encode()}
    return keys, matrix, columns, failures, metadata


def _shard_photos(shard: Location) -> list[str]:
    import pyarrow.parquet as pq

    with shard.open_input() as f:
        meta = pq.read_metadata(f).metadata or {}
    if PHOTOS_KEY not in meta:
        raise UsageError(f"{shard} is not part of a face index (no photo list); use `visionzoo faces index`")
    return json.loads(meta[PHOTOS_KEY])


def photos_by_shard(folder: str | os.PathLike | Location) -> dict[int, list[str]]:
    """The photos each finished shard covers (from the Parquet footers only)."""
    shards = sorted(finished_shards(folder))
    with ThreadPoolExecutor(16) as pool:
        return dict(zip(shards, pool.map(_shard_photos, [shard_path(folder, k) for k in shards])))


@dataclass
class FaceIndex:
    """Every face of an index, sorted by key (the same order whatever engine or run wrote it)."""

    keys: list[str]
    photos: list[str]
    face: np.ndarray          # (N,) K of PHOTO#faceK
    boxes: np.ndarray         # (N, 4)
    scores: np.ndarray        # (N,)
    landmarks: np.ndarray     # (N, 5, 2)
    embeddings: np.ndarray    # (N, 128)
    chips: list[bytes] | None  # JPEG bytes, when asked for
    manifest: dict

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, rows: np.ndarray) -> "FaceIndex":
        """The faces at `rows` (indices or a boolean mask), in the same order."""
        rows = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows, np.int64)
        return FaceIndex([self.keys[i] for i in rows], [self.photos[i] for i in rows], self.face[rows],
                         self.boxes[rows], self.scores[rows], self.landmarks[rows], self.embeddings[rows],
                         [self.chips[i] for i in rows] if self.chips is not None else None, self.manifest)


def _fixed(column, width: int) -> np.ndarray:
    flat = np.concatenate([c.flatten().to_numpy(zero_copy_only=False) for c in column.chunks]) if column.num_chunks else np.zeros(0)
    return flat.astype(np.float32, copy=False).reshape(-1, width)


def load_index(path: str | os.PathLike | Location, chips: bool = False) -> FaceIndex:
    """The face index at `path` (a folder written by `visionzoo faces index`, local or a URI)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Location.of(path)
    if not folder.is_dir() or not (folder / MANIFEST_FILE).is_file():
        raise UsageError(f"{folder} is not a face index (a folder written by `visionzoo faces index`)")
    manifest = read_json(folder / MANIFEST_FILE)
    if manifest.get("kind") != KIND:
        raise UsageError(f"{folder} is a feature file, not a face index; make one with `visionzoo faces index`")
    names = ["path", "feature", "photo", "face", "box", "score", "landmarks"] + (["chip"] if chips else [])
    tables = []
    for k in sorted(finished_shards(folder)):
        with shard_path(folder, k).open_input() as f:
            tables.append(pq.read_table(f, columns=names))
    if not tables:
        return FaceIndex([], [], np.zeros(0, np.int32), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                         np.zeros((0, 5, 2), np.float32), np.zeros((0, DIM), np.float32), [] if chips else None, manifest)
    table = pa.concat_tables(tables)
    keys = table.column("path").to_pylist()
    order = np.array(sorted(range(len(keys)), key=keys.__getitem__), np.int64)
    table = table.take(pa.array(order)) if len(order) else table
    return FaceIndex(
        keys=[keys[i] for i in order],
        photos=table.column("photo").to_pylist(),
        face=table.column("face").to_numpy(),
        boxes=_fixed(table.column("box"), 4),
        scores=table.column("score").to_numpy(),
        landmarks=_fixed(table.column("landmarks"), 10).reshape(-1, 5, 2),
        embeddings=_fixed(table.column("feature"), DIM),
        chips=table.column("chip").to_pylist() if chips else None,
        manifest=manifest,
    )
