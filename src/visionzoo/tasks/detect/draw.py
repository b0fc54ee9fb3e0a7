"""Pictures of detections: boxes (and masks) drawn on an image, the PR curve, the worst images,
and the training curves. Figures go through `viz.figure` like every other picture."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ...atomic import atomic_path
from ...viz.figure import figure, save
from ...viz.labels import draw_box, draw_label

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40)]


def _colour(label: str) -> tuple[int, int, int]:
    return PALETTE[sum(map(ord, label)) % len(PALETTE)]


def render(img: Image.Image, detections: Sequence[dict[str, Any]], truth: Sequence[dict[str, Any]] = ()) -> Image.Image:
    """A copy of `img` with predicted boxes in their class colour (label and score) and ground-truth
    boxes (if any) in white. Instance masks are tinted each in a colour of its own, its box in the
    same, so that touching instances (thirty cells a tile) are told apart. The surest boxes are drawn
    last (on top), and their labels first: a label that would cover another is left out."""
    from .masks import decode_segmentation

    out = img.convert("RGB").copy()
    order = sorted(range(len(detections)), key=lambda i: detections[i]["score"])     # least sure first
    colours = {i: PALETTE[rank % len(PALETTE)] if "mask" in detections[i] else _colour(detections[i]["label"])
               for rank, i in enumerate(reversed(order))}
    arr = np.asarray(out).copy()
    for i in order:
        if "mask" in detections[i]:
            m = decode_segmentation(detections[i]["mask"], out.height, out.width).astype(bool)
            arr[m] = (0.5 * arr[m] + 0.5 * np.array(colours[i])).astype(np.uint8)
    out = Image.fromarray(arr)
    pen = ImageDraw.Draw(out)
    for t in truth:
        draw_box(pen, t["box"], (255, 255, 255))
    for i in order:
        draw_box(pen, detections[i]["box"], colours[i])
    taken: list[tuple[float, float, float, float]] = []
    for i in reversed(order):
        d = detections[i]
        draw_label(pen, d["box"], colours[i], f"{d['label']} {d['score']:.2f}", taken=taken)
    return out


def draw_detections(img: Image.Image, detections: Sequence[dict[str, Any]], out: str | os.PathLike) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        render(img, detections).save(tmp, format="JPEG", quality=90)
    return out


def pr_curve_plot(curves: dict[str, dict[str, list[float]]], out: str | os.PathLike, title: str) -> Path:
    """Precision against recall at IoU 0.5, one line per class (and all classes)."""
    plt, fig, axes = figure(1, 1, (5.0, 4.0))
    ax = axes[0][0]
    for name, c in list(curves.items())[:12]:
        if c["recall"]:
            ax.plot(c["recall"], c["precision"], lw=2.5 if name == "all classes" else 1.2, label=name)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return save(plt, fig, out)


def threshold_curves_plot(curves: dict[str, list[float]], point: Any, out: str | os.PathLike) -> Path:
    """F1, precision and recall against the score threshold, the operating point marked."""
    plt, fig, axes = figure(1, 1, (5.0, 4.0))
    ax = axes[0][0]
    for key, style in (("f1", "-"), ("precision", "--"), ("recall", ":")):
        ax.plot(curves["conf"], curves[key], style, lw=2 if key == "f1" else 1.3, label=key)
    ax.axvline(point.conf, color="gray", lw=1)
    ax.set(xlabel="score threshold", ylabel="value", xlim=(0, 1), ylim=(0, 1.02),
           title=f"operating point: score >= {point.conf:.2f}, NMS IoU {point.nms_iou:g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return save(plt, fig, out)


def worst_grid(items: Sequence[dict[str, Any]], out: str | os.PathLike, *, per_row: int = 4) -> Path:
    """Images with the most errors at the threshold: truth in white, predictions in colour."""
    from ...data.decode import ImageDecodeError, load_rgb

    rows = max(1, -(-len(items) // per_row))
    plt, fig, axes = figure(rows, per_row, (3.2, 2.8))
    for ax in axes.flat:
        ax.axis("off")
    if not items:
        axes[0][0].text(0, 0.5, "no errors at this threshold", fontsize=10)
    for ax, item in zip(axes.flat, items):
        try:
            ax.imshow(render(load_rgb(item["path"]), item["detections"], item["truth"]))
        except ImageDecodeError:
            pass
        ax.set_title(f"{Path(item['path']).name[:28]}\n{item['false_positives']} false, {item['false_negatives']} missed",
                     fontsize=7)
    return save(plt, fig, out)


def training_curves(history: Sequence[dict[str, Any]], out: str | os.PathLike) -> Path:
    """Training losses (total and parts) and validation mAP per epoch."""
    plt, fig, axes = figure(1, 2, (4.5, 3.4))
    epochs = [int(r["epoch"]) for r in history]
    losses, maps = axes[0]
    keys = [k for k in history[0] if k == "loss" or k.startswith("loss_")] if history else []
    for key in keys:
        losses.plot(epochs, [float(r[key]) for r in history], "-o" if key == "loss" else "-", ms=3, label=key)
    for key, style in (("val_map50", "-o"), ("val_map", "-s")):
        if history and key in history[0]:
            maps.plot(epochs, [float(r[key]) for r in history], style, ms=3, label=key.removeprefix("val_"))
    losses.set(title="training loss", xlabel="epoch")
    maps.set(title="validation mAP", xlabel="epoch", ylim=(0, 1))
    for ax in (losses, maps):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(plt, fig, out)


def render_row(img: Image.Image, row: dict[str, Any]) -> Image.Image:
    """A `predict` row's picture (in a notebook): its boxes drawn over its image."""
    return render(img, row.get("detections", []))


def describe_row(row: dict[str, Any]) -> str:
    """A `predict` row in words: how many of each class."""
    from collections import Counter

    counts = Counter(d["label"] for d in row.get("detections", []))
    return ", ".join(f"{n} {label}" for label, n in counts.most_common()) or "nothing found"
