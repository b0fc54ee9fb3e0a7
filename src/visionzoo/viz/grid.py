"""Each image beside a bar chart of its top-k predictions (what the classic tutorials draw by hand)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..data.decode import ImageDecodeError
from .figure import figure, save, thumbnail


def topk_grid(results: Sequence, out: str | os.PathLike, *, per_row: int = 2, max_images: int = 60) -> Path:
    """Write a PNG: per image, the picture and a horizontal bar chart of its top-k probabilities."""
    shown = list(results)[:max_images]
    rows = max(1, -(-len(shown) // per_row))
    plt, fig, axes = figure(rows, 2 * per_row, (3.2, 2.6))
    for ax in axes.flat:
        ax.axis("off")
    for n, result in enumerate(shown):
        ax_img, ax_bar = axes[n // per_row][2 * (n % per_row)], axes[n // per_row][2 * (n % per_row) + 1]
        name = Path(result.path).name
        try:
            ax_img.imshow(thumbnail(result.path))
        except ImageDecodeError:
            pass
        ax_img.set_title(name if len(name) < 32 else name[:29] + "...", fontsize=8)
        if result.error:
            ax_bar.text(0, 0.5, f"error:\n{result.error}", fontsize=7, color="crimson", wrap=True, va="center")
            continue
        preds = result.predictions[::-1]
        ax_bar.axis("on")
        ax_bar.barh(range(len(preds)), [p.probability for p in preds], color="#4c72b0")
        ax_bar.set_yticks(range(len(preds)))
        ax_bar.set_yticklabels([p.label.split(",")[0][:24] for p in preds], fontsize=7)
        ax_bar.set_xlim(0, 1)
        ax_bar.tick_params(axis="x", labelsize=7)
        for y, p in enumerate(preds):
            ax_bar.text(min(p.probability + 0.02, 0.8), y, f"{p.probability:.1%}", va="center", fontsize=7)
    return save(plt, fig, out)
