"""Images for the face pipeline: decoded (EXIF-oriented, any mode to RGB) at a working size, with
the factor back to the original pixels, one image ahead in a thread while the current one runs."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Sequence

from PIL import Image

from ...data.decode import ImageDecodeError, _to_rgb, load_rgb
from ...data.geometry import file_displayed_size

# Faces are found and embedded in a copy whose long side is at most this: a 150 px face chip
# needs no more, and a 50-megapixel photo then costs what a 9-megapixel one does.
WORK_MAX_SIDE = 3072


def working_copy(img: Image.Image, max_side: int = WORK_MAX_SIDE) -> tuple[Image.Image, float]:
    """(RGB image with long side <= max_side, factor from its pixels to `img`'s)."""
    if img.mode != "RGB":
        img = _to_rgb(img)
    s = max(img.size) / max_side
    if s <= 1:
        return img, 1.0
    small = img.resize((max(1, round(img.width / s)), max(1, round(img.height / s))), Image.LANCZOS)
    return small, img.width / small.width


def open_image(path: str, max_side: int = WORK_MAX_SIDE) -> tuple[Image.Image, float]:
    """(working RGB image, factor to the original's displayed pixels); raises ImageDecodeError.

    Large JPEGs are decoded in draft mode straight to about the working size (load_rgb)."""
    size = file_displayed_size(path)
    target = None
    if size and max(size) > max_side:
        target = -(-max_side * min(size) // max(size))  # short side that keeps the long side >= max_side
    img = load_rgb(path, target_size=target)
    small, _ = working_copy(img, max_side)
    return small, (size[0] if size else img.width) / small.width


@dataclass
class Loaded:
    path: str
    image: Image.Image | None
    scale: float = 1.0
    error: str | None = None


def _load(path: str, max_side: int) -> Loaded:
    try:
        img, s = open_image(path, max_side)
        return Loaded(path, img, s)
    except ImageDecodeError as exc:
        return Loaded(path, None, error=exc.reason)
    except MemoryError:
        return Loaded(path, None, error="not enough memory to decode the image")


def iter_images(files: Sequence[str | os.PathLike], max_side: int = WORK_MAX_SIDE, ahead: int = 2) -> Iterator[Loaded]:
    """Decode `files` in order, `ahead` images in flight on a thread (PIL decodes without the GIL)."""
    files = [os.fspath(f) for f in files]
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(_load, f, max_side) for f in files[:ahead]]
        for i in range(len(files)):
            loaded = pending.pop(0).result()
            if i + ahead < len(files):
                pending.append(pool.submit(_load, files[i + ahead], max_side))
            yield loaded
