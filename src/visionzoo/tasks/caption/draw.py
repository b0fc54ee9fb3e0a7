"""Pictures of captions (drawn with visionzoo.viz): each image with its caption, and the
evaluation's best / worst examples with predicted and reference captions."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any, Sequence

from ...outputs import output_names, output_path
from ...viz.figure import figure, save, show_image


def _wrap(text: str, width: int = 42) -> str:
    return "\n".join(textwrap.wrap(text, width)) or " "


def draw_captions(results: Sequence[dict[str, Any]], out_dir: str | os.PathLike) -> list[Path]:
    """One PNG per image, DIR/<name>.png, the caption under the picture (names as visionzoo.outputs gives them)."""
    written: list[Path] = []
    names = output_names(r["path"] for r in results)
    for r in results:
        plt, fig, axes = figure(1, 1, (4.0, 4.4))
        ax = axes[0][0]
        show_image(ax, r["path"], size=384)
        ax.set_title(_wrap(r["caption"]), fontsize=10)
        written.append(save(plt, fig, output_path(out_dir, names[r["path"]], ".png")))
    return written


def examples_figure(best: Sequence[dict[str, Any]], worst: Sequence[dict[str, Any]], out: str | os.PathLike) -> Path:
    """Two rows: the best and the worst captioned images (by per-image CIDEr), each titled
    with the predicted caption and its first reference."""
    cols = max(1, len(best), len(worst))
    plt, fig, axes = figure(2, cols, (2.8, 3.4))
    for row, (label, items) in enumerate((("best", best), ("worst", worst))):
        for ax in axes[row]:
            ax.axis("off")
        for ax, item in zip(axes[row], items):
            show_image(ax, item["path"])
            ax.set_title(f"{label} (CIDEr {item['cider']:.2f})\npred: {_wrap(item['caption'], 34)}\n"
                         f"ref: {_wrap(item['references'][0], 34)}", fontsize=7)
    return save(plt, fig, out)


def render_row(img: Any, row: dict[str, Any]) -> Any:
    """A `predict` row's picture in a notebook: the image (its caption is the row's words)."""
    return img


def describe_row(row: dict[str, Any]) -> str:
    return str(row.get("caption") or "")
