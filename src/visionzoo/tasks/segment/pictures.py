"""How a segmentation result looks in a notebook (visionzoo.viz.notebook draws it)."""
from __future__ import annotations

from typing import Any

from PIL import Image


def render_row(img: Image.Image, row: dict[str, Any]) -> Image.Image:
    """A `predict` row's picture: its colour overlay when masks were written (`masks_dir`), else the image."""
    return Image.open(row["overlay_png"]).convert("RGB") if row.get("overlay_png") else img


def describe_row(row: dict[str, Any]) -> str:
    """A `predict` row in words: each class's share of the pixels."""
    return ", ".join(f"{name} {share:.0%}" for name, share in (row.get("shares") or {}).items())
