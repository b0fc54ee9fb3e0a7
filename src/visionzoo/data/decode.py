"""Decode any image file to an 8-bit RGB PIL image, or raise ImageDecodeError naming the reason.

Handles what real folders contain: EXIF rotation, grayscale, palette, RGBA/LA (composited on
white), CMYK, 16-bit and float images; refuses empty, truncated, non-image and oversized files.
Large JPEGs are decoded at reduced size (draft mode) when much bigger than the model input.
"""
from __future__ import annotations

import io
import math
import os
import warnings
from contextlib import contextmanager
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from .decode_error import ImageDecodeError
from .geometry import orientation_of, oriented
from .video import is_video_item

__all__ = ["ImageDecodeError", "image_size", "load_rgb"]

DEFAULT_MAX_PIXELS = 2 * 89_478_485  # PIL's own hard limit: beyond it a file is a decompression bomb


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")   # more than 8 bits per sample


def _scaled_to_l(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float images to 8-bit gray, a band of rows at a time: a 7000x7000
    16-bit image costs its 8-bit copy (49 MB), never a float64 copy of the whole (400 MB)."""
    w, h = img.size
    top = img.getextrema()[1]
    hi = 65535.0 if (img.mode.startswith("I;16") or top > 255) else 255.0
    if img.mode == "F" and top <= 1.0:
        hi = 1.0
    out = np.empty((h, w), np.uint8)
    rows = max(1, 250_000 // max(1, w))
    for y in range(0, h, rows):
        band = np.asarray(img.crop((0, y, w, min(h, y + rows))), dtype=np.float64)
        band /= hi
        band *= 255.0
        band += 0.5
        out[y:y + rows] = np.clip(band, 0, 255, out=band).astype(np.uint8)
    return Image.fromarray(out)


def _reduced(img: Image.Image, target_size: int) -> Image.Image:
    """Shrunk by 2, 4 or 8 (box filter) while the short side stays >= target_size: what JPEG draft
    decoding does, for the images decoded through `_scaled_to_l`."""
    factor = 1
    while factor < 8 and min(img.size) // (2 * factor) >= target_size:
        factor *= 2
    return img.reduce(factor) if factor > 1 else img


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in WIDE_MODES:
        return _scaled_to_l(img).convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGBX


def load_rgb(path: str | bytes, target_size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
             name: str = "upload", max_side: int | None = None) -> Image.Image:
    """Open, orient and convert one image: a file path, or a file's bytes (an upload, called `name`).

    `target_size` is the short side the transform will resize to (Preprocessing.resize_size);
    JPEGs much larger than that are decoded at reduced scale, which cuts decode + resize CPU ~3x.
    `max_side`: the long side the caller fits the image into (a detector's letterbox), which may
    allow a smaller decode still.
    """
    if isinstance(path, str) and is_video_item(path):  # a frame (PATH#t=SECONDS), or a video's first frame
        from .video_cursor import load_frame

        img = load_frame(path, target_size)
        if img is not None:
            return img
    if isinstance(path, (bytes, bytearray, memoryview)):
        source, size, path = io.BytesIO(path), len(path), name
    elif isinstance(path, str) and "://" in path:  # s3://, gs://, hdfs://: read through pyarrow's filesystems
        from ..store.location import Location

        try:
            data = Location.of(path).read_bytes()
        except Exception as exc:  # noqa: BLE001 - missing key, no access, unreachable store
            raise ImageDecodeError(path, f"cannot read file ({exc})") from None
        return load_rgb(data, target_size, max_pixels, name=path)
    else:
        source = path
        try:
            size = os.path.getsize(path)
        except OSError as exc:
            raise ImageDecodeError(path, f"cannot read file ({exc.strerror or exc})") from None
        if os.path.isdir(path):
            raise ImageDecodeError(path, "is a folder, not an image file")
    if size == 0:
        raise ImageDecodeError(path, "empty file (0 bytes)")
    with _reasons(path, max_pixels):
        img = _opened(source, path, max_pixels)
        w, h = img.size
        scale = min(target_size / min(w, h), max_side / max(w, h) if max_side else 1.0) if target_size else 1.0
        if img.format == "JPEG" and scale <= 0.5:
            # Decode at 1/2, 1/4 or 1/8 scale (in the DCT, which also low-passes) while the image
            # stays at least the size the caller resizes it to: what PIL's own thumbnail() does.
            img.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
        img.load()
        if orientation_of(img) != 1:   # exif_transpose copies even an image it does not turn
            img = oriented(img)
        if img.mode in WIDE_MODES:     # the wide image is freed before the RGB one is made
            img = _scaled_to_l(img)
            if target_size:
                img = _reduced(img, target_size)
        return _to_rgb(img)


def image_size(data: bytes, name: str = "upload", max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image file's bytes from its header alone, with load_rgb's refusals (too
    many pixels, not an image, empty): what a server checks before it spends memory decoding."""
    if not data:
        raise ImageDecodeError(name, "empty file (0 bytes)")
    with _reasons(name, max_pixels):
        return _opened(io.BytesIO(data), name, max_pixels).size


def _opened(source, path: str, max_pixels: int) -> Image.Image:
    img = Image.open(source)
    w, h = img.size
    if w * h > max_pixels:
        raise ImageDecodeError(
            path, f"image too large ({w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,}; possible "
            f"decompression bomb)"
        )
    return img


@contextmanager
def _reasons(path: str, max_pixels: int) -> Iterator[None]:
    """Whatever a decoder raises on hostile input, as an ImageDecodeError naming the reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError:
        raise ImageDecodeError(path, f"image too large (over the limit of {max_pixels:,} pixels; possible "
                                     f"decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(path, "not an image (unrecognised file format)") from None
    except PermissionError:
        raise ImageDecodeError(path, "permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc)
        reason = "truncated or corrupt image data" if "truncat" in text.lower() else f"corrupt image ({text})"
        raise ImageDecodeError(path, reason) from None
    except Exception as exc:  # decoders raise a zoo of types on hostile input
        raise ImageDecodeError(path, f"cannot decode image ({type(exc).__name__}: {exc})") from None
