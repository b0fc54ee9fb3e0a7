"""Face detectors (BlazeFace, dlib HOG, dlib CNN) behind one call, plus dlib's 5-point landmarks.

Every detector returns boxes in the given image's pixels; every face then gets dlib's 5-point
landmarks (eye corners and nose), which also align the face for the 128-d embedding, so the
landmarks and the embeddings are the same whichever detector found the face.

Why BlazeFace is the default: it is the fastest (docs/faces.md, benchmarks/faces_bench.py) and,
unlike dlib's HOG, is not limited to upright frontal faces.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ...errors import UsageError
from . import blazeface
from .models import DLIB_LOCK, cnn_detector, hog_detector, shape_predictor

DETECTORS = ("blazeface", "hog", "cnn")
DEFAULT_DETECTOR = "blazeface"
# BlazeFace's floor, chosen on a labelled set (docs/faces.md, "The score floor"): 59 faces in photos
# and video frames (portraits, a group photo, sign-language videos, copies of the portraits
# turned 12 degrees, grey, halved, JPEG q25) scored >= 0.65 (the grey copy; the turned one 0.75),
# while boxes on 134 non-face pictures (skimage photos, textures, membrane EM, a video of a table,
# lfw's non-faces) reached 0.74 once (a motorcycle's headlamp), then 0.56 (a galaxy field), 0.51.
# 0.6 keeps every face and one non-face box (F1 0.99); 0.75 drops that box and the grey and
# turned copies. MediaPipe's own 0.5 keeps 3 non-face boxes. 25 px grey faces (lfw crops) score
# low: 0.6 finds 71% of them, 0.5 86%.
MIN_SCORE = 0.6
# dlib's 5-point model: two corners of each eye, then the bottom of the nose (subject's left/right).
LANDMARK_NAMES = ("left_eye_outer", "left_eye_inner", "right_eye_outer", "right_eye_inner", "nose")
HOG_MAX_SIDE = 1024      # HOG/CNN run on a copy this big at most, upsampled once: faces >= ~40 px there
CNN_MAX_SIDE = 800       # dlib's CNN costs ~seconds per megapixel on a CPU
MIN_TILE = 384           # BlazeFace's tile passes stop at tiles this small: faces >= ~24 px
TILE_OVERLAP = 0.25
TILE_MAX_FACE = 0.25     # a tile pass keeps only faces smaller than this fraction of the tile


@dataclass
class Face:
    """One detected face in the pixels of the image it was found in."""

    box: np.ndarray                 # x1, y1, x2, y2 (float)
    score: float                    # the detector's confidence (BlazeFace: probability; dlib: SVM margin)
    points: np.ndarray              # (5, 2) dlib landmarks, LANDMARK_NAMES order
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. identity, distance (set by find)
    embedding: np.ndarray | None = None  # 128-d descriptor, when asked for (not written to JSON)

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))

    def scaled(self, s: float) -> "Face":
        return Face(self.box * s, self.score, self.points * s, dict(self.extra), self.embedding)

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": {n: [round(float(x), 1), round(float(y), 1)] for n, (x, y) in zip(LANDMARK_NAMES, self.points)},
            **self.extra,
        }


def default_min_score(detector: str) -> float:
    """The floor a detector's scores must reach when none is given: MIN_SCORE for BlazeFace (a
    probability), 0 for dlib's detectors (an SVM margin)."""
    return MIN_SCORE if detector == "blazeface" else 0.0


def check_detector(name: str) -> str:
    if name not in DETECTORS:
        raise UsageError(f"unknown face detector {name!r}; use one of {', '.join(DETECTORS)}")
    return name


def _shrunk(img: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    """A copy whose long side is at most `max_side`, and the factor back to `img` pixels."""
    s = max(img.size) / max_side
    if s <= 1:
        return img, 1.0
    return img.resize((max(1, round(img.width / s)), max(1, round(img.height / s))), Image.BILINEAR), s


def _dlib_boxes(img: Image.Image, kind: str, upsample: int) -> tuple[np.ndarray, np.ndarray]:
    small, s = _shrunk(img, HOG_MAX_SIDE if kind == "hog" else CNN_MAX_SIDE)
    arr = np.asarray(small)
    with DLIB_LOCK:
        if kind == "hog":
            rects, scores, _ = hog_detector().run(arr, upsample, 0.0)
        else:
            found = cnn_detector()(arr, upsample)
            rects, scores = [d.rect for d in found], [d.confidence for d in found]
    boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float64).reshape(-1, 4)
    return boxes * s, np.asarray(scores, np.float64)


def _tiles(w: int, h: int, side: int) -> list[tuple[int, int, int, int]]:
    step = max(1, int(side * (1 - TILE_OVERLAP)))
    xs = list(range(0, max(0, w - side) + 1, step))
    ys = list(range(0, max(0, h - side) + 1, step))
    if xs[-1] + side < w:
        xs.append(w - side)
    if ys[-1] + side < h:
        ys.append(h - side)
    return [(x, y, min(w, x + side), min(h, y + side)) for y in ys for x in xs]


def _tile_sides(long_side: int, min_tile: int = MIN_TILE, ratio: int = 2) -> list[int]:
    """Tile sizes shrinking by `ratio` from 1/ratio of the image down to `min_tile`, ending at
    `min_tile` itself so the smallest faces found (~6% of a tile) are the same ~24 px for every
    image size. A pass finds faces of ~1/12 to TILE_MAX_FACE of its tile, so levels up to 3x
    apart still chain: ratio 3 finds the same faces with fewer passes, ratio 2 sees each face at
    more scales."""
    sides, side = [], long_side // ratio
    while side >= min_tile:
        sides.append(side)
        side //= ratio
    if long_side > 1.5 * min_tile and (not sides or sides[-1] > 1.5 * min_tile):
        sides.append(min_tile)
    return sides


