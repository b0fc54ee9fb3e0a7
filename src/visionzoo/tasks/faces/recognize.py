"""dlib's ResNet face descriptors (128-d, 99.38% on LFW), their aligned chips, and the distance threshold.

A face is aligned as dlib's `compute_face_descriptor` aligns it: `get_face_chip` from its 5
landmarks, 150 x 150 px with 0.25 padding; the chip goes through dlib's network rebuilt in ONNX
Runtime (dlib_onnx.py), which gives dlib's descriptors ~13x faster. `reference_descriptors`
runs dlib itself, the reference the ONNX graph is checked against.

THRESHOLD = 0.6 is the Euclidean distance dlib's author and the face_recognition package use
("tolerance"): pairs of the same person fall below it on LFW with the 99.38% accuracy quoted.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .models import DLIB_LOCK, dlib_model_path, face_recognizer, shape_predictor

THRESHOLD = 0.6
DIM = 128
CHIP_SIZE = 150       # dlib's compute_face_descriptor: 150 x 150 chips ...
CHIP_PADDING = 0.25   # ... with this much of the face size around the aligned face


def _rect(box: Sequence[float]):
    import dlib

    return dlib.rectangle(*[int(round(v)) for v in box[:2]], *[int(round(v)) - 1 for v in box[2:]])


def align(img: np.ndarray, boxes: Sequence[np.ndarray], points: Sequence[np.ndarray] | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """(5 landmarks (N, 5, 2), uint8 aligned chips (N, 150, 150, 3)) of the faces in `boxes` of an
    RGB array: dlib's 5-point model finds the landmarks when `points` is None."""
    import dlib

    chips = np.zeros((len(boxes), CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    found = np.zeros((len(boxes), 5, 2), np.float64)
    with DLIB_LOCK:
        for i, box in enumerate(boxes):
            if points is None:
                shape = shape_predictor(5)(img, _rect(box))
            else:
                parts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in points[i]])
                shape = dlib.full_object_detection(_rect(box), parts)
            found[i] = [[p.x, p.y] for p in shape.parts()]
            chips[i] = dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    return found, chips


def embed_chips(chips: np.ndarray) -> np.ndarray:
    """(N, 128) float32 descriptors of aligned chips (ONNX Runtime)."""
    from .dlib_onnx import embedder

    return embedder(dlib_model_path("resnet"))(chips)


def descriptors(img: np.ndarray, boxes: Sequence[np.ndarray], points: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """(N, 128) float32 descriptors of the faces in `boxes` (RGB uint8 array, its pixels)."""
    return embed_chips(align(img, boxes, points)[1])


def reference_descriptors(img: np.ndarray, boxes: Sequence[np.ndarray]) -> np.ndarray:
    """The same descriptors computed by dlib itself (`compute_face_descriptor`), ~130 ms a face."""
    out = np.zeros((len(boxes), DIM), np.float32)
    with DLIB_LOCK:
        for i, box in enumerate(boxes):
            shape = shape_predictor(5)(img, _rect(box))
            out[i] = np.asarray(face_recognizer().compute_face_descriptor(img, shape), np.float32)
    return out


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances."""
    a, b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T  # no (N, M, D) temporary
    return np.sqrt(np.maximum(squared, 0))
