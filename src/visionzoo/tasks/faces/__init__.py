"""Faces (issue 11): detect (boxes + dlib 5-point landmarks), embed (dlib ResNet, 128-d), verify,
find people in a gallery, and a 3D FaceMesh per face. Everything runs offline.

Contract: `load_predictor(name, **options)` -> Predictor (task "faces"), `predict(name, inputs)`.
`name` is a detector ("blazeface", "hog", "cnn") or "default".
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from ...errors import UsageError
from .detectors import DEFAULT_DETECTOR, DETECTORS, Face, check_detector, detect_faces
from .gallery import Gallery, load_gallery
from .images import iter_images, working_copy
from .recognize import THRESHOLD, descriptors, distances

__all__ = ["THRESHOLD", "DETECTORS", "DEFAULT_DETECTOR", "Predictor", "load_predictor", "predict", "detect",
           "embed", "verify", "find", "mesh", "load_gallery"]


def _faces_in(img: Image.Image, scale: float, detector: str, with_embeddings: bool) -> list[Face]:
    """Faces in a working copy, returned in the original's pixels (`scale` = original / working)."""
    faces = detect_faces(img, detector)
    if with_embeddings and faces:
        for f, e in zip(faces, descriptors(np.asarray(img), [f.box for f in faces])):
            f.embedding = e
    return [f.scaled(scale) for f in faces]


def _identify(faces: list[Face], gallery: Gallery, threshold: float) -> None:
    if not faces:
        return
    d = distances(np.stack([f.embedding for f in faces]), gallery.embeddings) if len(gallery) else None
    for i, f in enumerate(faces):
        if d is None:
            f.extra.update(identity="unknown", distance=None)
            continue
        j = int(np.argmin(d[i]))
        f.extra.update(identity=gallery.names[j] if d[i, j] <= threshold else "unknown",
                       distance=round(float(d[i, j]), 4), nearest=gallery.names[j])


class Predictor:
    """Loaded once, called many times: `predictor(images) -> [{"faces": [...]}]` in each image's pixels.
    With a gallery, every face also gets `identity` (or "unknown"), `distance` and `nearest`."""

    task = "faces"

    def __init__(self, detector: str = DEFAULT_DETECTOR, gallery: str | os.PathLike | None = None,
                 threshold: float = THRESHOLD):
        self.detector = check_detector(detector)
        self.threshold = threshold
        self.gallery = load_gallery(gallery, detector=detector) if gallery is not None else None

    def faces(self, img: Image.Image, with_embeddings: bool = False) -> list[Face]:
        small, s = working_copy(img)
        faces = _faces_in(small, s, self.detector, with_embeddings or self.gallery is not None)
        if self.gallery is not None:
            _identify(faces, self.gallery, self.threshold)
        return faces

    def __call__(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        return [{"faces": [f.to_dict() for f in self.faces(img)]} for img in images]


def load_predictor(run_or_name: str = "default", **options: Any) -> Predictor:
    """`run_or_name`: a detector name or "default"; options: gallery=FOLDER, threshold=0.6."""
    if run_or_name in ("default", "faces", "", None):
        run_or_name = DEFAULT_DETECTOR
    if run_or_name not in DETECTORS:
        from .hub import hub_model_note

        raise UsageError(hub_model_note(run_or_name))
    return Predictor(run_or_name, **options)


def _files(inputs) -> list[str]:
    from ...data.inputs import expand_inputs

    return expand_inputs(inputs).files


def _iter_faces(files: Sequence[str], predictor: Predictor, with_embeddings: bool) -> Iterator[tuple[str, Image.Image | None, float, list[Face], str | None]]:
    for item in iter_images(files):
        if item.error:
            yield item.path, None, 1.0, [], item.error
            continue
        faces = _faces_in(item.image, item.scale, predictor.detector, with_embeddings or predictor.gallery is not None)
        if predictor.gallery is not None:
            _identify(faces, predictor.gallery, predictor.threshold)
        yield item.path, item.image, item.scale, faces, None


def _draw(path: str, image: Image.Image, scale: float, faces: list[Face], out_dir: str | os.PathLike) -> Path:
    from .draw import draw_faces

    return draw_faces(image, [f.scaled(1 / scale) for f in faces], Path(out_dir) / (Path(path).stem + ".faces.jpg"))


def predict(run_or_name: str = "default", inputs=(), *, draw: str | os.PathLike | None = None, **options: Any) -> list[dict[str, Any]]:
    """Per input file `{path, faces: [{box, score, landmarks, (identity, distance)}], error}`."""
    predictor = load_predictor(run_or_name, **options)
    out = []
    for path, image, scale, faces, error in _iter_faces(_files(inputs), predictor, False):
        if image is not None and draw is not None:
            _draw(path, image, scale, faces, draw)
        out.append({"path": path, "faces": [f.to_dict() for f in faces], "error": error})
    return out


def detect(inputs, detector: str = DEFAULT_DETECTOR, draw: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Boxes, scores and 5-point landmarks in original (EXIF-oriented) pixels."""
    return predict(detector, inputs, draw=draw)


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
         draw: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every face in every query: identity (a gallery subfolder's name or "unknown"), distance, box."""
    return predict(detector, queries, draw=draw, gallery=gallery, threshold=threshold)


def mesh(inputs, out: str | os.PathLike, detector: str = DEFAULT_DETECTOR) -> list[dict[str, Any]]:
    """Per face `STEM_faceK.obj` (468 vertices, x/y in original pixels, z depth) and `STEM_faceK.png`."""
    from .mesh import face_mesh, side_view, write_obj

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    predictor = load_predictor(detector)
    results = []
    for path, image, scale, faces, error in _iter_faces(_files(inputs), predictor, False):
        items = []
        for k, f in enumerate(faces):
            v = face_mesh(image, f.box / scale) * scale
            stem = f"{Path(path).stem}_face{k}"
            obj = write_obj(v, out / f"{stem}.obj")
            png = side_view(v, out / f"{stem}.png", stem)
            items.append({"box": f.to_dict()["box"], "obj": str(obj), "png": str(png), "vertices": len(v)})
        results.append({"path": path, "faces": items, "error": error})
    return results
