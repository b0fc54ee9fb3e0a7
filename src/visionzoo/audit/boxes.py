"""Box checks of a detection set.

Rules, certain by construction: boxes a few pixels wide, the same object boxed twice (same class,
IoU >= TWICE_IOU), classes with boxes in a single image. The readers' own notes (boxes outside
the image, clipped, empty; unknown classes) arrive as findings with the inventory.

Model-based, cleanlab's object-detection scores (ObjectLab) on out-of-sample predictions
(detector.py): `find_label_issues` flags the images whose annotations a detector confidently
disagrees with, `get_label_quality_scores` ranks them, and the per-box overlooked / badly located /
swapped scores say which box and how."""
from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any, Sequence

import numpy as np

from ..tasks.detect.operating import box_iou
from .findings import Finding
from .inventory import Item

MIN_BOX = 4              # px: a box narrower or lower than this marks no visible object
TWICE_IOU = 0.9
BOX_CONF = 0.5           # detector boxes this confident are named in a finding's detail


def _box(b: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in b) + "]"


def rule_findings(samples: Sequence[Any], classes: list[str], items: dict[str, Item]) -> list[Finding]:
    out = []
    images_of: dict[int, list[str]] = {}
    for s in samples:
        split = items[s.path].split
        for label in set(s.labels.tolist()):
            images_of.setdefault(label, []).append(s.path)
        for box, label in zip(s.boxes, s.labels):
            w, h = box[2] - box[0], box[3] - box[1]
            if min(w, h) < MIN_BOX:
                out.append(Finding("box_error", s.path, 1.0, f"degenerate box {_box(box)}: {w:.0f}x{h:.0f} px",
                                   given_label=classes[label], split=split))
        if len(s.boxes) > 1:
            iou = np.triu(box_iou(s.boxes, s.boxes), 1)
            for i, j in zip(*np.nonzero(iou >= TWICE_IOU)):
                if s.labels[i] == s.labels[j]:
                    out.append(Finding("box_error", s.path, float(iou[i, j]), f"boxed twice: {_box(s.boxes[i])} and "
                                       f"{_box(s.boxes[j])} overlap IoU {iou[i, j]:.2f}",
                                       given_label=classes[s.labels[i]], split=split))
    for label, paths in images_of.items():
        if len(paths) == 1:
            out.append(Finding("rare_class", paths[0], 1.0, f"the only image with a {classes[label]!r} box",
                               given_label=classes[label], split=items[paths[0]].split))
    return out


def _cleanlab_inputs(samples: Sequence[Any], predictions: Sequence[dict[str, Any]], classes: list[str]):
    labels = [{"bboxes": s.boxes.astype(np.float64).reshape(-1, 4), "labels": s.labels.astype(int),
               "image_name": s.path} for s in samples]
    index = {c: i for i, c in enumerate(classes)}
    preds = []
    for p in predictions:
        per_class = [[] for _ in classes]
        for d in p.get("detections") or []:
            if d["label"] in index:
                per_class[index[d["label"]]].append([*d["box"], d["score"]])
        preds.append(np.asarray([np.asarray(rows, dtype=np.float64).reshape(-1, 5) for rows in per_class],
                                dtype=object))
    return labels, preds


def _worst(i: int, s: Any, pred: np.ndarray, subtype: dict[str, list[np.ndarray]],
           classes: list[str]) -> tuple[str, str, str]:
    """(detail, given label, suggested label) for the lowest-scored box of image i."""
    options = []
    for name, per_image in subtype.items():
        scores = np.asarray(per_image[i], dtype=float)
        if scores.size and not np.all(np.isnan(scores)):
            j = int(np.nanargmin(scores))
            options.append((float(scores[j]), name, j))
    if not options:
        return "the detector disagrees with the boxes", "", ""
    _, name, j = min(options)
    if name == "overlooked":
        flat = [(c, row) for c, rows in enumerate(pred) for row in rows]
        c, row = flat[j]
        return (f"missing box: the detector finds a {classes[c]!r} at {_box(row[:4])} (score {row[4]:.2f}) "
                f"where no box is", "", classes[c])
    label = classes[int(s.labels[j])]
    flat = [(c, row) for c, rows in enumerate(pred) for row in rows]
    if name == "badloc":
        same = [row for c, row in flat if c == s.labels[j] and row[4] >= BOX_CONF]
        near = max(same, key=lambda r: (float(box_iou(s.boxes[j:j + 1], r[None, :4])[0, 0]), r[4]), default=None)
        where = f" at {_box(near[:4])} (score {near[4]:.2f})" if near is not None else " elsewhere"
        return f"badly placed box {_box(s.boxes[j])}: the detector puts this {label!r}{where}", label, label
    best = max(flat, key=lambda cr: float(box_iou(s.boxes[j:j + 1], cr[1][None, :4])[0, 0]) * cr[1][4], default=None)
    other = classes[best[0]] if best is not None else ""
    return f"box {_box(s.boxes[j])} labelled {label!r}: the detector sees {other!r} there", label, other


def model_findings(samples: Sequence[Any], predictions: Sequence[dict[str, Any]], classes: list[str],
                   items: dict[str, Item]) -> tuple[list[Finding], dict[str, Any]]:
    """Images whose boxes the out-of-sample detector confidently disagrees with, worst first."""
    from cleanlab.object_detection.filter import find_label_issues
    from cleanlab.object_detection.rank import (
        compute_badloc_box_scores,
        compute_overlooked_box_scores,
        compute_swap_box_scores,
        get_label_quality_scores,
    )

    labels, preds = _cleanlab_inputs(samples, predictions, classes)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # cleanlab prints its pruning
        warnings.simplefilter("ignore")
        flagged = find_label_issues(labels, preds)
        quality = get_label_quality_scores(labels, preds)
        subtype = {"overlooked": compute_overlooked_box_scores(labels=labels, predictions=preds),
                   "badloc": compute_badloc_box_scores(labels=labels, predictions=preds),
                   "swap": compute_swap_box_scores(labels=labels, predictions=preds)}
    out = []
    for i in np.flatnonzero(flagged):
        s = samples[i]
        detail, given, suggested = _worst(int(i), s, preds[i], subtype, classes)
        out.append(Finding("box_error", s.path, 1 - float(quality[i]), detail, given_label=given,
                           suggested_label=suggested, split=items[s.path].split))
    return out, {"flagged": len(out), "images": len(samples),
                 "median_quality": round(float(np.median(quality)), 4) if len(quality) else None}
