"""What DATA holds, read by the tasks' own dataset readers: each image with its split and (for
classification) its given label, the task's annotations, and the problems the readers reported
while reading (unparseable annotations, unpaired masks, boxes outside the image), as findings.

Paths stay as the readers build them from DATA as the user wrote it, so issues.csv names files
the way the command line did."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.folders import SPLIT_ALIASES, find_split_dirs
from ..data.inputs import walk
from ..errors import UsageError
from .findings import Finding

TASKS = ("classify", "detect", "segment")
UNSPLIT = "all"          # the split name of every image when DATA has no train/ val/ test/
SPLIT_ORDER = ("train", "val", "test", UNSPLIT)


@dataclass
class Item:
    path: str
    split: str
    label: str | None = None      # classification only: the class DATA gives the image


@dataclass
class Inventory:
    task: str
    root: str
    items: list[Item]
    classes: list[str]
    findings: list[Finding] = field(default_factory=list)   # what the readers reported
    skipped: list[str] = field(default_factory=list)        # files without an image extension
    samples: list[Any] = field(default_factory=list)        # detect: datasets.Sample per item; segment: Sample
    detail: str = ""                                        # the reader's one-line description

    @property
    def splits(self) -> list[str]:
        present = {i.split for i in self.items}
        return [s for s in SPLIT_ORDER if s in present]


def _mask_dir_with_images(folder: Path) -> bool:
    from ..tasks.segment.data import IMAGE_DIRS, MASK_DIRS

    if not any((folder / d).is_dir() for d in IMAGE_DIRS):
        return False
    masks = next((folder / d for d in MASK_DIRS if (folder / d).is_dir()), None)
    return masks is not None and bool(walk(masks)[0])


def guess_task(data: Path, annotations: str | None) -> str:
    """detect for annotation files or VOC / COCO / YOLO folders, segment for images/ beside masks/
    of images, else classify (class folders or a path,label CSV)."""
    if annotations is not None or (data.is_file() and data.suffix.lower() == ".json"):
        return "detect"
    if not data.is_dir():
        return "classify"
    base = find_split_dirs(data).get("train", data)
    if _mask_dir_with_images(base):
        return "segment"
    from ..tasks.detect.datasets import detect_format

    try:
        detect_format(base)
        return "detect"
    except UsageError:
        return "classify"


def split_of(path: str, root: str) -> str:
    """train / val / test when a folder on the way from DATA to the file is named so (YOLO keeps
    images/train/, images/val/), else UNSPLIT."""
    parts = Path(os.path.relpath(path, root)).parts[:-1]
    for part in parts:
        for split, names in SPLIT_ALIASES.items():
            if part.lower() in names:
                return split
    return UNSPLIT


# --------------------------------------------------------------------------- classify
def read_classify(data: Path) -> Inventory:
    from ..tasks.classify.data import load_dataset

    ds = load_dataset(data, val_split=0)
    items: list[Item] = []
    for name in ("train", "val", "test"):
        split = getattr(ds, name)
        if split is None:
            continue
        tag = name if ds.layout == "splits" else UNSPLIT
        items += [Item(p, tag, ds.labels[t]) for p, t in zip(split.paths, split.targets)]
    return Inventory("classify", str(data), items, list(ds.labels), skipped=list(ds.skipped), detail=ds.describe())


# --------------------------------------------------------------------------- detect
def _detection_finding(issue: Any) -> Finding:
    unreadable = issue.reason.startswith(("not a readable image", "cannot parse the annotation"))
    return Finding("unreadable" if unreadable else "box_error", issue.file, 1.0, issue.reason)


def read_detect(data: Path, annotations: str | None) -> Inventory:
    """Each split folder read on its own (train/, val/, test/ when DATA has them), classes merged
    by name; without split folders, a split is taken from the images' folder names."""
    import numpy as np

    from ..tasks.detect.datasets import load_detection_data

    dirs = {} if annotations is not None or not data.is_dir() else find_split_dirs(data)
    parts = {name: load_detection_data(folder) for name, folder in dirs.items()} if dirs else \
        {None: load_detection_data(data, annotations)}
    classes: list[str] = []
    for found in parts.values():
        classes += [c for c in found.classes if c not in classes]
    items, samples, findings = [], [], []
    for name, found in parts.items():
        remap = np.asarray([classes.index(c) for c in found.classes], dtype=np.int64)
        for s in found.samples:
            if len(s.labels):
                s.labels = remap[s.labels]
            items.append(Item(s.path, name or split_of(s.path, str(data))))
            samples.append(s)
        findings += [_detection_finding(i) for i in found.issues]
    boxes = sum(len(s.boxes) for s in samples)
    detail = f"{len(samples)} images, {boxes} boxes, {len(classes)} classes ({', '.join(classes[:8])})"
    return Inventory("detect", str(data), items, classes, findings, samples=samples, detail=detail)


# --------------------------------------------------------------------------- segment
def read_segment(data: Path, classes: list[str] | None) -> Inventory:
    from ..tasks.segment.data import load_seg_dataset

    ds = load_seg_dataset(data, classes=classes, val_split=0)
    items, samples = [], []
    for name in ("train", "val", "test"):
        for s in getattr(ds, name):
            items.append(Item(s.image, name if ds.layout == "splits" else UNSPLIT))
            samples.append(s)
    findings = []
    for path, reason in ds.failures:
        unreadable = reason.startswith("unreadable mask") or not any(
            w in reason for w in ("mask", "has no", "share the name", "values"))
        findings.append(Finding("unreadable" if unreadable else "mask_error", path, 1.0, reason))
    return Inventory("segment", str(data), items, list(ds.labels), findings, samples=samples, detail=ds.describe())


def read(data: str | os.PathLike, task: str | None = None, *, annotations: str | None = None,
         classes: list[str] | None = None) -> Inventory:
    root = Path(data)
    if not root.exists():
        raise UsageError(f"no such dataset folder or file: {root}")
    task = task or guess_task(root, annotations)
    if task not in TASKS:
        raise UsageError(f"unknown --task {task!r}; use one of {', '.join(TASKS)}")
    if task == "classify":
        return read_classify(root)
    if task == "detect":
        return read_detect(root, annotations)
    return read_segment(root, classes)
