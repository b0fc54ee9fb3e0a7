"""The operating point of a two-class segmenter: the foreground probability threshold that gives
the best mIoU on the validation images, chosen once after training and stored in the run.

A network trained on few or unbalanced masks is often better calibrated for one class than the
other, so 0.5 (argmax) is rarely the threshold a user would pick looking at the masks; one pass
over the validation pixels, kept as two histograms, scores every threshold at once.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...data.decode import ImageDecodeError, load_rgb
from .data import Sample, read_mask, to_classes

BINS = 100  # thresholds 0.00, 0.01, ... 0.99


def miou_by_threshold(fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """mIoU of the two classes at each threshold i / BINS, from the histograms of class-1 probability
    over the true class-1 (`fg`) and class-0 (`bg`) pixels. A pixel is class 1 when p >= i / BINS."""
    tp = fg[::-1].cumsum()[::-1]          # foreground pixels at or above each threshold
    fp = bg[::-1].cumsum()[::-1]
    fn, tn = fg.sum() - tp, bg.sum() - fp
    iou_fg = np.divide(tp, tp + fp + fn, out=np.zeros(len(fg)), where=(tp + fp + fn) > 0)
    iou_bg = np.divide(tn, tn + fn + fp, out=np.zeros(len(fg)), where=(tn + fn + fp) > 0)
    return (iou_fg + iou_bg) / 2


def choose_threshold(predictor, samples: Sequence[Sample]) -> dict[str, Any] | None:
    """{"threshold", "miou", "miou_at_half", "images"} on `samples`; None unless the segmenter has
    two classes and the samples have both. Ties go to the threshold nearest 0.5."""
    if len(predictor.classes) != 2:
        return None
    fg, bg, images = np.zeros(BINS), np.zeros(BINS), 0
    for s in samples:
        try:
            p = predictor.foreground(load_rgb(s.image))
        except ImageDecodeError:
            continue  # the report names it
        truth = to_classes(read_mask(s.mask)[0], s.binary)
        if truth.shape != p.shape:
            continue
        bins = np.minimum((p * BINS).astype(np.int64), BINS - 1)
        fg += np.bincount(bins[truth == 1], minlength=BINS)
        bg += np.bincount(bins[truth == 0], minlength=BINS)
        images += 1
    if not fg.sum() or not bg.sum():
        return None
    miou = miou_by_threshold(fg, bg)
    best = np.flatnonzero(miou >= miou.max() - 1e-9)
    i = int(best[np.argmin(np.abs(best - BINS // 2))])
    return {"threshold": i / BINS, "miou": round(float(miou[i]), 6),
            "miou_at_half": round(float(miou[BINS // 2]), 6), "images": images}

