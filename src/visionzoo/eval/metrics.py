"""Classification metrics from true labels and class probabilities, computed by scikit-learn."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """accuracy, macro_f1, per_class {label: precision, recall, f1, support}, confusion_matrix
    (rows = true, columns = predicted, in `labels` order); for two classes ROC AUC and average
    precision (PR AUC) with labels[1] as the positive class."""
    from sklearn import metrics as skm

    y_true = np.asarray(y_true, dtype=int)
    k = len(labels)
    y_pred = probs.argmax(1) if len(probs) else np.zeros(0, dtype=int)
    classes = list(range(k))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0)
    out: dict[str, Any] = {
        "n_images": int(len(y_true)),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1.mean()),
        "labels": list(labels),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }
    if len(y_true):
        out["log_loss"] = float(skm.log_loss(y_true, probs, labels=classes))
    if k == 2 and len(np.unique(y_true)) == 2:
        out["roc_auc"] = float(skm.roc_auc_score(y_true, probs[:, 1]))
        out["pr_auc"] = float(skm.average_precision_score(y_true, probs[:, 1]))
    return out
