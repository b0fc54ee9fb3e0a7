"""Does the validation set hold copies of training images? The same copy check `audit` uses
(perceptual hashes within data.copies.MAX_DISTANCE, then fine detail that agrees), kept cheap:
each image is hashed once from a 64 px decode (on every core), each held-out image's nearest
training images by hash found with FAISS's binary index, and only the few pairs alike by hash
are decoded again to compare detail. A val score measured on copies
of training images reads high; the run says so on its progress line and in its report."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..cpus import usable_cpus
from ..data.copies import MAX_DISTANCE, detail_agreement, fingerprint, is_copy
from ..data.decode import ImageDecodeError
from ..ordered import ordered_map

SHOWN = 5          # copies named on the progress line
NEAREST = 8        # training images (nearest by hash) a held-out image is compared with
MAX_IMAGES = 200_000   # past this many images the check is left to `visionzoo audit`


def _print(path: str) -> np.ndarray | None:
    try:
        return np.packbits(fingerprint(path))
    except ImageDecodeError:
        return None             # the training run reports unreadable files itself


def _prints(paths: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Packed 128-bit fingerprints of the readable images, hashed on every core (PIL decodes
    outside the GIL)."""
    rows = list(ordered_map(_print, paths, usable_cpus()))
    kept = [p for p, r in zip(paths, rows) if r is not None]
    return kept, (np.stack([r for r in rows if r is not None]) if kept else np.zeros((0, 16), np.uint8))


def copies_between(train: Sequence[str], held: Sequence[str]) -> list[tuple[str, str]]:
    """(held-out image, training image it copies) for every held-out image that copies one: its
    NEAREST training images by hash (FAISS's binary index) within MAX_DISTANCE bits, then detail."""
    import faiss

    tp, tx = _prints(train)
    hp, hx = _prints(held)
    if not len(tx) or not len(hx):
        return []
    index = faiss.IndexBinaryFlat(128)
    index.add(tx)
    bits, rows = index.search(hx, min(NEAREST, len(tp)))
    out = []
    for i in range(len(hp)):
        for d, j in zip(bits[i], rows[i]):
            if j < 0 or d > MAX_DISTANCE:
                break
            try:
                if is_copy(detail_agreement(hp[i], tp[j])):
                    out.append((hp[i], tp[j]))
                    break
            except ImageDecodeError:
                continue
    return out


def check_leaks(train: Sequence[str], splits: dict[str, Sequence[str]], log: Callable[[str], Any]) -> dict | None:
    """Copies of training images in each held-out split, warned about on `log`; a report entry
    ({split: {copies, images, pairs}}), or None when there are none."""
    found: dict[str, Any] = {}
    if len(train) + sum(map(len, splits.values())) > MAX_IMAGES:
        log(f"note: over {MAX_IMAGES:,} images: copies between splits not checked here "
            f"(`visionzoo audit DATA` checks them)")
        return None
    for name, paths in splits.items():
        if not paths:
            continue
        pairs = copies_between(train, paths)
        if not pairs:
            continue
        found[name] = {"copies": len(pairs), "images": len(paths),
                       "pairs": [{"path": a, "copy_of": b} for a, b in pairs]}
        shown = ", ".join(f"{a} = {b}" for a, b in pairs[:SHOWN]) + (" ..." if len(pairs) > SHOWN else "")
        log(f"warning: {len(pairs)} of {len(paths)} {name} images are copies of training images, so {name} "
            f"scores will read high ({shown}); `visionzoo audit DATA --fix CLEAN/` leaves them out")
    return found or None
