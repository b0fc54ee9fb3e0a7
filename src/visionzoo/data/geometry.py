"""EXIF orientation: what a viewer shows is the stored pixels turned by the file's orientation tag.

Everything that reports pixels (boxes, masks, sizes) speaks of the displayed image, so every reader
of files, masks and annotations turns them here, the same way `ImageOps.exif_transpose` turns pixels.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

ORIENTATION_TAG = 0x0112
SWAPPING = frozenset({5, 6, 7, 8})  # orientations that swap width and height
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def oriented(img: Image.Image) -> Image.Image:
    """The image as displayed (EXIF rotation applied, the tag dropped)."""
    return ImageOps.exif_transpose(img)


def orientation_of(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(ORIENTATION_TAG) or 1)
    except Exception:  # a broken EXIF block: nothing will rotate the pixels either
        return 1


def image_frame(path: str | os.PathLike) -> tuple[tuple[int, int], int]:
    """(stored width, height) and EXIF orientation from the file header, without decoding pixels."""
    with Image.open(path) as img:
        return img.size, orientation_of(img)


def displayed_size(stored: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (stored[1], stored[0]) if orientation in SWAPPING else stored


def file_displayed_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) as displayed, read from the header; None when the header is unreadable."""
    try:
        return displayed_size(*image_frame(path))
    except Exception:  # load_rgb will say what is wrong with the file
        return None


def transposed(img: Image.Image, orientation: int) -> Image.Image:
    """Turn `img` (stored pixels, e.g. a mask) by `orientation`, as exif_transpose would."""
    method = _TRANSPOSE.get(orientation)
    return img.transpose(method) if method is not None else img


def orient_points(xy: np.ndarray, stored: tuple[int, int], orientation: int) -> np.ndarray:
    """Map (x, y) points of the stored image onto the displayed one."""
    w, h = stored
    x, y = xy[..., 0], xy[..., 1]
    mapped = {
        1: (x, y), 2: (w - x, y), 3: (w - x, h - y), 4: (x, h - y),
        5: (y, x), 6: (h - y, x), 7: (h - y, w - x), 8: (y, w - x),
    }.get(orientation, (x, y))
    return np.stack(mapped, axis=-1)


def orient_boxes(boxes: np.ndarray, stored: tuple[int, int], orientation: int) -> np.ndarray:
    """x1, y1, x2, y2 boxes of the stored image -> the displayed one."""
    if orientation == 1 or not len(boxes):
        return boxes
    corners = orient_points(boxes.reshape(-1, 2, 2), stored, orientation)
    return np.concatenate([corners.min(1), corners.max(1)], axis=1).astype(np.float32)
