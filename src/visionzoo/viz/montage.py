"""A grid of thumbnails with short captions: one picture per cluster, duplicate group, etc."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..data.decode import ImageDecodeError
from .grid import _figure, thumbnail


def show_image(ax, path: str, caption: str | None = None, size: int = 160) -> None:
    """Draw `path` into a matplotlib axis (a note instead when it cannot be decoded)."""
    ax.axis("off")
    try:
        ax.imshow(thumbnail(path, size))
    except ImageDecodeError as exc:
        ax.text(0.5, 0.5, f"unreadable:\n{exc.reason}", ha="center", va="center", fontsize=6, color="crimson",
                wrap=True, transform=ax.transAxes)
    if caption:
        ax.set_title(caption, fontsize=7)


def montage(paths: Sequence[str], out: str | os.PathLike, *, title: str = "", captions: Sequence[str] | None = None,
            cols: int = 5) -> Path:
    """Write a PNG grid of the images in `paths` (row-major), each with an optional caption."""
    paths = list(paths)
    rows = max(1, -(-len(paths) // cols))
    plt, fig, axes = _figure(rows, cols, (1.9, 2.0))
    for ax in axes.flat:
        ax.axis("off")
    for n, p in enumerate(paths):
        name = Path(p).name
        cap = name if len(name) <= 22 else name[:19] + "..."
        show_image(axes.flat[n], p, f"{cap}\n{captions[n]}" if captions else cap)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
