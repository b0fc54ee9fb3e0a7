"""Uploaded bytes -> RGB image, or a 4xx with the reason: nothing a client sends may become a 500.

Decoding is `visionzoo.data.decode.load_rgb` on the bytes (EXIF rotation, odd modes, truncated
and non-image files, the pixel limit that stops decompression bombs before any pixel is
inflated), so the server accepts and refuses exactly what the command line does.
"""
from __future__ import annotations

from PIL import Image

from ..data.decode import ImageDecodeError, load_rgb


class UploadError(Exception):
    """A client's fault, answered with `status` and `reason` as JSON."""

    def __init__(self, status: int, reason: str, filename: str | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.filename = filename


def status_for(reason: str) -> int:
    """413 for too many pixels, 415 for what is not an image, 400 for empty or damaged files."""
    if "too large" in reason:
        return 413
    if "not an image" in reason:
        return 415
    return 400


def decode_upload(data: bytes, filename: str, *, max_pixels: int, target_size: int | None = None,
                  max_resized_pixels: int | None = None) -> Image.Image:
    """Decode one upload. `target_size` (the model's resize short side) allows JPEG draft decoding;
    `max_resized_pixels` refuses extreme aspect ratios whose resized image would not fit."""
    try:
        img = load_rgb(data, target_size, max_pixels, name=filename)
    except ImageDecodeError as exc:
        raise UploadError(status_for(exc.reason), exc.reason, filename) from None
    if target_size and max_resized_pixels:
        w, h = img.size
        resized = target_size * target_size * max(w, h) / max(1, min(w, h))
        if resized > max_resized_pixels:
            raise UploadError(413, f"extreme aspect ratio ({w}x{h}): resized to {target_size} px on the short side "
                                   f"it would exceed the pixel limit", filename)
    return img
