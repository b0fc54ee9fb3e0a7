"""Dataset folder conventions every task shares: train/ val/ test/ sub-folders and path,label CSVs."""
from __future__ import annotations

import csv
from pathlib import Path

from ..errors import UsageError

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test",)}


def find_split_dirs(root: Path) -> dict[str, Path]:
    found = {}
    for split, names in SPLIT_ALIASES.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = root / name
                break
    return found


def read_label_csv(path: Path) -> list[tuple[str, str]]:
    """Rows of a `path,label` CSV as written (header optional, blank and '#' lines skipped).

    The one reader for label CSVs: training datasets and feature probes both take them."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r) and not r[0].startswith("#")]
    if rows and [c.strip().lower() for c in rows[0][:2]] in (["path", "label"], ["file", "label"], ["filename", "label"]):
        rows = rows[1:]
    for n, row in enumerate(rows, 1):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise UsageError(f"{path}: row {n} is not 'path,label': {row}")
    return [(row[0].strip(), row[1].strip()) for row in rows]


