"""Dataset folder conventions every task shares: train/ val/ test/ sub-folders and path,label CSVs."""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .tables import csv_rows

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


def read_label_csv(path: Path, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """Rows of a `path,label` CSV as written (header optional, '#' lines skipped), read strictly
    (data.tables). The one reader for label CSVs: training datasets and feature probes both take them."""
    rows = [(n, r) for n, r in csv_rows(path, encoding) if not r[0].startswith("#")]
    if rows and [c.strip().lower() for c in rows[0][1][:2]] in (["path", "label"], ["file", "label"],
                                                                ["filename", "label"]):
        rows = rows[1:]
    for n, row in rows:
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise UsageError(f"{path}, line {n}: not 'path,label': {row}")
    return [(row[0].strip(), row[1].strip()) for _, row in rows]


