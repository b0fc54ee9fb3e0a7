"""The operating point of a detector: which boxes `predict` keeps by default, chosen on the validation
images when training ends, recorded in the run's config.json, and used by predict, evaluate, serve and
video alike (`--conf` / `--iou` override it).

mAP ranks boxes and forgives extra ones; a user looks at the picture. So after training, the saved
run's validation predictions are post-processed with each candidate of class-aware NMS IoU and
box-in-box suppression (a box lying mostly inside a higher-scoring box of its class: the partial
boxes of one animal), and for each the score threshold with the highest F1 (IoU 0.5, COCOeval's own
matching) is found; the best candidate becomes the operating point. A class with enough validation
boxes gets a threshold of its own.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np

DEFAULT_CONF = 0.25
EVAL_CONF = 0.001        # evaluation keeps (almost) every box: COCO AP integrates over all scores
NMS_IOUS = (0.3, 0.4, 0.5)
CONTAINS = (None, 0.8)
MIN_CLASS_BOXES = 20     # validation boxes a class needs for a threshold of its own


@dataclass
class OperatingPoint:
    conf: float = DEFAULT_CONF
    per_class: dict[str, float] = field(default_factory=dict)
    nms_iou: float = 0.5
    contain: float | None = None      # drop a box whose area lies at least this much inside a better box of its class
    measured: dict[str, float] = field(default_factory=dict)   # precision, recall, f1, boxes per image on val

    def threshold(self, label: str) -> float:
        return self.per_class.get(label, self.conf)

    @property
    def lowest(self) -> float:
        return min([self.conf, *self.per_class.values()])

    def with_conf(self, conf: float) -> "OperatingPoint":
        """The same post-processing with one threshold for every class (`--conf`)."""
        return replace(self, conf=float(conf), per_class={}, measured={})

    def apply(self, detections: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The detections (one image) this point keeps, best first."""
        return self.keep(suppress(detections, self.nms_iou, self.contain))

    def select(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """`apply` on one image's arrays (`labels` index `names`): the indices kept, best first. Thresholding
        first gives what `apply` gives: suppression is greedy by score within a class, so a box below its
        class's threshold never decides the fate of a better one."""
        thresholds = np.array([self.threshold(n) for n in names], dtype=np.float32)
        above = np.flatnonzero(scores >= thresholds[labels])
        return above[suppress_arrays(boxes[above], scores[above], labels[above], self.nms_iou, self.contain)]

    def keep(self, ranked: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Of detections already suppressed (`suppress`), those scoring at least their class's threshold."""
        return [d for d in ranked if d["score"] >= self.threshold(d["label"])]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> "OperatingPoint":
        """The run's recorded point; runs saved before there was one keep their recorded `conf`."""
        config = config or {}
        point = config.get("operating_point")
        if point:
            return cls(**{k: v for k, v in point.items() if k in cls.__dataclass_fields__})
        return cls(conf=float(config.get("conf", DEFAULT_CONF)))


def raw_point() -> OperatingPoint:
    """Every box the model itself keeps (its own NMS at 0.5): what mAP is computed on and points chosen from."""
    return OperatingPoint(conf=EVAL_CONF, nms_iou=0.5)


def suppress(detections: list[dict[str, Any]], nms_iou: float, contain: float | None) -> list[dict[str, Any]]:
    """Class-aware NMS at `nms_iou`, then (with `contain`) drop a box whose area lies at least `contain`
    inside a higher-scoring box of the same class. Returns the kept detections, best first."""
    if not detections:
        return []
    names = sorted({d["label"] for d in detections})
    keep = suppress_arrays(np.array([d["box"] for d in detections], dtype=np.float32),
                           np.array([d["score"] for d in detections], dtype=np.float32),
                           np.array([names.index(d["label"]) for d in detections]), nms_iou, contain)
    return [detections[i] for i in keep]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4)."""
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def suppress_arrays(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, nms_iou: float,
                    contain: float | None) -> np.ndarray:
    """`suppress` on arrays (N x 4 boxes, N scores, N class ids): the indices kept, best first. NumPy, not
    torchvision's NMS: the handful of boxes one image keeps needs no torch, and without it a cached ONNX
    export predicts with no torch import at all (predictor.py); greedy NMS and box-in-box suppression are
    then one rule over two overlap matrices."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    if len(order) < 2:
        return order
    b = np.asarray(boxes, np.float64)[order]
    lo, hi = np.maximum(b[:, None, :2], b[None, :, :2]), np.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    same = np.asarray(labels)[order]
    same = same[:, None] == same[None, :]
    keep = _greedy(same & (inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-12) > nms_iou))
    if contain is not None:
        inside = same & (inter / np.maximum(area, 1e-9)[:, None] >= contain)
        keep[keep] = _greedy(inside[np.ix_(keep, keep)])
    return order[keep]


