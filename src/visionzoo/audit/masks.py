"""Mask checks of a segmentation set: which classes each mask holds, the classes found in a single
mask (too rare to learn or to evaluate; often a stray value from a painting tool), and per-class
image counts and pixel shares for the balance section. Unusable masks (no partner, other size,
values outside the classes) arrive from the dataset reader as findings with the inventory."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..cpus import usable_cpus
from ..ordered import ordered_map
from .findings import Finding
from .inventory import Item


def _classes_in(sample: Any) -> dict[int, int]:
    from ..tasks.segment.data import IGNORE, read_mask, to_classes

    values, counts = np.unique(to_classes(read_mask(sample.mask)[0], sample.binary), return_counts=True)
    return {int(v): int(n) for v, n in zip(values, counts) if v != IGNORE}


def mask_check(samples: Sequence[Any], labels: list[str],
               items: dict[str, Item]) -> tuple[list[Finding], list[list[str]], dict[str, float]]:
    """(rare-class findings, the class names in each sample's mask, each class's share of all pixels)."""
    present = list(ordered_map(_classes_in, samples, usable_cpus()))
    pixels = np.zeros(len(labels), dtype=float)
    holders: dict[int, list[int]] = {}
    for n, found in enumerate(present):
        for c, count in found.items():
            pixels[c] += count
            holders.setdefault(c, []).append(n)
    out = []
    for c, where in holders.items():
        if len(where) == 1:
            s = samples[where[0]]
            out.append(Finding("rare_class", s.mask, 1.0, f"the only mask with class {labels[c]!r} "
                               f"({present[where[0]][c]} px); image {s.image}", given_label=labels[c],
                               split=items[s.image].split))
    share = pixels / max(pixels.sum(), 1)
    return (out, [[labels[c] for c in found] for found in present],
            {name: round(float(v), 4) for name, v in zip(labels, share)})
