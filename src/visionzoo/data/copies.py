"""Is one picture a copy of another? Perceptual hashes say "alike"; fine detail says "the same".

Two stages, one for each question:
1. `fingerprint`: pHash + dHash (imagehash, 64 bits each, on the whole picture squashed to a
   square, so any aspect ratio works). Copies resized, recompressed or lightly cropped stay within
   `MAX_DISTANCE` (28) of 128 bits; distinct photos are further apart. But look-alikes that are
   not copies come as close: neighbouring serial sections (membrane EM: 18-28 bits), consecutive
   video frames (0-34), a burst (19). Alike is what `dedup` groups.
2. `detail_agreement`: the correlation of the two pictures' fine detail (grey, at the smaller
   one's resolution up to 128 px, minus a Gaussian blur), over the whole picture and in the least
   agreeing of its 4 x 4 parts. A copy keeps its detail everywhere: 10 planted copies (5 raccoon
   photos and 5 membrane sections resized 0.4-0.9x, JPEG quality 30-90) agreed >= 0.89 overall
   and >= 0.66 in their worst part. Look-alikes do not: the membrane pairs within 28 bits
   -0.03-0.23 overall, a burst -0.04; frames 0.2 s apart of a signer disagree where the hands
   move (worst part median 0.57). `is_copy` asks >= COPY_AGREEMENT (0.85) overall and
   >= PART_AGREEMENT (0.5) in every part; a pair alike by hash but not a copy is a look-alike
   for a person to judge, never a copy to remove. Frames of a still scene are the same picture
   to within noise (0.95 overall): no pixel measure tells them from a re-saved copy.
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
PARTS = 4                # ... and in 4 x 4 tiles
PART_AGREEMENT = 0.5     # least agreement of the worst tile of a copy (see above)


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


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    norm = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float((x * y).sum() / norm) if norm > 1e-6 else 0.0


def detail_agreement(a: str, b: str) -> tuple[float, float]:
    """(whole, worst part): the correlation (-1..1) of the fine detail of two pictures (row keys),
    compared at the smaller one's resolution (at most DETAIL_SIDE px a side), over the whole picture
    and in the least agreeing of its PARTS x PARTS tiles that hold detail. A resized or recompressed
    copy changes everywhere alike: both near 1. A neighbouring section, a burst shot or the next
    frame of a moving scene disagrees overall or in the part that moved."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    imgs = [load_item(p, target_size=2 * DETAIL_SIDE) for p in (a, b)]
    side = max(8 * PARTS, min(DETAIL_SIDE, *(min(i.size) for i in imgs))) // PARTS * PARTS
    detail = []
    for img in imgs:
        grey = np.asarray(img.convert("L").resize((side, side), Image.BILINEAR), np.float32)
        detail.append(grey - gaussian_filter(grey, max(1.0, side / 64)))
    t = side // PARTS
    tiles = [(detail[0][i:i + t, j:j + t], detail[1][i:i + t, j:j + t]) for i in range(0, side, t)
             for j in range(0, side, t)]
    energy = np.array([float(np.linalg.norm(x) * np.linalg.norm(y)) for x, y in tiles])
    busy = [k for k in range(len(tiles)) if energy[k] >= 0.25 * np.median(energy)]   # flat tiles say nothing
    return _corr(*detail), min((_corr(*tiles[k]) for k in busy), default=1.0)


def is_copy(agreement: tuple[float, float]) -> bool:
    """A copy by `detail_agreement`: the whole agrees and no part disagrees."""
    return agreement[0] >= COPY_AGREEMENT and agreement[1] >= PART_AGREEMENT


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
