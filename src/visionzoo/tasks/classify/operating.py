"""The operating point of a two-class classifier trained on unbalanced classes.

Argmax favours the class that filled most of the training set; a user who trains "defect" against
ten times as many "ok" photos wants the defects found. On the validation images we choose the
probability threshold of the rarer class that maximises macro F1, and fold it into the head's bias
(deciding p >= t is adding log((1 - t) / t) to that class's logit: a prior shift), so every path
that runs the saved network (classify, predict, serve, ONNX export) decides the same way with no
extra code. The shown probabilities are those of the shifted prior: 0.5 at the threshold.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

UNBALANCED = 1.5     # majority / minority ratio in training from which the threshold is chosen
MIN_PER_CLASS = 5    # validation images of each class needed to choose anything


def macro_f1(y: np.ndarray, positive: np.ndarray) -> float:
    """Mean F1 of the two classes, y in {0, 1} (1: the rarer class), `positive` the decisions."""
    scores = []
    for cls in (0, 1):
        truth, said = y == cls, positive == bool(cls)
        tp = float((truth & said).sum())
        scores.append(2 * tp / max(truth.sum() + said.sum(), 1))
    return float(np.mean(scores))


def choose_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    """(threshold, macro F1 there, macro F1 at 0.5) over the midpoints between the observed
    probabilities of class 1; ties go to the threshold nearest 0.5."""
    values = np.unique(p)
    candidates = np.concatenate([[0.5], (values[1:] + values[:-1]) / 2]) if len(values) > 1 else np.array([0.5])
    f1 = np.array([macro_f1(y, p >= t) for t in candidates])
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    i = best[np.argmin(np.abs(candidates[best] - 0.5))]
    return float(candidates[i]), float(f1[i]), float(f1[0])


def head_bias(module: nn.Module, n_classes: int) -> torch.Tensor | None:
    """The bias of the layer that produces the class logits (the last one with one bias per class)."""
    found = None
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)) and layer.bias is not None and layer.bias.numel() == n_classes:
            found = layer.bias
    return found


def fold_threshold(module: nn.Module, positive: int, threshold: float) -> bool:
    """Make argmax decide class `positive` where its probability was >= `threshold`; False if the
    network has no class bias to shift."""
    bias = head_bias(module, 2)
    if bias is None:
        return False
    with torch.no_grad():
        bias[positive] += math.log((1 - threshold) / threshold)
    return True


def unbalanced(train_counts: Sequence[int]) -> bool:
    """Two classes, one at least UNBALANCED times as frequent as the other in training."""
    return len(train_counts) == 2 and min(train_counts) > 0 and max(train_counts) / min(train_counts) >= UNBALANCED


def operating_point(module: nn.Module, labels: Sequence[str], train_counts: Sequence[int], y_val: np.ndarray,
                    probs: np.ndarray) -> dict[str, Any] | None:
    """Choose and fold the rarer class's threshold when two classes are unbalanced in training;
    the record for config.json, or None when argmax stays (balanced, too few images, no gain)."""
    if not unbalanced(train_counts):
        return None
    rare = int(np.argmin(train_counts))
    y = (np.asarray(y_val) == rare).astype(int)
    if min(y.sum(), len(y) - y.sum()) < MIN_PER_CLASS:
        return None
    threshold, f1, at_half = choose_threshold(y, probs[:, rare])
    threshold = min(max(threshold, 1e-6), 1 - 1e-6)
    if f1 <= at_half or not fold_threshold(module, rare, threshold):
        return None
    return {"positive": labels[rare], "threshold": round(threshold, 6), "macro_f1": round(f1, 6),
            "macro_f1_at_half": round(at_half, 6), "images": int(len(y)),
            "note": f"{labels[rare]} where its probability >= {threshold:.3f}, folded into the head's bias"}
