"""Boxes and labels readable at any image size: line width and text grow with the picture, as
Ultralytics' Annotator sizes them (line ~0.3% and text ~3.5% of the mean side, never under 2 px
and 12 px), so "raccoon 0.92" on a 4500 px photo is as legible as on a 640 px one."""
from __future__ import annotations

from collections.abc import Sequence

from PIL import ImageDraw, ImageFont


def line_width(size: tuple[int, int]) -> int:
    """Box outline width for a picture of `size` (width, height)."""
    return max(2, round(sum(size) / 2 * 0.003))


def font_size(size: tuple[int, int]) -> int:
    """Label text height for a picture of `size`."""
    return max(12, round(sum(size) / 2 * 0.035))


def font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A scalable font of `px` pixels (DejaVu Sans when present, else Pillow's built-in one)."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", px)
    except OSError:
        return ImageFont.load_default(size=px)


def text_colour(fill: Sequence[int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on `fill`."""
    r, g, b = fill[:3]
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 128 else (255, 255, 255)


def draw_box(pen: ImageDraw.ImageDraw, box: Sequence[float], colour: Sequence[int], text: str | None = None,
             size: tuple[int, int] | None = None, taken: list[tuple[float, float, float, float]] | None = None) -> None:
    """A box with its label (`draw_label`), sized for the whole picture (`size`, default the drawing's own)."""
    size = size or pen.im.size
    pen.rectangle(tuple(float(v) for v in box), outline=tuple(colour), width=line_width(size))
    if text:
        draw_label(pen, box, colour, text, size, taken)


def draw_label(pen: ImageDraw.ImageDraw, box: Sequence[float], colour: Sequence[int], text: str,
               size: tuple[int, int] | None = None, taken: list[tuple[float, float, float, float]] | None = None) -> None:
    """`box`'s label on a filled tab above its top-left corner (inside the box when there is no room
    above). With `taken` (the tabs drawn so far, added to), a tab that would cover another is left out:
    in a crowded picture, label the surest boxes first and their labels stay readable."""
    size = size or pen.im.size
    lw = line_width(size)
    x1, y1 = float(box[0]), float(box[1])
    f = font(font_size(size))
    left, top, right, bottom = pen.textbbox((0, 0), text, font=f)
    w, h = right - left + 2 * lw, bottom - top + 2 * lw
    x = min(max(0.0, x1), max(0.0, size[0] - w))
    y = y1 - h if y1 - h >= 0 else y1           # outside above, or inside at the top
    tab = (x, y, x + w, y + h)
    if taken is not None:
        if any(tab[0] < t[2] and t[0] < tab[2] and tab[1] < t[3] and t[1] < tab[3] for t in taken):
            return
        taken.append(tab)
    pen.rectangle(tab, fill=tuple(colour))
    pen.text((x + lw - left, y + lw - top), text, fill=text_colour(colour), font=f)


def draw_legend(img, entries: Sequence[tuple[str, Sequence[int]]]):
    """`img` with a key in its top-left corner: a colour swatch and a name per entry, on a light
    panel, sized like the labels (a mask overlay says which colour is which class)."""
    if not entries:
        return img
    img = img.convert("RGB").copy()
    pen = ImageDraw.Draw(img, "RGBA")
    px = max(12, round(font_size(img.size) * 0.8))
    f, pad = font(px), max(2, px // 4)
    rows = [(name, tuple(colour), pen.textbbox((0, 0), name, font=f)) for name, colour in entries]
    width = pad * 3 + px + max(b[2] - b[0] for _, _, b in rows)
    pen.rectangle((0, 0, width + pad, pad + len(rows) * (px + pad)), fill=(255, 255, 255, 200))
    for k, (name, colour, box) in enumerate(rows):
        y = pad + k * (px + pad)
        pen.rectangle((pad, y, pad + px, y + px), fill=colour, outline=(0, 0, 0), width=1)
        pen.text((2 * pad + px - box[0], y - box[1] + (px - (box[3] - box[1])) / 2), name, fill=(0, 0, 0), font=f)
    return img
