"""Held-out splits, all from one seeded generator: the same seed gives the same split in every task."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def shuffled(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of range(n)."""
    return np.random.default_rng(seed).permutation(n)


def holdout(n: int, fraction: float, seed: int, strata: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
    """(kept, held-out) indices, each sorted: `fraction` of the items held out, of each stratum
    separately when `strata` (e.g. class indices) is given. A stratum of two or more items keeps
    at least one and holds out at least one; a single item is always kept."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(strata if strata is not None else np.zeros(n, dtype=int))
    kept: list[int] = []
    held: list[int] = []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        rng.shuffle(idx)
        k = min(max(int(round(fraction * len(idx))), 1), len(idx) - 1) if len(idx) > 1 and fraction > 0 else 0
        held += idx[:k].tolist()
        kept += idx[k:].tolist()
    return sorted(kept), sorted(held)
