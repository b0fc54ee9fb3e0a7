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
