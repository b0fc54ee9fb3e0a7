"""Instance masks in COCO's terms (pycocotools): polygons or RLE <-> binary arrays, PNG files."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (polygon list, uncompressed or compressed RLE) -> (H, W) uint8 0/1."""
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):
        polygons = [p for p in seg if len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), dtype=np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
        rle = mask_utils.frPyObjects(seg, *seg["size"])
    else:
        rle = dict(seg)
        if isinstance(rle.get("counts"), str):
            rle["counts"] = rle["counts"].encode("ascii")
    return np.ascontiguousarray(mask_utils.decode(rle), dtype=np.uint8)


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) bool -> compressed RLE with a str `counts` (JSON-able, COCO results format)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def write_mask_png(seg: dict[str, Any], out: str | os.PathLike) -> Path:
    """One object's RLE mask as a black-and-white PNG of the image's size."""
    from PIL import Image

    from ...atomic import atomic_path

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    h, w = seg["size"]
    with atomic_path(out) as tmp:
        Image.fromarray(decode_segmentation(seg, h, w) * 255).save(tmp, format="PNG")
    return out
