"""The one exception every reader of pictures (image files, video frames) raises for bad input."""
from __future__ import annotations


class ImageDecodeError(Exception):
    """`path` could not be read as a picture, for `reason` (shown to users as is)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
