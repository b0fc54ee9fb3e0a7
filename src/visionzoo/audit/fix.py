"""`--fix DIR`: a cleaned copy of the split as CSV files; the user's files are never moved, changed
or deleted. Removed: copies that leak across splits (the copy in val / test goes, the train one
stays), extra copies in a set without splits (a random validation split would spread them), and
unreadable files. Kept, but listed in review.csv for a person to decide: suspected label errors
(with the suggested label), the same photo under two labels in one split, box and mask problems,
outliers, junk and look-alikes that are not shown to be copies. A class-folder set gets `SPLIT.csv` files of path,label, which `visionzoo
train` reads; detection and segmentation sets get the kept image (and mask) paths per split."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Sequence

from ..atomic import atomic_path
from .findings import Finding
from .inventory import UNSPLIT, Inventory

REVIEW_KINDS = ("label_error", "leakage", "duplicate", "look_alike", "box_error", "mask_error", "rare_class", "outlier", "junk")


def removals(findings: Sequence[Finding]) -> dict[str, str]:
    """{path: why} of the images the cleaned split leaves out."""
    out: dict[str, str] = {}
    for f in findings:
        if f.kind == "unreadable":
            out.setdefault(f.path, f"unreadable: {f.detail}")
        elif f.kind == "leakage" and f.split != f.other_split:
            out.setdefault(f.path, f"copy of {f.other_path} ({f.other_split})")
        elif f.kind == "duplicate" and f.split == UNSPLIT:
            out.setdefault(f.path, f"copy of {f.other_path}")
    return out


def _write(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_fix(inv: Inventory, findings: Sequence[Finding], out: str | os.PathLike) -> dict[str, Any]:
    """Write the cleaned split CSVs, removed.csv and review.csv into `out`; returns what was written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gone = removals(findings)
    written, kept = [], {}
    for split in inv.splits:
        rows = []
        for n, item in enumerate(inv.items):
            if item.split != split or item.path in gone:
                continue
            full = os.path.abspath(item.path)
            if inv.task == "classify":
                rows.append((full, item.label))
            elif inv.task == "segment":
                rows.append((full, os.path.abspath(inv.samples[n].mask)))
            else:
                rows.append((full,))
        header = {"classify": ("path", "label"), "segment": ("path", "mask")}.get(inv.task, ("path",))
        written.append(str(_write(out / f"{split}.csv", header, rows)))
        kept[split] = len(rows)
    labels = {i.path: i.label or "" for i in inv.items}
    splits = {i.path: i.split for i in inv.items}
    written.append(str(_write(out / "removed.csv", ("path", "label", "split", "why"),
                              [(p, labels.get(p, ""), splits.get(p, ""), why) for p, why in gone.items()])))
    review = [f for f in findings if f.kind in REVIEW_KINDS and f.path not in gone]
    written.append(str(_write(out / "review.csv", ("path", "kind", "given_label", "suggested_label", "score",
                                                   "other_path", "detail"),
                              [(f.path, f.kind, f.given_label, f.suggested_label, f"{f.score:.4f}", f.other_path,
                                f.detail) for f in review])))
    return {"files": written, "kept": kept, "removed": len(gone), "to_review": len(review)}
