"""Does the validation set hold copies of training images? The same copy check `audit` uses
(perceptual hashes within data.copies.MAX_DISTANCE, then fine detail that agrees), kept cheap:
each image is hashed once from a 64 px decode, all pairs compared as bits at once, and only
the few pairs alike by hash are decoded again to compare detail. A val score measured on copies
of training images reads high; the run says so on its progress line and in its report."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..data.copies import MAX_DISTANCE, detail_agreement, fingerprint, is_copy
from ..data.decode import ImageDecodeError

SHOWN = 5          # copies named on the progress line


def _prints(paths: Sequence[str]) -> tuple[list[str], np.ndarray]:
    kept, rows = [], []
    for p in paths:
        try:
            rows.append(np.packbits(fingerprint(p)))
            kept.append(p)
        except ImageDecodeError:
            continue            # the training run reports unreadable files itself
    return kept, (np.stack(rows) if rows else np.zeros((0, 16), np.uint8))


def copies_between(train: Sequence[str], held: Sequence[str]) -> list[tuple[str, str]]:
    """(held-out image, training image it copies) for every held-out image that copies one."""
    tp, tx = _prints(train)
    hp, hx = _prints(held)
    if not len(tx) or not len(hx):
        return []
    bits = np.unpackbits(hx[:, None, :] ^ tx[None, :, :], axis=2).sum(2)   # (held, train) Hamming distances
    out = []
    for i in range(len(hp)):
        for j in np.argsort(bits[i], kind="stable"):
            if bits[i, j] > MAX_DISTANCE:
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
    found = {}
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
