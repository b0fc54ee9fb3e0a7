"""One picture per kind of finding (OUT/montages/KIND.png), most certain first: single images with
their caption, the two files of a pair side by side, detection findings with the given boxes in
white and the detector's confident boxes in colour."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PIL import Image

from ..data.decode import ImageDecodeError, load_rgb
from ..viz.figure import figure, save, show_image, squared
from .boxes import BOX_CONF
from .findings import WHAT, Finding

SHOWN = 24               # findings per picture
TILE_IN = 2.6            # a tile's width in the figure (inches at DPI): >= 200 px of picture each
TILE_PX = 240            # thumbnails are made this large, then drawn into their tile
DPI = 90
PAIRS = ("leakage", "duplicate", "look_alike")


def _short(text: str, width: int = 34) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _caption(f: Finding) -> str:
    name = _short(Path(f.path).name, 28)
    if f.kind == "label_error":
        return f"{name}\n{f.given_label} -> {f.suggested_label}? ({f.score:.2f})"
    if f.kind in PAIRS:
        return f"{name}\n{f.split}: {f.given_label}" if f.given_label else f"{name}\n{f.split}"
    return f"{name}\n{_short(f.detail.split(':')[0])}"


def _grid(cells: list[tuple[Any, str]], out: Path, title: str, cols: int) -> Path:
    """Each cell: (a path or a callable giving a PIL image, caption)."""
    cols = max(1, min(cols, len(cells)))
    rows = max(1, -(-len(cells) // cols))
    plt, fig, axes = figure(rows, cols, (TILE_IN, TILE_IN + 0.5))
    for ax in axes.flat:
        ax.axis("off")
    for ax, (what, caption) in zip(axes.flat, cells):
        if isinstance(what, str):
            show_image(ax, what, caption, size=TILE_PX)
            continue
        try:
            ax.imshow(squared(what(), TILE_PX))
        except ImageDecodeError as exc:
            ax.text(0.5, 0.5, f"unreadable:\n{exc.reason}", ha="center", va="center", fontsize=6, color="crimson",
                    transform=ax.transAxes)
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title, fontsize=10, y=1.0, va="bottom")  # above the first captions, never over them
    return save(plt, fig, out, dpi=DPI)


def _boxes_picture(sample: Any, prediction: dict | None) -> Callable[[], Image.Image]:
    def draw() -> Image.Image:
        from ..tasks.detect.draw import render

        truth = [{"box": [float(v) for v in b]} for b in sample.boxes]
        shown = [d for d in (prediction or {}).get("detections", []) if d["score"] >= BOX_CONF]
        img = render(load_rgb(sample.path), shown, truth)
        img.thumbnail((TILE_PX, TILE_PX))
        return img

    return draw


def draw_montages(by_kind: dict[str, list[Finding]], out: Path, *, samples: dict[str, Any] | None = None,
                  predictions: dict[str, dict] | None = None) -> dict[str, str]:
    """{kind: PNG path} for every kind with findings."""
    written = {}
    for kind, found in by_kind.items():
        if kind == "box_error" and samples is not None:  # findings about annotation files have no picture
            found = [f for f in found if f.path in samples]
        if not found:
            continue
        top = found[:SHOWN]
        title = f"{kind}: {WHAT.get(kind, kind)} ({len(found)}; {len(top)} most certain shown)"
        if kind in PAIRS:
            cells = [c for f in top for c in ((f.path, _caption(f)), (f.other_path, _caption(
                Finding(f.kind, f.other_path, f.score, given_label=f.other_label, split=f.other_split))))]
            cols = 4
        elif kind == "box_error" and samples is not None:
            cells = [(_boxes_picture(samples[f.path], (predictions or {}).get(f.path)), _caption(f)) for f in top]
            cols = 4
            title += f"\nwhite: the given boxes; in colour: the detector's boxes scored >= {BOX_CONF:g}"
        else:
            cells, cols = [(f.path, _caption(f)) for f in top], 6
        written[kind] = str(_grid(cells, out / f"{kind}.png", title, cols))
    return written