def _greedy(suppresses: np.ndarray) -> np.ndarray:
    """Greedy suppression over boxes sorted best first: box i is kept iff no kept better box j (j < i) has
    suppresses[i, j]. Iterating that rule from "all kept" settles the first k boxes after k rounds (in
    practice one or two), each round one matrix operation."""
    suppresses = suppresses & np.tri(len(suppresses), k=-1, dtype=bool)
    keep = np.ones(len(suppresses), dtype=bool)
    while True:
        settled = ~(suppresses & keep[None, :]).any(1)
        if (settled == keep).all():
            return keep
        keep = settled


def _best_f1(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> tuple[float, float, float, float]:
    """(threshold, f1, precision, recall) of the threshold with the highest F1 over these detections."""
    if not len(scores) or not n_gt:
        return 1.0, 0.0, 0.0, 0.0
    order = np.argsort(-scores, kind="stable")
    s, hits = scores[order], tp[order].astype(float)
    tps = np.cumsum(hits)
    precision, recall = tps / np.arange(1, len(s) + 1), tps / n_gt
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    last = np.r_[s[1:] != s[:-1], True]      # a threshold keeps every box of its score
    k = int(np.argmax(np.where(last, f1, -1)))
    return float(s[k]), float(f1[k]), float(precision[k]), float(recall[k])


def choose(samples: Sequence[Any], predictions: Sequence[dict[str, Any]], classes: Sequence[str]) -> OperatingPoint:
    """The operating point with the highest F1 on these (validation) samples; `predictions` are the run's
    boxes at a near-zero threshold (evaluation.predict_samples), in sample order."""
    from .metrics import score_matches

    best: tuple[float, OperatingPoint] | None = None
    for nms in NMS_IOUS:
        for contain in CONTAINS:
            kept = [{**p, "detections": suppress(p.get("detections") or [], nms, contain)} for p in predictions]
            matches = score_matches(samples, kept, classes)
            scores = np.concatenate([m[0] for m in matches.values()]) if matches else np.zeros(0)
            hits = np.concatenate([m[1] for m in matches.values()]) if matches else np.zeros(0, bool)
            n_gt = sum(m[2] for m in matches.values())
            conf, f1, _, _ = _best_f1(scores, hits, n_gt)
            if best is None or f1 > best[0] + 1e-9:
                per_class = {name: _best_f1(*m)[0] for name, m in matches.items() if m[2] >= MIN_CLASS_BOXES}
                best = (f1, OperatingPoint(conf=conf, per_class=per_class, nms_iou=nms, contain=contain))
    point = best[1] if best else OperatingPoint()
    point.measured = measure(point, samples, predictions, classes)
    return point


def measure(point: OperatingPoint, samples: Sequence[Any], predictions: Sequence[dict[str, Any]],
            classes: Sequence[str]) -> dict[str, float]:
    """Precision, recall, F1 and boxes per image of what `point` keeps of `predictions`, against the truth."""
    from .metrics import score_matches

    kept = [{**p, "detections": point.apply(p.get("detections") or [])} for p in predictions]
    matches = score_matches(samples, kept, classes)
    tp = sum(int(m[1].sum()) for m in matches.values())
    n_det = sum(len(p["detections"]) for p in kept)
    n_gt = sum(m[2] for m in matches.values())
    precision, recall = (tp / n_det if n_det else 0.0), (tp / n_gt if n_gt else 0.0)
    return {"precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
            "boxes_per_image": round(n_det / max(len(kept), 1), 3),
            "true_boxes_per_image": round(n_gt / max(len(kept), 1), 3)}


def threshold_curves(samples: Sequence[Any], ranked: Sequence[dict[str, Any]],
                     classes: Sequence[str]) -> dict[str, list[float]]:
    """Precision, recall and F1 against the score threshold of boxes already suppressed as the operating
    point does (Ultralytics' F1-confidence and P/R-confidence curves)."""
    from .metrics import score_matches

    matches = score_matches(samples, ranked, classes)
    scores = np.concatenate([m[0] for m in matches.values()]) if matches else np.zeros(0)
    hits = np.concatenate([m[1] for m in matches.values()]) if matches else np.zeros(0, bool)
    n_gt = max(sum(m[2] for m in matches.values()), 1)
    grid = np.linspace(0, 1, 101)
    tp = np.array([(hits & (scores >= t)).sum() for t in grid], float)
    n = np.array([(scores >= t).sum() for t in grid], float)
    precision = np.where(n > 0, tp / np.maximum(n, 1), 1.0)
    recall = tp / n_gt
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return {"conf": grid.tolist(), "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist()}
