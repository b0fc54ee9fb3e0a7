"""MediaPipe BlazeFace (full range) on LiteRT: the anchors, box decoding and weighted NMS of
MediaPipe's face_detection_full_range graph (ssd_anchors_calculator, tensors_to_detections,
non_max_suppression with WEIGHTED overlap), in numpy.

The whole image is letterboxed into the model's 192 x 192 input, so one pass costs the same
for any image size; faces smaller than about 1/12 of the image's long side are found by a second
pass over overlapping tiles (see `detect`).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from .models import tflite_model

MIN_SCORE = 0.5             # MediaPipe's min_score_thresh for the full-range model
NMS_IOU = 0.3               # MediaPipe's min_suppression_threshold
KEYPOINTS = 6               # right eye, left eye, nose tip, mouth centre, right tragion, left tragion (subject's sides)


@lru_cache(maxsize=None)
def anchors(size: int) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1]: full range = one stride-4 layer, one anchor per cell;
    short range = strides 8, 16, 16, 16 with two anchors per cell and layer."""
    strides, per_layer = ([4], 1) if size == 192 else ([8, 16, 16, 16], 2)
    out = []
    for stride in sorted(set(strides)):
        n = size // stride
        repeats = per_layer * strides.count(stride)
        c = (np.arange(n) + 0.5) / n
        grid = np.stack(np.meshgrid(c, c), -1).reshape(-1, 2)  # x fastest, as MediaPipe lays them out
        out.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(out).astype(np.float32)


def _letterbox(img: Image.Image, size: int) -> tuple[np.ndarray, float, float, float]:
    """(1, size, size, 3) float input in [-1, 1], the scale and the x/y padding (in input pixels)."""
    w, h = img.size
    s = size / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    canvas = np.zeros((size, size, 3), np.float32)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas[py:py + nh, px:px + nw] = np.asarray(img.resize((nw, nh), Image.BILINEAR, reducing_gap=2.0), np.float32)
    return (canvas / 127.5 - 1.0)[None], s, px, py


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def weighted_nms(rows: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression: each kept detection is the score-weighted mean of the
    detections overlapping the best one (steadier boxes than plain NMS). rows: (N, 4 + 2K)."""
    order = np.argsort(-scores, kind="stable")
    rows, scores = rows[order], scores[order]
    kept_rows, kept_scores = [], []
    alive = np.ones(len(rows), bool)
    for i in range(len(rows)):
        if not alive[i]:
            continue
        group = alive & (_iou(rows[i, :4], rows[:, :4]) > iou)
        group[i] = True
        w = scores[group][:, None]
        kept_rows.append((rows[group] * w).sum(0) / w.sum())
        kept_scores.append(scores[i])
        alive &= ~group
    if not kept_rows:
        return np.zeros((0, rows.shape[1]), np.float32), np.zeros(0, np.float32)
    return np.stack(kept_rows), np.array(kept_scores, np.float32)


def input_size(model_key: str = "blazeface") -> int:
    """The side of the model's square input (192 for the full-range model)."""
    return tflite_model(model_key).input_size


def detect_once(img: Image.Image, model_key: str = "blazeface", min_score: float = MIN_SCORE) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores) for one image: rows (N, 16) = x1, y1, x2, y2 then 6 (x, y) keypoints, in `img` pixels."""
    model = tflite_model(model_key)
    size = model.input_size
    x, s, px, py = _letterbox(img, size)
    raw, logits = model(x)
    raw = raw.reshape(-1, 4 + 2 * KEYPOINTS)
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1), -80, 80)))
    keep = scores >= min_score
    if not keep.any():
        return np.zeros((0, 4 + 2 * KEYPOINTS), np.float32), np.zeros(0, np.float32)
    raw, scores = raw[keep], scores[keep]
    a = anchors(size)[keep] * size  # anchor centres in input pixels
    cx, cy = raw[:, 0] + a[:, 0], raw[:, 1] + a[:, 1]
    w, h = raw[:, 2], raw[:, 3]
    rows = np.empty_like(raw)
    rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3] = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    kp = raw[:, 4:].reshape(-1, KEYPOINTS, 2) + a[:, None, :]
    rows[:, 4:] = kp.reshape(-1, 2 * KEYPOINTS)
    valid = (w > 0) & (h > 0)
    rows, scores = weighted_nms(rows[valid], scores[valid])
    rows[:, 0::2] = (rows[:, 0::2] - px) / s  # letterbox back to image pixels
    rows[:, 1::2] = (rows[:, 1::2] - py) / s
    return rows, scores
