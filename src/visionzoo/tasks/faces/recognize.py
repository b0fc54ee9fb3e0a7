"""dlib's ResNet face descriptors (128-d, 99.38% on LFW) and the distance threshold.

THRESHOLD = 0.6 is the Euclidean distance dlib's author and the face_recognition package use
("tolerance"): pairs of the same person fall below it on LFW with the 99.38% accuracy quoted.
"""
from __future__ import annotations

import numpy as np

from .models import DLIB_LOCK, face_recognizer, shape_predictor

THRESHOLD = 0.6
DIM = 128


def descriptors(img: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
    """(N, 128) float32 descriptors of the faces in `boxes` (RGB uint8 array, its pixels)."""
    import dlib

    out = np.zeros((len(boxes), DIM), np.float32)
    with DLIB_LOCK:
        for i, box in enumerate(boxes):
            rect = dlib.rectangle(*[int(round(v)) for v in box[:2]], *[int(round(v)) - 1 for v in box[2:]])
            shape = shape_predictor(5)(img, rect)
            out[i] = np.asarray(face_recognizer().compute_face_descriptor(img, shape), np.float32)
    return out


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances."""
    a, b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    return np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0))
