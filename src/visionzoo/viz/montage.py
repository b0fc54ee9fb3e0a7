"""A grid of thumbnails with short captions: one picture per cluster, duplicate group, etc."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .figure import figure, save, show_image


def montage(paths: Sequence[str], out: str | os.PathLike, *, title: str = "", captions: Sequence[str] | None = None,
            cols: int = 5) -> Path:
    """Write a PNG grid of the images in `paths` (row-major), each with an optional caption."""
    paths = list(paths)
    rows = max(1, -(-len(paths) // cols))
    plt, fig, axes = figure(rows, cols, (1.9, 2.0))
    for ax in axes.flat:
        ax.axis("off")
    for n, p in enumerate(paths):
        name = Path(p).name
        cap = name if len(name) <= 22 else name[:19] + "..."
        show_image(axes.flat[n], p, f"{cap}\n{captions[n]}" if captions else cap)
    if title:
        fig.suptitle(title, fontsize=10, y=1.0, va="bottom")  # above the first captions
    return save(plt, fig, out, dpi=90)
