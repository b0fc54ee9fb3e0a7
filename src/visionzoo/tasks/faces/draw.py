"""Pictures of the faces found: boxes, the 5 landmarks, and names (find) or scores (detect)."""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageDraw

from ...atomic import atomic_path
from .detectors import Face


def draw_faces(img: Image.Image, faces: list[Face], out: str | os.PathLike) -> Path:
    """`faces` in `img`'s pixels; line width and dots scale with the image."""
    img = render_faces(img, faces)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        img.save(tmp, "JPEG", quality=90)
    return out


def render_faces(img: Image.Image, faces: list[Face]) -> Image.Image:
    """A copy of `img` with each face's box, landmarks and name (or score) drawn on it."""
    img = img.convert("RGB").copy()
    d = ImageDraw.Draw(img)
    lw = max(2, round(max(img.size) / 400))
    for f in faces:
        known = not str(f.extra.get("identity") or "unknown").startswith("unknown")
        colour = (40, 220, 60) if known or "identity" not in f.extra else (230, 40, 40)
        d.rectangle([float(v) for v in f.box], outline=colour, width=lw)
        for x, y in f.points:
            d.ellipse([x - lw, y - lw, x + lw, y + lw], fill=(255, 220, 0))
        label = f.extra.get("identity") or f"{f.score:.2f}"
        if f.extra.get("distance") is not None:
            label += f" {f.extra['distance']:.2f}"
        x, y = float(f.box[0]), float(f.box[1])
        tb = d.textbbox((x, y), label, font_size=max(12, lw * 7))
        top = max(0, y - (tb[3] - tb[1]) - 4)
        d.rectangle([x, top, x + tb[2] - tb[0] + 4, top + tb[3] - tb[1] + 4], fill=colour)
        d.text((x + 2, top), label, fill=(0, 0, 0), font_size=max(12, lw * 7))
    return img
