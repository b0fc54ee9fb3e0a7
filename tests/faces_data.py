"""The shared faces data set (../shared/datasets/faces) as the face tests use it: the people, their
portraits at a chosen size, recompressed and held-out copies."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageOps

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "faces"
PEOPLE = ["angelina_jolie", "kate_siegel", "paul_rudd", "shea_whigham"]
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"faces data set not found at {DATA}")


def portrait(person: str, long_side: int = 800) -> Image.Image:
    img = Image.open(DATA / person / "1.jpg").convert("RGB")
    img.thumbnail((long_side, long_side))
    return img


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    """`img` after a JPEG round trip at `quality`."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def held_out(img: Image.Image, quality: int, scale: float = 1.0) -> Image.Image:
    """Another photo of the same face: mirrored, cropped, optionally shrunk, recompressed."""
    w, h = img.size
    crop = ImageOps.mirror(img.crop((int(w * 0.08), int(h * 0.04), int(w * 0.92), int(h * 0.9))))
    if scale != 1.0:
        crop = crop.resize((int(crop.width * scale), int(crop.height * scale)))
    return jpeg(crop, quality)
