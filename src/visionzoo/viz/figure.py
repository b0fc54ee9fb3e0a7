"""What every picture shares: a grid of axes, thumbnails drawn into them, saving to PNG."""
from __future__ import annotations

import os
from pathlib import Path

from ..atomic import atomic_path
from ..data.decode import ImageDecodeError, load_rgb


def figure(rows: int, cols: int, cell: tuple[float, float]):
    """(pyplot, fig, 2-D axes array) with the non-interactive backend: safe on servers and in CI."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(cols * cell[0], rows * cell[1]), squeeze=False)
    return plt, fig, axes


def save(plt, fig, out: str | os.PathLike, dpi: int = 110) -> Path:
    """Lay out, write the picture whole or not at all in the format of its extension (PNG, PDF,
    SVG, ...; creating its folder), free the figure (also when writing fails)."""
    out = Path(out)
    try:
        fmt = out.suffix.lower().lstrip(".") or "png"
        if fmt not in fig.canvas.get_supported_filetypes():
            raise ValueError(f"{out}: pictures are written as {', '.join(sorted(fig.canvas.get_supported_filetypes()))}"
                             f" (by the name's extension)")
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")  # keeps two-line titles inside the picture
    finally:
        plt.close(fig)
    return out


def thumbnail(path: str, size: int = 256):
    from ..data.regions import split_region_key

    path, _, box = split_region_key(path)  # a face row `PATH#face0@x1,y1,x2,y2` shows that region
    img = load_rgb(path) if box else load_rgb(path, target_size=size)
    if box:
        img = img.crop(box)
    img.thumbnail((size, size))
    return img


def squared(img, size: int):
    """`img` centred on a white `size` x `size` square: every tile of a grid has one shape, so a
    tall picture never reaches into the caption of the tile above or below."""
    from PIL import Image

    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return canvas


def show_image(ax, path: str, caption: str | None = None, size: int = 160) -> None:
    """Draw `path` into a matplotlib axis, squared (a note instead when it cannot be decoded)."""
    ax.axis("off")
    try:
        ax.imshow(squared(thumbnail(path, size), size))
    except ImageDecodeError as exc:
        ax.text(0.5, 0.5, f"unreadable:\n{exc.reason}", ha="center", va="center", fontsize=6, color="crimson",
                wrap=True, transform=ax.transAxes)
    if caption:
        ax.set_title(caption, fontsize=7)
