"""Each search query beside its nearest neighbours, with the cosine similarity over each."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .figure import figure, save, show_image


def neighbour_grid(results: Sequence, out: str | os.PathLike, *, max_queries: int = 20) -> Path:
    """PNG: one row per query (first column, red title) then its neighbours left to right."""
    shown = list(results)[:max_queries]
    cols = 1 + max([len(r.neighbours) for r in shown] + [1])
    plt, fig, axes = figure(max(1, len(shown)), cols, (1.9, 2.4))
    for ax in axes.flat:
        ax.axis("off")
    for row, r in zip(axes, shown):
        name = Path(r.query).name
        show_image(row[0], r.query, f"query\n{name[:20]}")
        row[0].title.set_color("#d62728")
        if r.error:
            row[1].text(0, 0.5, f"error: {r.error}", fontsize=7, color="crimson", va="center", wrap=True)
            continue
        for ax, nb in zip(row[1:], r.neighbours):
            show_image(ax, nb.path, f"{nb.score:.3f}\n{Path(nb.path).name[:20]}")
    return save(plt, fig, out, dpi=90)
