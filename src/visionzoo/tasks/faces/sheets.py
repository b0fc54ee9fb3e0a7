"""Contact sheets: the aligned face chips of one person or one group in a grid, each captioned
with its photo's name (and distance), so a user checks a whole result at a glance."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

from ...atomic import atomic_path

TILE = 150          # px: the chips' own size
CAPTION = 30        # px under each chip
COLUMNS = 8
MAX_TILES = 80      # a sheet shows the first 80 (the closest, for find); its title says how many in all


def photo_label(path: str) -> str:
    """A photo's folder and name (libraries repeat names like 1.jpg or IMG_0001.JPG across folders)."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _caption(draw: ImageDraw.ImageDraw, xy: tuple[int, int], lines: Sequence[str]) -> None:
    for i, line in enumerate(lines):
        text = line if len(line) <= 24 else line[:11] + "..." + line[-10:]
        draw.text((xy[0] + 3, xy[1] + 2 + 13 * i), text, fill=(20, 20, 20), font_size=11)


def contact_sheet(chips: Sequence[bytes], captions: Sequence[Sequence[str]], out: str | os.PathLike,
                  title: str) -> Path:
    """A JPEG grid of `chips` (JPEG bytes, shown in order) with their `captions` (a line or two
    each) and `title` on top."""
    shown = list(chips[:MAX_TILES])
    cols = max(1, min(COLUMNS, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    head = 34
    more = f" (the first {len(shown)} shown)" if len(chips) > len(shown) else ""
    heading = f"{title}: {len(chips)} face(s){more}"
    width = max(cols * TILE, int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(heading, font_size=16)) + 16)
    sheet = Image.new("RGB", (width, head + rows * (TILE + CAPTION)), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    draw.text((8, 8), heading, fill=(0, 0, 0), font_size=16)
    for i, (chip, caption) in enumerate(zip(shown, captions)):
        x, y = (i % cols) * TILE, head + (i // cols) * (TILE + CAPTION)
        tile = Image.open(io.BytesIO(chip)).convert("RGB")
        if tile.size != (TILE, TILE):
            tile = tile.resize((TILE, TILE), Image.BILINEAR)
        sheet.paste(tile, (x, y))
        _caption(draw, (x, y + TILE), caption)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        sheet.save(tmp, "JPEG", quality=88)
    return out
