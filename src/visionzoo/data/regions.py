"""Region keys: feature rows for parts of an image (faces, objects) named `PATH#LABEL@x1,y1,x2,y2`.

The key is an ordinary row path for every feature-file reader, keeps the image's folder (so
`--labels FOLDER_NAMES` still works), and gives back the file and the box (original pixels),
so pictures of search results and clusters show the region itself.
"""
from __future__ import annotations

import re
from typing import Sequence

_KEY = re.compile(r"^(?P<path>.+)#(?P<label>[^#/\\@]*)@(?P<box>-?\d+,-?\d+,-?\d+,-?\d+)$")


def region_key(path: str, label: str, box: Sequence[float]) -> str:
    """`photos/a.jpg#face0@10,20,110,130` (box rounded to whole pixels)."""
    return f"{path}#{label}@{','.join(str(int(round(v))) for v in box)}"


def split_region_key(key: str) -> tuple[str, str | None, tuple[int, int, int, int] | None]:
    """(path, label, box) of a region key; (key, None, None) for a plain path."""
    m = _KEY.match(key)
    if not m:
        return key, None, None
    x1, y1, x2, y2 = (int(v) for v in m.group("box").split(","))
    return m.group("path"), m.group("label"), (x1, y1, x2, y2)


def load_item(key: str, target_size: int | None = None):
    """The picture a row key names, as RGB: a file, a video frame (`PATH#t=S`), or a region of a
    file (`PATH#LABEL@x1,y1,x2,y2`, cropped; the box is in the file's oriented pixels, so the file is
    decoded at full size). ImageDecodeError with the reason otherwise."""
    from .decode import load_rgb

    path, _, box = split_region_key(key)
    if box is None:
        return load_rgb(key, target_size)
    img = load_rgb(path)
    x1, y1, x2, y2 = box
    return img.crop((max(0, x1), max(0, y1), min(img.width, x2), min(img.height, y2)))


def item_size(key: str) -> tuple[int, int, int]:
    """(width, height, bytes) of what a row key names: a file's pixels and size, a video frame's
    displayed size (bytes 0: a frame is no file), a region's box (bytes 0). (0, 0, 0) if unknown."""
    import os

    from .geometry import file_displayed_size
    from .video import parse_frame_key, probe

    _, _, box = split_region_key(key)
    if box is not None:
        return max(0, box[2] - box[0]), max(0, box[3] - box[1]), 0
    try:
        frame = parse_frame_key(key)
        if frame is not None:
            info = probe(frame[0])
            return info.width, info.height, 0
        nbytes = os.path.getsize(key)
        size = file_displayed_size(key)
        return (size[0], size[1], nbytes) if size else (0, 0, nbytes)
    except Exception:  # noqa: BLE001 - a size is only a tie-breaker and a note
        return 0, 0, 0
