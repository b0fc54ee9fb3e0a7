"""Detection metrics by pycocotools' COCOeval: mAP@0.5, COCO mAP@0.5:0.95, per-class AP, the
precision-recall curve, and precision / recall / errors per image at a score threshold, all read
from COCOeval's own matching (nothing here re-implements the matching or the AP).
"""
from __future__ import annotations

import contextlib
import io
from typing import Any, Sequence

import numpy as np

from .datasets import Sample
from .masks import decode_segmentation, encode_mask


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


def coco_ground_truth(samples: Sequence[Sample], classes: Sequence[str], masks: bool = False):
    """An in-memory pycocotools COCO of `samples`: image id = position, category id = class index + 1."""
    from pycocotools.coco import COCO

    images, anns = [], []
    for img_id, s in enumerate(samples):
        w, h = s.size
        images.append({"id": img_id, "width": w, "height": h, "file_name": s.path})
        for j, (box, label, crowd) in enumerate(zip(s.boxes, s.labels, s.crowd)):
            x1, y1, x2, y2 = (float(v) for v in box)
            ann = {"id": len(anns) + 1, "image_id": img_id, "category_id": int(label) + 1,
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(crowd)}
            if masks:
                seg = s.segmentations[j] if s.segmentations is not None else [[x1, y1, x2, y1, x2, y2, x1, y2]]
                m = decode_segmentation(seg, h, w)
                ann["segmentation"], ann["area"] = encode_mask(m > 0), float(m.sum())
            anns.append(ann)
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}
    with _quiet():
        gt.createIndex()
    return gt


def coco_results(predictions: Sequence[dict], classes: Sequence[str], masks: bool = False) -> list[dict]:
    """Per-image predictor outputs ({"detections": [{label, score, box, mask?}]}, in sample order)
    -> COCO result rows. Labels outside `classes` cannot match anything and are left out."""
    index = {name: i + 1 for i, name in enumerate(classes)}
    rows = []
    for img_id, pred in enumerate(predictions):
        for d in pred.get("detections") or []:
            if d["label"] not in index:
                continue
            x1, y1, x2, y2 = d["box"]
            row = {"image_id": img_id, "category_id": index[d["label"]], "score": float(d["score"]),
                   "bbox": [x1, y1, x2 - x1, y2 - y1]}
            if masks:
                if "mask" not in d:
                    continue
                row["segmentation"] = d["mask"]
            rows.append(row)
    return rows


def evaluate_predictions(samples: Sequence[Sample], predictions: Sequence[dict], classes: Sequence[str], *,
                         conf: float = 0.25, iou_type: str = "bbox") -> dict[str, Any]:
    """COCOeval of `predictions` (one per sample, same order) against the samples' boxes (or masks).

    Returns map50, map, per-class AP50 / AP, precision and recall at score >= `conf` (IoU 0.5),
    the all-class PR curve at IoU 0.5, and per image the false positives / negatives at `conf`.
    """
    from pycocotools.cocoeval import COCOeval

    masks = iou_type == "segm"
    gt = coco_ground_truth(samples, classes, masks=masks)
    rows = coco_results(predictions, classes, masks=masks)
    n_gt = int(sum(int((~s.crowd).sum()) for s in samples))
    per_class_boxes = [int(sum(int(((s.labels == i) & ~s.crowd).sum()) for s in samples)) for i in range(len(classes))]
    empty = {"map50": 0.0, "map": 0.0, "precision": 0.0, "recall": 0.0, "conf": conf, "n_images": len(samples),
             "n_boxes": n_gt, "n_detections": 0,
             "per_class": {c: {"ap50": 0.0 if n else None, "ap": 0.0 if n else None, "n_boxes": n}
                           for c, n in zip(classes, per_class_boxes) if n},
             "pr_curve": {"recall": [], "precision": []},
             "per_image": [{"false_positives": 0, "false_negatives": int((~s.crowd).sum())} for s in samples]}
    if not rows:
        return empty
    with _quiet():
        dt = gt.loadRes(rows)
        ev = COCOeval(gt, dt, iou_type)
        ev.params.imgIds = list(range(len(samples)))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # [iou, recall, class, area, maxdets]

    def ap(p: np.ndarray) -> float | None:  # None: the class has no boxes here
        valid = p[p > -1]
        return float(valid.mean()) if valid.size else None

    report = {**empty, "map": float(max(ev.stats[0], 0.0)), "map50": float(max(ev.stats[1], 0.0)),
              "n_detections": len(rows)}
    report["per_class"] = {name: {"ap50": ap(precision[0, :, k, 0, -1]), "ap": ap(precision[:, :, k, 0, -1]),
                                  "n_boxes": per_class_boxes[k]}
                           for k, name in enumerate(classes) if per_class_boxes[k]}
    curve = precision[0, :, :, 0, -1]
    has_gt = (curve > -1).any(0)
    if has_gt.any():
        report["pr_curve"] = {"recall": [float(r) for r in ev.params.recThrs],
                              "precision": [float(v) for v in np.where(curve[:, has_gt] > -1, curve[:, has_gt], 0).mean(1)]}
    # Precision / recall at the chosen threshold, from COCOeval's own matches at IoU 0.5.
    tp = fp = 0
    per_image = [{"false_positives": 0, "false_negatives": 0} for _ in samples]
    all_range = ev.params.areaRng[0]
    for e in ev.evalImgs:
        if e is None or e["aRng"] != all_range:
            continue
        scores = np.asarray(e["dtScores"])
        kept = (scores >= conf) & ~np.asarray(e["dtIgnore"][0], dtype=bool)
        matched = np.asarray(e["dtMatches"][0]) > 0
        gt_real = ~np.asarray(e["gtIgnore"], dtype=bool)
        found = int((kept & matched).sum())
        tp += found
        fp += int((kept & ~matched).sum())
        per_image[e["image_id"]]["false_positives"] += int((kept & ~matched).sum())
        per_image[e["image_id"]]["false_negatives"] += int(gt_real.sum()) - found
    report["precision"] = tp / (tp + fp) if tp + fp else 0.0
    report["recall"] = tp / n_gt if n_gt else 0.0
    report["per_image"] = per_image
    return report


def score_matches(samples: Sequence[Sample], predictions: Sequence[dict], classes: Sequence[str]
                  ) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Per class: (scores of the detections, whether each matches a true box at IoU 0.5, true boxes),
    from COCOeval's own matching (crowd boxes and what matches them left out), for threshold choices."""
    from pycocotools.cocoeval import COCOeval

    n_gt = {c: int(sum(int(((s.labels == i) & ~s.crowd).sum()) for s in samples)) for i, c in enumerate(classes)}
    found: dict[str, tuple[list, list]] = {c: ([], []) for c in classes}
    rows = coco_results(predictions, classes)
    if rows:
        gt = coco_ground_truth(samples, classes)
        with _quiet():
            ev = COCOeval(gt, gt.loadRes(rows), "bbox")
            ev.params.imgIds = list(range(len(samples)))
            ev.evaluate()
        all_range = ev.params.areaRng[0]
        for e in ev.evalImgs:
            if e is None or e["aRng"] != all_range:
                continue
            keep = ~np.asarray(e["dtIgnore"][0], dtype=bool)
            scores, hits = found[classes[e["category_id"] - 1]]
            scores += np.asarray(e["dtScores"])[keep].tolist()
            hits += (np.asarray(e["dtMatches"][0]) > 0)[keep].tolist()
    return {c: (np.asarray(s, float), np.asarray(h, bool), n_gt[c]) for c, (s, h) in found.items()
            if n_gt[c] or s}
