"""Faces: detect (boxes + dlib 5-point landmarks), embed (dlib ResNet, 128-d, in ONNX Runtime),
verify, find people in a gallery, and a 3D FaceMesh per face; over a face index
(`visionzoo.batch.index_faces`): every photo of each gallery person (`find_people`) and groups of
the people nobody named yet (`cluster_index`). Everything runs offline.

Contract: `load_predictor(name, **options)` -> Predictor (task "faces"), `predict(name, inputs)`.
`name` is a detector ("blazeface", "hog", "cnn") or "default".
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UsageError
from ...outputs import output_names, output_path
from .detectors import DEFAULT_DETECTOR, DETECTORS, Face
from .faceindex import load_index
from .gallery import load_gallery
from .groups import cluster_index
from .people import find_people
from .predictor import Predictor, _files, _iter_faces, load_predictor, predict
from .recognize import THRESHOLD, distances

__all__ = ["THRESHOLD", "DETECTORS", "DEFAULT_DETECTOR", "Predictor", "load_predictor", "predict", "detect",
           "embed", "embed_largest_faces", "verify", "find", "mesh", "load_gallery", "load_index", "find_people", "cluster_index"]


def detect(inputs, detector: str = DEFAULT_DETECTOR, draw: str | os.PathLike | None = None,
           crops: str | os.PathLike | None = None, min_score: float | None = None) -> list[dict[str, Any]]:
    """Boxes, scores and 5-point landmarks in original (EXIF-oriented) pixels; `crops`: a folder
    for each face's aligned 150 x 150 chip (`STEM_faceK.jpg`, the embedder's own alignment);
    `min_score`: the detection floor (None: the detector's, 0.6 for BlazeFace)."""
    return predict(detector, inputs, draw=draw, crops=crops, min_score=min_score)


def embed(inputs, out: str | os.PathLike, detector: str = DEFAULT_DETECTOR, fmt: str | None = None) -> dict[str, Any]:
    """One 128-d row per face, keyed `PATH#faceK@x1,y1,x2,y2` (visionzoo.data.regions), in our
    feature-file formats with a manifest; returns the manifest."""
    from ...data.regions import region_key
    from ...store.formats import finalize, layout_for
    from ...store.shards import write_shard

    predictor = load_predictor(detector)
    layout = layout_for(out, fmt)
    if layout.exists():
        raise UsageError(f"{layout.out} exists; remove it or choose another --out")
    layout.shards.mkdir(parents=True, exist_ok=True)
    manifest = {"model": "dlib_face_recognition_resnet_model_v1", "task": "faces", "detector": detector,
                "dim": 128, "dtype": "float32", "format": layout.fmt, "metric": "euclidean",
                "threshold": THRESHOLD, "row": "one per face: PATH#faceK@x1,y1,x2,y2 (original pixels)"}
    keys, rows, failures, shard = [], [], [], 0
    for path, _, _, faces, error in _iter_faces(_files(inputs), predictor, True):
        if error:
            failures.append((path, error))
        for k, f in enumerate(faces):
            keys.append(region_key(path, f"face{k}", f.box))
            rows.append(f.embedding)
        if len(keys) >= 4096:
            write_shard(layout.shards, shard, keys, np.stack(rows), failures, dtype="float32", manifest=manifest)
            keys, rows, failures, shard = [], [], [], shard + 1
    matrix = np.stack(rows) if rows else np.zeros((0, 128), np.float32)
    write_shard(layout.shards, shard, keys, matrix, failures, dtype="float32", manifest=manifest)
    return finalize(layout, manifest)


def embed_largest_faces(inputs, detector: str = DEFAULT_DETECTOR
                        ) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    """(paths, one 128-d row per image: its largest face, failures): how a search or a probe over
    face features embeds a new photo. A photo without a face is a failure that says so."""
    predictor = load_predictor(detector)
    paths, rows, failures = [], [], []
    for path, _, _, faces, error in _iter_faces(_files(inputs), predictor, True):
        if error or not faces:
            failures.append((path, error or "no face found"))
            continue
        paths.append(path)
        rows.append(max(faces, key=lambda f: f.area).embedding)
    return paths, (np.stack(rows).astype(np.float32) if rows else np.zeros((0, 128), np.float32)), failures


def _one_face(path: str, predictor: Predictor) -> Face:
    (_, _, _, faces, error), = _iter_faces([path], predictor, True)
    if error:
        raise UsageError(f"{path}: {error}")
    if not faces:
        raise UsageError(f"{path}: no face found")
    return faces[0]


def verify(a: str, b: str, threshold: float = THRESHOLD, detector: str = DEFAULT_DETECTOR) -> dict[str, Any]:
    """The largest face of each image: distance and whether it is the same person (distance <= threshold)."""
    predictor = load_predictor(detector)
    fa, fb = _one_face(str(a), predictor), _one_face(str(b), predictor)
    d = float(distances(fa.embedding, fb.embedding)[0, 0])
    return {"a": str(a), "b": str(b), "distance": round(d, 4), "threshold": threshold, "same": d <= threshold,
            "box_a": fa.to_dict()["box"], "box_b": fb.to_dict()["box"]}


def find(gallery: str | os.PathLike, queries, threshold: float = THRESHOLD, detector: str = DEFAULT_DETECTOR,
         draw: str | os.PathLike | None = None, min_score: float | None = None) -> list[dict[str, Any]]:
    """Every face in every query: identity (a gallery subfolder's name or "unknown"), distance, box."""
    return predict(detector, queries, draw=draw, gallery=gallery, threshold=threshold, min_score=min_score)


def mesh(inputs, out: str | os.PathLike, detector: str = DEFAULT_DETECTOR) -> list[dict[str, Any]]:
    """Per face `STEM_faceK.obj` (468 vertices, x/y in original pixels, z depth, the photo's colour
    per vertex, texture coordinates onto `STEM_faceK.jpg` via `STEM_faceK.mtl`) and `STEM_faceK.png`."""
    from .mesh import face_mesh, side_view, texture_crop, vertex_colours, write_obj

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    predictor = load_predictor(detector)
    files = _files(inputs)
    names = output_names(files)
    results = []
    for path, image, scale, faces, error in _iter_faces(files, predictor, False):
        items = []
        for k, f in enumerate(faces):
            local = face_mesh(image, f.box / scale)  # in the working copy's pixels
            v = local * scale
            colours = vertex_colours(image, local[:, :2])
            crop, uv = texture_crop(image, local)
            stem = f"{names[path]}_face{k}"
            obj = write_obj(v, output_path(out, stem, ".obj"), colours, (crop, uv))
            png = side_view(v, out / f"{stem}.png", Path(stem).name, colours)
            items.append({"box": f.to_dict()["box"], "obj": str(obj), "png": str(png), "vertices": len(v)})
        results.append({"path": path, "faces": items, "error": error})
    return results
