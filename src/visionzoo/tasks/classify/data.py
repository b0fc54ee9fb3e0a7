"""Labelled image datasets: class-per-folder trees (with or without train/val/test) or a CSV.

The label map is the sorted list of class names, recorded with every run. Structural problems
(missing folder, an empty class, a single class) are usage errors; a corrupt file is not: it is
found when decoded, skipped and listed by whoever reads it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...data.folders import find_split_dirs, read_label_csv
from ...data.inputs import walk
from ...data.splits import holdout
from ...errors import UsageError


@dataclass
class Split:
    """Image paths and their class indices (into the dataset's `labels`)."""

    paths: list[str] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices) -> "Split":
        return Split([self.paths[i] for i in indices], [self.targets[i] for i in indices])

    def counts(self, n_classes: int) -> list[int]:
        return np.bincount(np.asarray(self.targets, dtype=int), minlength=n_classes).tolist()


@dataclass
class LabeledDataset:
    labels: list[str]
    train: Split
    val: Split | None = None
    test: Split | None = None
    skipped: list[str] = field(default_factory=list)   # files without an image extension
    source: str = ""
    layout: str = ""                                    # "splits" | "folder" | "csv"

    def describe(self) -> str:
        parts = [f"{len(self.labels)} classes ({', '.join(self.labels[:8])}{', ...' if len(self.labels) > 8 else ''})",
                 f"train {len(self.train)}"]
        parts += [f"{name} {len(s)}" for name, s in (("val", self.val), ("test", self.test)) if s]
        return ", ".join(parts)


def _class_folders(root: Path) -> tuple[dict[str, list[str]], list[str]]:
    """{class name: sorted image files} for each sub-folder of `root`, plus skipped files."""
    classes: dict[str, list[str]] = {}
    skipped: list[str] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files, skip = walk(sub)
        classes[sub.name] = sorted(files)
        skipped += skip
    return classes, skipped


def _check_classes(classes: dict[str, list[str]], where: str) -> None:
    if not classes:
        raise UsageError(f"{where}: no class folders found (expected one sub-folder of images per class)")
    empty = [name for name, files in classes.items() if not files]
    if empty:
        raise UsageError(f"{where}: class folder(s) without images: {', '.join(empty)}")
    if len(classes) < 2:
        raise UsageError(f"{where}: only one class ({next(iter(classes))}); a classifier needs at least two")


def _split_from(classes: dict[str, list[str]], labels: list[str], where: str) -> Split:
    unknown = sorted(set(classes) - set(labels))
    if unknown:
        raise UsageError(f"{where}: classes not in train/: {', '.join(unknown)}")
    index = {name: i for i, name in enumerate(labels)}
    split = Split()
    for name, files in classes.items():
        split.paths += files
        split.targets += [index[name]] * len(files)
    return split


def stratified_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Hold out `fraction` of each class (at least one image of every class with two or more)."""
    kept, held = holdout(len(split), fraction, seed, strata=split.targets)
    return split.subset(kept), split.subset(held)


def kfold_splits(split: Split, k: int, seed: int) -> list[tuple[Split, Split]]:
    """Stratified, seeded K folds: [(train, val)] * k."""
    from sklearn.model_selection import StratifiedKFold

    smallest = min(np.bincount(split.targets)[np.unique(split.targets)])
    if k < 2 or k > smallest:
        raise UsageError(f"--cv {k}: need 2 <= K <= the smallest class's image count ({smallest})")
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(split.subset(tr), split.subset(va)) for tr, va in folds.split(np.zeros(len(split)), split.targets)]


def read_csv_split(path: Path, encoding: str = "utf-8") -> tuple[dict[str, list[str]], list[str]]:
    """CSV of `path,label` (relative paths are relative to the CSV's folder)."""
    classes: dict[str, list[str]] = {}
    missing = []
    for name, label in read_label_csv(path, encoding):
        file = Path(name)
        file = file if file.is_absolute() else path.parent / file
        if not file.exists():
            missing.append(str(file))
        classes.setdefault(label, []).append(str(file))
    if missing:
        raise UsageError(f"{path}: {len(missing)} listed file(s) do not exist, e.g. {missing[0]}")
    return {name: sorted(set(files)) for name, files in sorted(classes.items())}, []


def load_dataset(data: str | os.PathLike, *, val_split: float = 0.2, seed: int = 0,
                 encoding: str = "utf-8") -> LabeledDataset:
    """Read DATA: a tree with train/ and val/ (and optional test/) class folders, one tree of class
    folders split by `val_split` (stratified, seeded; 0 = no validation), or a `path,label` CSV."""
    root = Path(data)
    if not root.exists():
        raise UsageError(f"no such dataset folder or CSV: {root}")
    if not 0 <= val_split < 1:
        raise UsageError(f"--val-split must be in [0, 1), got {val_split}")
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise UsageError(f"{root}: a dataset is a folder of class folders or a CSV of path,label")
        classes, skipped = read_csv_split(root, encoding)
        layout = "csv"
    else:
        dirs = find_split_dirs(root)
        if dirs:
            if "train" not in dirs:
                raise UsageError(f"{root}: has {'/'.join(d.name for d in dirs.values())}/ but no train/ folder")
            classes, skipped = _class_folders(dirs["train"])
            _check_classes(classes, str(dirs["train"]))
            labels = sorted(classes)
            ds = LabeledDataset(labels, _split_from(classes, labels, str(dirs["train"])), skipped=skipped,
                                source=str(root), layout="splits")
            for name in ("val", "test"):
                if name in dirs:
                    sub, skip = _class_folders(dirs[name])
                    ds.skipped += skip
                    setattr(ds, name, _split_from(sub, labels, str(dirs[name])))
            if ds.val is None and val_split > 0:
                ds.train, ds.val = stratified_split(ds.train, val_split, seed)
            return ds
        classes, skipped = _class_folders(root)
        layout = "folder"
    _check_classes(classes, str(root))
    labels = sorted(classes)
    everything = _split_from(classes, labels, str(root))
    ds = LabeledDataset(labels, everything, skipped=skipped, source=str(root), layout=layout)
    if val_split > 0:
        ds.train, ds.val = stratified_split(everything, val_split, seed)
    return ds


def load_eval_split(data: str | os.PathLike, labels: list[str], encoding: str = "utf-8") -> tuple[Split, list[str]]:
    """The images to evaluate a run on: test/ if DATA has one, else val/, else all of DATA;
    class names are mapped onto the run's `labels` (unknown classes are a usage error)."""
    root = Path(data)
    if not root.exists():
        raise UsageError(f"no such dataset folder or CSV: {root}")
    if root.is_file():
        classes, skipped = read_csv_split(root, encoding)
        where = str(root)
    else:
        dirs = find_split_dirs(root)
        chosen = dirs.get("test") or dirs.get("val") or root
        if dirs and chosen is root:
            raise UsageError(f"{root}: has a train/ folder but no test/ or val/ folder to evaluate on")
        classes, skipped = _class_folders(chosen)
        where = str(chosen)
        if not classes:
            raise UsageError(f"{where}: no class folders found (expected one sub-folder of images per class)")
    classes = {name: files for name, files in classes.items() if files}
    if not classes:
        raise UsageError(f"{where}: no images found")
    unknown = sorted(set(classes) - set(labels))
    if unknown:
        raise UsageError(f"{where}: classes the model was not trained on: {', '.join(unknown)} "
                         f"(its classes: {', '.join(labels)})")
    return _split_from(classes, labels, where), skipped
