"""Copies across splits and labels, found by the near-duplicate search (feature candidates confirmed
by perceptual hashes, downstream/dedup.py), then told apart from look-alikes.

Every pair alike by hash is judged on its own (not through a group, where a copy could sit
beside its original's neighbour):
- a **copy** when the files are identical, or when the fine detail of the two pictures agrees
  (`data/copies.py`). Copies joined by copy pairs form a set whose anchor is the one in the
  earliest split (train, then val, then test), then the one with the most pixels; every other
  member is one finding beside the anchor (or beside its own copy, when it is no direct copy of
  the anchor): `leakage` in another split or under another label, `duplicate` within one split
  and label. `--fix` removes leaked and unsplit copies.
- a **look_alike** otherwise: alike by hash but not shown to be a copy (neighbouring serial
  sections, consecutive video frames, burst shots, distinct tiny crops). Each image gets at most
  one, beside its most alike partner that comes earlier; listed in review.csv for a person to
  judge, never removed.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.copies import (
    COPY_AGREEMENT,
    PART_AGREEMENT,
    detail_agreement,
    fingerprint,
    hash_distance,
    is_copy,
    same_bytes,
)
from ..data.natural import natural_key
from ..data.regions import item_size
from ..downstream.dedup import find_duplicates
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


def _how(a: str, b: str, cosine: float, bits: int, side: int) -> tuple[bool, float, str] | None:
    """(a copy?, certainty, words) of a pair dedup confirmed (`bits` apart): identical files are copies
    (1.0); other pairs are copies when their fine detail agrees, look-alikes otherwise (certainty: the
    share of hash bits that agree). None past TINY_MAX_DISTANCE when the smaller image's shorter side
    is under TINY_SIDE px (any two tiny crops hash alike)."""
    if same_bytes(a, b):
        return True, 1.0, "identical files"
    if bits < 0:
        bits = hash_distance(fingerprint(a), fingerprint(b))
    if 0 < side < TINY_SIDE and bits > TINY_MAX_DISTANCE:
        return None
    agree = detail_agreement(a, b)
    words = (f"hashes {bits} of 128 bits apart, fine detail agrees {agree[0]:.2f} (least in a part "
             f"{agree[1]:.2f}), feature cosine {cosine:.3f}")
    if is_copy(agree):
        return True, 1 - bits / 128, f"near-identical: {words}"
    return False, 1 - bits / 128, (f"alike, not shown to be a copy (a neighbouring frame or section, a burst?): "
                                   f"{words}; a copy agrees >= {COPY_AGREEMENT} overall, >= {PART_AGREEMENT} "
                                   f"in every part")


def _finding(kind_if_copy: bool, path: str, other: str, score: float, how: str, items: dict[str, Item]) -> Finding:
    a, b = items[other], items[path]
    where = []
    if b.split != a.split:
        where.append(f"in {b.split}, {'a copy of' if kind_if_copy else 'alike to'} a {a.split} image")
    if b.label != a.label:
        where.append(f"labelled {b.label!r} here, {a.label!r} there")
    if not where and b.split == UNSPLIT and kind_if_copy:
        where.append("a random validation split would put copies on both sides")
    if not kind_if_copy:
        kind = "look_alike"
    else:
        kind = "leakage" if b.split != a.split or b.label != a.label else "duplicate"
    return Finding(kind, path, score, "; ".join(where + [how]), other_path=other, given_label=b.label or "",
                   split=b.split, other_split=a.split, other_label=a.label or "")


def copy_findings(paths: Sequence[str], matrix: np.ndarray, items: dict[str, Item],
                  flat: set[str] = frozenset()) -> list[Finding]:
    """One finding per copy beside its anchor, and per image alike to an earlier one but no copy of it.
    Near-blank images (`flat`) pair only as identical files: the hash of a flat picture is its
    noise, so any two flat patches would "match"."""
    report = find_duplicates((list(paths), matrix), neighbours=NEIGHBOURS)
    sizes = {m.path: (m.width, m.height) for g in report.groups for m in g}
    for a, b, _, _ in report.pairs:
        for p in (a, b):
            if p not in sizes:
                sizes[p] = item_size(p)[:2]

    def rank(p: str) -> tuple:
        return SPLIT_ORDER.index(items[p].split), -sizes[p][0] * sizes[p][1], natural_key(p)

    judged: dict[tuple[str, str], tuple[bool, float, str]] = {}
    for a, b, cosine, bits in report.pairs:
        if (a in flat or b in flat) and not same_bytes(a, b):
            continue
        side = min(*sizes[a], *sizes[b])
        verdict = _how(b, a, cosine, bits, side)
        if verdict is not None:
            a, b = sorted((a, b), key=rank)          # (earlier, later)
            judged[(a, b)] = verdict
    # copy sets: union-find over copy pairs
    parent: dict[str, str] = {}

    def root(p: str) -> str:
        while parent.get(p, p) != p:
            p = parent[p]
        return p

    for (a, b), (copy, _, _) in judged.items():
        if copy:
            ra, rb = sorted({root(a), root(b)}, key=rank) + [None] * (root(a) == root(b))
            if rb is not None:
                parent[rb] = ra
    members: dict[str, list[str]] = {}
    for p in {p for pair, v in judged.items() if v[0] for p in pair}:
        members.setdefault(root(p), []).append(p)
    out, copied = [], set()
    for group in members.values():
        anchor = min(group, key=rank)
        for p in sorted(group, key=rank):
            if p == anchor:
                continue
            partners = [(q, judged[tuple(sorted((p, q), key=rank))]) for q in group
                        if q != p and tuple(sorted((p, q), key=rank)) in judged
                        and judged[tuple(sorted((p, q), key=rank))][0]]
            other, (_, score, how) = min(partners, key=lambda qv: (qv[0] != anchor, -qv[1][1], rank(qv[0])))
            out.append(_finding(True, p, other, score, how, items))
            copied.add(p)
    best: dict[str, tuple[str, float, str]] = {}
    for (a, b), (copy, score, how) in judged.items():
        if not copy and b not in copied and (b not in best or score > best[b][1]):
            best[b] = (a, score, how)
    out += [_finding(False, b, a, score, how, items) for b, (a, score, how) in best.items()]
    return out