def _blazeface_boxes(img: Image.Image, min_score: float, min_tile: int = MIN_TILE, ratio: int = 2
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the whole image, then passes over overlapping tiles (shrinking by `ratio`
    down to `min_tile`) for faces too small for the 192 px input; each tile pass keeps only faces
    small for that tile and clear of its inner edges, and weighted NMS merges everything. Candidates
    are MediaPipe's (score >= 0.5, or `min_score` if lower): the floor decides which merged faces are
    kept, so raising it never moves a box."""
    candidate = min(blazeface.MIN_SCORE, min_score)
    rows, scores = blazeface.detect_once(img, min_score=candidate)
    found_rows, found_scores = [rows[:, :4]], [scores]
    w, h = img.size
    size = blazeface.input_size()
    for side in _tile_sides(max(w, h), min_tile, ratio):
        # one resize per level, then each tile is a plain crop of the model's input size
        k = size / side
        scaled = img.resize((max(1, round(w * k)), max(1, round(h * k))), Image.BILINEAR, reducing_gap=2.0)
        for x1, y1, x2, y2 in _tiles(w, h, side):
            sx, sy = round(x1 * k), round(y1 * k)
            r, sc = blazeface.detect_once(scaled.crop((sx, sy, sx + size, sy + size)), min_score=candidate)
            if not len(r):
                continue
            b = r[:, :4] / k + [sx / k, sy / k, sx / k, sy / k]
            small = (b[:, 2] - b[:, 0]) < TILE_MAX_FACE * side
            margin = 0.02 * side
            inner = (((b[:, 0] > x1 + margin) | (x1 == 0)) & ((b[:, 1] > y1 + margin) | (y1 == 0))
                     & ((b[:, 2] < x2 - margin) | (x2 >= w)) & ((b[:, 3] < y2 - margin) | (y2 >= h)))
            keep = small & inner
            found_rows.append(b[keep])
            found_scores.append(sc[keep])
    boxes, scores = blazeface.weighted_nms(np.concatenate(found_rows), np.concatenate(found_scores))
    kept = scores >= min_score
    boxes, scores = boxes[kept], scores[kept]
    if len(boxes):
        # BlazeFace boxes are square and a little larger and higher than dlib's, whose 5-point
        # model was trained on dlib boxes: move them onto dlib's convention (measured on the
        # faces data set: size x 0.94, centre + 0.043 of the size downwards).
        size = boxes[:, 2] - boxes[:, 0]
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2 + 0.043 * size
        half = 0.47 * size
        boxes = np.stack([cx - half, cy - half, cx + half, cy + half], 1)
    return boxes, scores


def landmarks5(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    """dlib's 5 points for a face box (any detector's) in the same pixels."""
    import dlib

    rect = dlib.rectangle(*[int(round(v)) for v in box[:2]], *[int(round(v)) - 1 for v in box[2:]])
    with DLIB_LOCK:
        shape = shape_predictor(5)(img, rect)
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64)


def face_boxes(img: Image.Image, detector: str = DEFAULT_DETECTOR, *, min_score: float | None = None,
               upsample: int = 1, min_tile: int = MIN_TILE, tile_ratio: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(boxes, scores) of the faces in an RGB image, largest first, each at least 4 px inside it
    (boxes as the detector gave them, possibly past the image's edges). BlazeFace's tile passes:
    `min_tile` is the smallest (it sets the smallest face found, ~1/12 of it), `tile_ratio` the
    step between their sizes."""
    check_detector(detector)
    if min(img.size) < 8:
        return np.zeros((0, 4)), np.zeros(0)
    if detector == "blazeface":
        boxes, scores = _blazeface_boxes(img, default_min_score(detector) if min_score is None else min_score,
                                         min_tile, tile_ratio)
    else:
        boxes, scores = _dlib_boxes(img, detector, upsample)
        if min_score is not None:
            boxes, scores = boxes[scores >= min_score], scores[scores >= min_score]
    w, h = img.size
    clipped = np.clip(boxes, 0, [w, h, w, h]).reshape(-1, 4)
    size = clipped[:, 2:] - clipped[:, :2]
    keep = (size >= 4).all(1)
    order = np.argsort(-(size[:, 0] * size[:, 1])[keep], kind="stable")
    return np.asarray(boxes).reshape(-1, 4)[keep][order], np.asarray(scores)[keep][order]


def detect_faces(img: Image.Image, detector: str = DEFAULT_DETECTOR, *, min_score: float | None = None,
                 upsample: int = 1) -> list[Face]:
    """Faces in an RGB image, largest first. `min_score` defaults to MIN_SCORE (0.6) for BlazeFace
    and 0 for dlib's detectors (their SVM margin); `upsample` (dlib only) doubles the image that many times
    first, to find faces down to ~40 px (1) or ~20 px (2) in the detector's working copy."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    boxes, scores = face_boxes(img, detector, min_score=min_score, upsample=upsample)
    w, h = img.size
    arr = np.asarray(img)
    return [Face(np.clip(box, 0, [w, h, w, h]), float(score), landmarks5(arr, box)) for box, score in zip(boxes, scores)]
