"""Files -> faces: decode each image at a working size, find its faces, and (when asked) embed them.
Gallery building and every faces command run on this."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from .detectors import Face, detect_faces
from .images import iter_images
from .recognize import descriptors


def faces_in(img: Image.Image, scale: float, detector: str, with_embeddings: bool,
             min_score: float | None = None) -> list[Face]:
    """Faces in a working copy, returned in the original's pixels (`scale` = original / working);
    `min_score`: the detector's floor (None: its default)."""
    faces = detect_faces(img, detector, min_score=min_score)
    if with_embeddings and faces:
        for f, e in zip(faces, descriptors(np.asarray(img), [f.box for f in faces], [f.points for f in faces])):
            f.embedding = e
    return [f.scaled(scale) for f in faces]


def iter_faces(files: Sequence[str], detector: str, with_embeddings: bool, min_score: float | None = None
               ) -> Iterator[tuple[str, Image.Image | None, float, list[Face], str | None]]:
    """(path, working image, factor to the original's pixels, faces in original pixels, error) per file."""
    for item in iter_images(files):
        if item.error:
            yield item.path, None, 1.0, [], item.error
            continue
        yield item.path, item.image, item.scale, faces_in(item.image, item.scale, detector, with_embeddings,
                                                         min_score), None
