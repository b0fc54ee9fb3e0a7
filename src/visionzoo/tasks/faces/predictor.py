"""The faces task's predictor: faces per image, each named from a gallery when one is given."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from ...errors import UsageError
from ...outputs import output_names, output_path
from ...viz.notebook import shows
from .detectors import DEFAULT_DETECTOR, DETECTORS, Face, check_detector
from .draw import describe_row, render_row
from .gallery import Gallery, load_gallery
from .images import working_copy
from .pipeline import faces_in, iter_faces
from .recognize import THRESHOLD, distances


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
                 threshold: float = THRESHOLD, min_score: float | None = None):
        self.detector = check_detector(detector)
        self.threshold = threshold
        self.min_score = min_score      # None: the detector's floor (detectors.default_min_score)
        self.gallery = load_gallery(gallery, detector=detector) if gallery is not None else None

    def faces(self, img: Image.Image, with_embeddings: bool = False) -> list[Face]:
        small, s = working_copy(img)
        faces = faces_in(small, s, self.detector, with_embeddings or self.gallery is not None, self.min_score)
        if self.gallery is not None:
            _identify(faces, self.gallery, self.threshold)
        return faces

    def __call__(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        return [{"faces": [f.to_dict() for f in self.faces(img)]} for img in images]


def load_predictor(run_or_name: str = "default", **options: Any) -> Predictor:
    """`run_or_name`: a detector name or "default"; options: gallery=FOLDER, threshold=0.6,
    min_score=0.6 (the detection floor; None: the detector's default)."""
    if run_or_name in ("default", "faces", "", None):
        run_or_name = DEFAULT_DETECTOR
    if run_or_name not in DETECTORS:
        from .hub import hub_model_note

        raise UsageError(hub_model_note(run_or_name))
    return Predictor(run_or_name, **options)


def _files(inputs) -> list[str]:
    from ...data.inputs import expand_inputs

    return expand_inputs(inputs).files


def _iter_faces(files: Sequence[str], predictor: "Predictor", with_embeddings: bool
                ) -> Iterator[tuple[str, Image.Image | None, float, list[Face], str | None]]:
    for path, image, scale, faces, error in iter_faces(files, predictor.detector,
                                                       with_embeddings or predictor.gallery is not None,
                                                       predictor.min_score):
        if predictor.gallery is not None:
            _identify(faces, predictor.gallery, predictor.threshold)
        yield path, image, scale, faces, error


def _draw(name: str, image: Image.Image, scale: float, faces: list[Face], out_dir: str | os.PathLike) -> Path:
    from .draw import draw_faces

    return draw_faces(image, [f.scaled(1 / scale) for f in faces], output_path(out_dir, name, ".faces.jpg"))


def _write_crops(name: str, image: Image.Image, scale: float, faces: list[Face], out_dir: str | os.PathLike) -> None:
    """`NAME_faceK.jpg`: each face's aligned 150 px chip, as the embedder sees it (NAME: visionzoo.outputs)."""
    from ...atomic import atomic_path
    from .recognize import align

    if not faces:
        return
    _, chips = align(np.asarray(image), [f.box / scale for f in faces], [f.points / scale for f in faces])
    for k, chip in enumerate(chips):
        with atomic_path(output_path(out_dir, name, f"_face{k}.jpg")) as tmp:
            Image.fromarray(chip).save(tmp, "JPEG", quality=95)


@shows(render_row, describe_row)  # in a notebook the rows draw their faces; they stay plain dicts
def predict(run_or_name: str = "default", inputs=(), *, draw: str | os.PathLike | None = None,
            crops: str | os.PathLike | None = None, **options: Any) -> list[dict[str, Any]]:
    """Per input file `{path, faces: [{box, score, landmarks, (identity, distance)}], error}`;
    `draw`: a picture of each; `crops`: each face's aligned chip."""
    predictor = load_predictor(run_or_name, **options)
    files = _files(inputs)
    names = output_names(files)
    out = []
    for path, image, scale, faces, error in _iter_faces(files, predictor, False):
        if image is not None and draw is not None:
            _draw(names[path], image, scale, faces, draw)
        if image is not None and crops is not None:
            _write_crops(names[path], image, scale, faces, crops)
        out.append({"path": path, "faces": [f.to_dict() for f in faces], "error": error})
    return out
