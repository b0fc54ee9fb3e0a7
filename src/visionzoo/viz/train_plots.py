"""Pictures of a training run and its evaluation: learning curves, confusion matrix, misclassified
images, ROC and precision-recall curves."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.decode import ImageDecodeError
from .figure import figure, save, thumbnail


def learning_curves(history: Sequence[dict[str, Any]], out: str | os.PathLike,
                    keys: Sequence[str] = ("loss", "acc")) -> Path:
    """Loss and accuracy (or `keys`) per epoch, train and validation; a dotted line where a new phase starts."""
    plt, fig, axes = figure(1, len(keys), (4.5, 3.4))
    epochs = [int(r["epoch"]) for r in history]
    for ax, key in zip(axes[0], keys):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            values = [r.get(prefix + key) for r in history]
            if any(v not in (None, "") for v in values):
                ax.plot(epochs, [float(v) if v not in (None, "") else np.nan for v in values], style,
                        ms=3, label=("val " if prefix else "train ") + key)
        for prev, row in zip(history, history[1:]):
            if row.get("phase") != prev.get("phase"):
                ax.axvline(int(row["epoch"]) - 0.5, color="gray", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.set_title("accuracy" if key == "acc" else key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(plt, fig, out)


def confusion_matrix_plot(matrix: Sequence[Sequence[int]], labels: Sequence[str], out: str | os.PathLike) -> Path:
    cm = np.asarray(matrix)
    size = min(12.0, 2.5 + 0.45 * len(labels))
    plt, fig, axes = figure(1, 1, (size + 1, size))
    ax = axes[0][0]
    ax.imshow(cm, cmap="Blues")
    ticks = range(len(labels))
    ax.set_xticks(ticks, [str(x)[:20] for x in labels], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, [str(x)[:20] for x in labels], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 30:
        for i in ticks:
            for j in ticks:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    return save(plt, fig, out)


def misclassified_grid(items: Sequence[dict[str, Any]], out: str | os.PathLike, *, per_row: int = 6,
                       max_images: int = 48) -> Path:
    """Each wrongly predicted image titled with its true label, the prediction and its probability."""
    shown = list(items)[:max_images]
    rows = max(1, -(-len(shown) // per_row))
    plt, fig, axes = figure(rows, per_row, (2.0, 2.3))
    for ax in axes.flat:
        ax.axis("off")
    if not shown:
        axes[0][0].text(0, 0.5, "no misclassified images", fontsize=10)
    for ax, item in zip(axes.flat, shown):
        try:
            ax.imshow(thumbnail(item["path"], 160))
        except ImageDecodeError:
            pass
        ax.set_title(f"true: {str(item['true'])[:18]}\npred: {str(item['predicted'])[:18]} "
                     f"({item['probability']:.0%})", fontsize=7)
    return save(plt, fig, out)


def roc_pr_curves(y_true: np.ndarray, scores: np.ndarray, positive: str, out: str | os.PathLike) -> Path:
    """Two-class ROC and precision-recall curves with their AUCs (positive class named)."""
    from sklearn import metrics as skm

    fpr, tpr, _ = skm.roc_curve(y_true, scores)
    precision, recall, _ = skm.precision_recall_curve(y_true, scores)
    plt, fig, axes = figure(1, 2, (4.0, 3.6))
    roc, pr = axes[0]
    roc.plot(fpr, tpr, label=f"AUC {skm.auc(fpr, tpr):.3f}")
    roc.plot([0, 1], [0, 1], ":", color="gray")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC (positive: {positive})")
    pr.plot(recall, precision, label=f"AP {skm.average_precision_score(y_true, scores):.3f}")
    pr.set(xlabel="recall", ylabel="precision", title=f"precision-recall (positive: {positive})", ylim=(0, 1.02))
    for ax in (roc, pr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is roc else "lower left")
    return save(plt, fig, out)
