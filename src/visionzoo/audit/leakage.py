"""Copies across splits and labels, found by the existing near-duplicate search (feature candidates
confirmed by perceptual hashes, downstream/dedup.py).

In each group of copies the anchor is the copy in the earliest split (train, then val, then test;
among equals the one dedup keeps: the most pixels), and every other copy within dedup's hash
distance of the anchor itself (not only of another member) is one finding beside it:
`leakage` when it sits in another split or carries another label (the same photo under two labels),
`duplicate` when it repeats the anchor within one split and label."""
from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np

from ..downstream.dedup import DEFAULT_MAX_DISTANCE, find_duplicates, fingerprint, hash_distance
from .findings import Finding
from .inventory import SPLIT_ORDER, UNSPLIT, Item

# Candidates per image. dedup's 16 missed a 0.7x JPEG copy of a 100 px membrane tile: among 300
# tiles of one texture, 27 others were nearer in feature space than its original (hashes: 0 bits).
NEIGHBOURS = 64
# The hashes look at a 32 px grid; an image smaller than that is upsampled into it, and any two similar
# crops then agree on more bits. On lfw's 25 px faces distinct pairs were 19-28 bits apart, copies
# resized 0.5-0.9x and re-saved at JPEG quality 40-85 were 1-16.
TINY_SIDE = 32
TINY_MAX_DISTANCE = 17


def _same_bytes(a: str, b: str) -> bool:
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


def _how(a: str, b: str, cosine: float, side: int) -> tuple[float, str] | None:
    """(certainty, words): identical files 1.0, else the share of the 128 hash bits that agree; None
    when the two are further apart than dedup confirms (a group is joined through other members), or
    than TINY_MAX_DISTANCE when the smaller image's shorter side is under TINY_SIDE px."""
    if _same_bytes(a, b):
        return 1.0, "identical files"
    bits = hash_distance(fingerprint(a), fingerprint(b))
    if bits > (TINY_MAX_DISTANCE if 0 < side < TINY_SIDE else DEFAULT_MAX_DISTANCE):
        return None
    return 1 - bits / 128, f"near-identical: hashes {bits} of 128 bits apart, feature cosine {cosine:.3f}"


def copy_findings(paths: Sequence[str], matrix: np.ndarray, items: dict[str, Item],
                  flat: set[str] = frozenset()) -> list[Finding]:
    """One finding per copy beside its group's anchor. Near-blank images (`flat`) pair only as identical
    files: the hash of a flat picture is its noise, so any two flat patches would "match"."""
    report = find_duplicates((list(paths), matrix), neighbours=NEIGHBOURS)
    x = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    row = {p: i for i, p in enumerate(paths)}
    out = []
    for group in report.groups:
        kept = group[0].path
        side = {m.path: min(m.width, m.height) for m in group}
        anchor = min((m.path for m in group), key=lambda p: (SPLIT_ORDER.index(items[p].split), p != kept, p))
        a = items[anchor]
        for m in group:
            if m.path == anchor:
                continue
            b = items[m.path]
            if (m.path in flat or anchor in flat) and not _same_bytes(m.path, anchor):
                continue
            judged = _how(m.path, anchor, float(x[row[m.path]] @ x[row[anchor]]), min(side[m.path], side[anchor]))
            if judged is None:
                continue
            score, how = judged
            where = []
            if b.split != a.split:
                where.append(f"in {b.split}, a copy of a {a.split} image")
            if b.label != a.label:
                where.append(f"labelled {b.label!r} here, {a.label!r} there")
            if not where and b.split == UNSPLIT:
                where.append("a random validation split would put copies on both sides")
            kind = "leakage" if b.split != a.split or b.label != a.label else "duplicate"
            out.append(Finding(kind, m.path, score, "; ".join(where + [how]), other_path=anchor,
                               given_label=b.label or "", split=b.split, other_split=a.split,
                               other_label=a.label or ""))
    return out
