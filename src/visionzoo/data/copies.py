"""Is one picture a copy of another? Perceptual hashes say "alike"; fine detail says "the same".

Two stages, one for each question:
1. `fingerprint`: pHash + dHash (imagehash, 64 bits each, on the whole picture squashed to a
   square, so any aspect ratio works). Copies resized, recompressed or lightly cropped stay within
   `MAX_DISTANCE` (28) of 128 bits; distinct photos are further apart. But look-alikes that are
   not copies come as close: neighbouring serial sections (membrane EM: 18-28 bits), consecutive
   video frames (0-34), a burst (19). Alike is what `dedup` groups.
2. `detail_agreement`: the correlation of the two pictures' fine detail (grey, at the smaller
   one's resolution up to 128 px, minus a Gaussian blur). A copy keeps its detail: planted copies
   (10 photos and 10 membrane sections resized 0.4-0.9x, JPEG quality 30-90) agreed 0.947-0.999.
   Look-alikes do not: the 7 membrane pairs within 28 bits -0.03-0.23, the burst -0.04, frames
   0.2 s apart in the sign videos 0.51-0.99 (a still scene sampled twice is the same picture).
   `COPY_AGREEMENT` (0.9) separates them; a pair alike by hash but below it is a look-alike for a
   person to judge, never a copy to remove.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from .regions import load_item

MAX_DISTANCE = 28        # bits of 128 (pHash + dHash) between alike pictures
HASH_DECODE = 64         # JPEGs are draft-decoded near this size: hashes look at 8-32 px
COPY_AGREEMENT = 0.85    # least fine-detail correlation of a copy (see above)
DETAIL_SIDE = 128        # the most pixels a side the detail is compared at


def fingerprint(path: str) -> np.ndarray:
    """pHash + dHash bits of a row key's picture (128 booleans), robust to resizing, recompression,
    light crops. A file, a video frame or a region (a face) of a file."""
    return image_fingerprint(load_item(path, target_size=HASH_DECODE))


def image_fingerprint(img) -> np.ndarray:
    """`fingerprint` of a decoded PIL image (a video frame, for scene changes)."""
    import imagehash

    return np.concatenate([imagehash.phash(img).hash.ravel(), imagehash.dhash(img).hash.ravel()])


def hash_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Bits that differ between two fingerprints."""
    return int(np.count_nonzero(a != b))


def detail_agreement(a: str, b: str) -> float:
    """Correlation (-1..1) of the fine detail of two pictures (row keys), compared at the smaller
    one's resolution (at most DETAIL_SIDE px a side): ~1 for a resized or recompressed copy, low for
    a neighbouring section, the next frame of a moving scene, or a burst shot."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    imgs = [load_item(p, target_size=2 * DETAIL_SIDE) for p in (a, b)]
    side = max(8, min(DETAIL_SIDE, *(min(i.size) for i in imgs)))
    detail = []
    for img in imgs:
        grey = np.asarray(img.convert("L").resize((side, side), Image.BILINEAR), np.float32)
        d = grey - gaussian_filter(grey, max(1.0, side / 64))
        detail.append(d - d.mean())
    norm = float(np.linalg.norm(detail[0]) * np.linalg.norm(detail[1]))
    return float((detail[0] * detail[1]).sum() / norm) if norm > 1e-6 else 0.0


def same_bytes(a: str, b: str) -> bool:
    """Byte-identical files (False for anything that is not a readable file)."""
    def digest(p: str) -> str:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    try:
        return os.path.getsize(a) == os.path.getsize(b) and digest(a) == digest(b)
    except OSError:
        return False
