"""Per-class counts in each split, and plain warnings where a class is too small to evaluate (a
handful of validation images: one image moves its recall by a large step) or the classes are very
unequal. Counts are images per class (classification), images holding the class (segmentation),
or boxes per class (detection)."""
from __future__ import annotations

from collections import Counter
from typing import Any

from .inventory import UNSPLIT, Inventory

MIN_EVAL = 10         # fewer held-out examples of a class than this: its score is too coarse to trust
MIN_TOTAL = 5         # fewer examples than this: too few to learn or cross-validate the class
IMBALANCE = 10.0      # largest / smallest class above this: accuracy hides the small class
RANDOM_VAL = 0.2      # the share `train` holds out when DATA has no validation split


def counts(inv: Inventory, mask_classes: list[list[str]] | None = None) -> dict[str, dict[str, int]]:
    """{split: {class: count}} over the items (`mask_classes`: the classes in each segmentation mask)."""
    table: dict[str, Counter] = {s: Counter() for s in inv.splits}
    for n, item in enumerate(inv.items):
        if inv.task == "classify":
            table[item.split][item.label] += 1
        elif inv.task == "detect":
            table[item.split].update(inv.classes[int(c)] for c in inv.samples[n].labels)
        elif mask_classes is not None:
            table[item.split].update(mask_classes[n])
    return {split: {c: int(table[split][c]) for c in inv.classes} for split in table}


def warnings_for(table: dict[str, dict[str, int]], unit: str) -> list[str]:
    out = []
    classes = list(next(iter(table.values()), {}))
    total = {c: sum(t[c] for t in table.values()) for c in classes}
    for c in classes:
        if total[c] < MIN_TOTAL:
            out.append(f"{c!r} has only {total[c]} {unit} in all: too few to learn it or to check its labels")
    held = [s for s in ("val", "test") if s in table]
    for split in held:
        for c in classes:
            n = table[split][c]
            if n == 0 and total[c]:
                out.append(f"no {c!r} {unit} in {split}: its score on {split} cannot be measured")
            elif 0 < n < MIN_EVAL:
                out.append(f"only {n} {c!r} {unit} in {split}: one of them moves its recall by {1 / n:.0%}, "
                           f"too few to evaluate the class")
    if not held and UNSPLIT in table:
        for c in classes:
            n = total[c] * RANDOM_VAL
            if total[c] >= MIN_TOTAL and n < MIN_EVAL:
                out.append(f"{c!r} has {total[c]} {unit}: a {RANDOM_VAL:.0%} validation split holds about {n:.0f}, "
                           f"too few to evaluate the class")
    sizes = [v for v in total.values() if v]
    if len(sizes) > 1 and max(sizes) / min(sizes) > IMBALANCE:
        big, small = max(total, key=total.get), min((c for c in total if total[c]), key=total.get)
        out.append(f"classes are unbalanced: {big!r} has {total[big]} {unit}, {small!r} {total[small]} "
                   f"({total[big] / total[small]:.0f}x); accuracy alone will hide how the small ones do")
    return out


def balance(inv: Inventory, mask_classes: list[list[str]] | None = None) -> dict[str, Any]:
    """{"unit", "counts": {split: {class: n}}, "warnings"}."""
    unit = {"detect": "boxes of each class", "segment": "images whose mask holds the class"}.get(
        inv.task, "images of each class")
    table = counts(inv, mask_classes)
    return {"unit": unit, "counts": table,
            "warnings": warnings_for(table, "boxes" if inv.task == "detect" else "images")}
