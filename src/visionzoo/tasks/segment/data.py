"""Segmentation datasets: images and masks paired by file name, masks read as class indices.

Layouts: DATA/{images,image}/ beside DATA/{masks,mask,labels,label}/ (split by `val_split`, seeded,
as for classifiers), or DATA/train/, DATA/val/ and DATA/test/ each holding those two folders.
A mask pairs with the image of the same relative path without extension (images/a/x.jpg with
masks/a/x.png). Masks are class-index PNGs (L, I;16), palette PNGs (their indices, not colours)
or binary 0/255 PNGs (two classes; anti-aliased edges, up to 5 % of a mask's pixels between 0 and
255, snap to the nearer class). In masks of more than two classes, and in 0/1 masks, 255 marks
pixels to ignore (the VOC convention). The classes are named by `--classes` or classes.txt, else
they are what the masks agree on (`check_samples`). Every pair is checked before training starts;
a bad pair (no partner, other size, values outside the classes, unreadable) is skipped and listed,
and never changes the classes of the others.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ...data.decode import ImageDecodeError, load_rgb
from ...data.folders import find_split_dirs
from ...data.geometry import oriented
from ...data.inputs import walk
from ...data.splits import holdout
from ...errors import UsageError

IMAGE_DIRS = ("images", "image", "imgs", "img")
MASK_DIRS = ("masks", "mask", "labels", "label")
IGNORE = 255          # mask value of pixels that count for nothing (loss, metrics)
MAX_INFERRED = 64     # more distinct values than this without named classes: not an index mask
BINARY_SHARE = 0.95   # a 0/255 mask with at least this share of pure pixels is anti-aliased, not corrupt
CLASSES_FILE = "classes.txt"


@dataclass
class Sample:
    image: str
    mask: str
    width: int = 0
    height: int = 0
    binary: bool = False   # a 0/255 mask: 255 means class 1


@dataclass
class SegDataset:
    labels: list[str]
    train: list[Sample]
    val: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)   # (file, reason): skipped pairs
    colors: list[list[int]] | None = None                            # from palette masks
    source: str = ""
    layout: str = ""

    def describe(self) -> str:
        names = ", ".join(self.labels[:8]) + (", ..." if len(self.labels) > 8 else "")
        parts = [f"{len(self.labels)} classes ({names})", f"train {len(self.train)}"]
        parts += [f"{n} {len(s)}" for n, s in (("val", self.val), ("test", self.test)) if s]
        if self.failures:
            parts.append(f"{len(self.failures)} file(s) skipped")
        return ", ".join(parts)


# --------------------------------------------------------------------------- masks
def read_mask(path: str) -> tuple[np.ndarray, list[int] | None]:
    """The raw 2-D values of a mask file (palette indices for palette PNGs) and its palette, if any.
    Raises ValueError with the reason for files that are not usable masks."""
    try:
        with Image.open(path) as im:
            im.load()
            im = oriented(im)
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except Exception as exc:
        raise ValueError(f"unreadable mask ({type(exc).__name__}: {exc})") from None
    palette = im.getpalette() if im.mode == "P" else None
    if im.mode in ("RGB", "RGBA"):
        arr = np.asarray(im)[..., :3]
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise ValueError("an RGB colour mask; save masks as class-index or palette PNGs")
        return arr[..., 0].copy(), None
    if im.mode in ("LA", "PA"):
        im = im.getchannel(0)
    if im.mode == "F":
        raise ValueError("a floating-point mask; save masks as integer class indices")
    arr = np.asarray(im)
    if arr.ndim != 2:
        raise ValueError(f"a {im.mode} image with {arr.shape[-1]} channels; masks have one")
    return arr.astype(np.uint8) if arr.dtype == bool else arr, palette


def to_classes(raw: np.ndarray, binary: bool) -> np.ndarray:
    """Raw mask values -> int64 class indices (binary 0/255 masks: >= 128 -> 1, so anti-aliased edges
    snap to the nearer class)."""
    if binary:
        return (raw >= 128).astype(np.int64)
    return raw.astype(np.int64)


def read_classes_file(path: Path) -> list[str]:
    names = [ln.strip() for ln in path.read_text("utf-8").splitlines()]
    return [n for n in names if n and not n.startswith("#")]


def _mask_hint(path: str) -> str:
    return "; JPEG compression changes mask values, save masks as PNG" if Path(path).suffix.lower() in (".jpg", ".jpeg") else ""


# --------------------------------------------------------------------------- pairing
def _find_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _keyed(folder: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """{relative path without extension: file} for the images under `folder`, plus name clashes."""
    files, _ = walk(folder)
    by_key: dict[str, list[str]] = {}
    for f in sorted(files):
        by_key.setdefault(Path(f).relative_to(folder).with_suffix("").as_posix(), []).append(f)
    clashes = [(f, f"two files share the name {k!r} ({', '.join(Path(x).name for x in fs)}); rename one")
               for k, fs in by_key.items() if len(fs) > 1 for f in fs]
    return {k: fs[0] for k, fs in by_key.items() if len(fs) == 1}, clashes


def pair_folder(root: Path) -> tuple[list[Sample], list[tuple[str, str]]]:
    """Pairs of (image, mask) under `root`/images and `root`/masks, and the files left unpaired."""
    images_dir, masks_dir = _find_dir(root, IMAGE_DIRS), _find_dir(root, MASK_DIRS)
    if images_dir is None or masks_dir is None:
        raise UsageError(f"{root}: expected an images/ (or image/) folder beside a masks/ (or mask/, labels/, label/) "
                         f"folder; found {', '.join(sorted(p.name + '/' for p in root.iterdir() if p.is_dir())) or 'none'}")
    images, failures = _keyed(images_dir)
    masks, mask_clashes = _keyed(masks_dir)
    failures += mask_clashes
    failures += [(m, f"mask has no image of the same name in {images_dir}") for k, m in masks.items() if k not in images]
    failures += [(i, f"image has no mask of the same name in {masks_dir}") for k, i in images.items() if k not in masks]
    return [Sample(images[k], masks[k]) for k in sorted(images) if k in masks], failures


# --------------------------------------------------------------------------- checking
@dataclass
class _Scan:
    sample: Sample
    counts: dict[int, int]          # pixels per mask value
    palette: list[int] | None

    @property
    def values(self) -> set[int]:
        return set(self.counts)

    @property
    def binary_like(self) -> bool:
        """A 0/255 mask, possibly anti-aliased: at least BINARY_SHARE of its pixels are 0 or 255, the rest
        lie in between (edges smoothed by a drawing tool or a resize): they snap to the nearer value."""
        if IGNORE not in self.counts:
            return False
        edge = sum(c for v, c in self.counts.items() if v not in (0, IGNORE))
        return edge <= (1 - BINARY_SHARE) * sum(self.counts.values())


def _scan(sample: Sample) -> _Scan:
    """Decode the image and its mask once; raise ValueError naming the file that is wrong."""
    try:
        img = load_rgb(sample.image)
    except ImageDecodeError as exc:
        raise ValueError(f"{sample.image}: {exc.reason}") from None
    try:
        raw, palette = read_mask(sample.mask)
    except ValueError as exc:
        raise ValueError(f"{sample.mask}: {exc}") from None
    if raw.shape != (img.height, img.width):
        raise ValueError(f"{sample.mask}: mask is {raw.shape[1]}x{raw.shape[0]} but its image {sample.image} "
                         f"is {img.width}x{img.height}")
    sample.width, sample.height = img.width, img.height
    values, counts = np.unique(raw, return_counts=True)
    return _Scan(sample, dict(zip(values.tolist(), counts.tolist())), palette)


def _default_labels(k: int) -> list[str]:
    return ["background", "foreground"] if k == 2 else ["background"] + [f"class_{i}" for i in range(1, k)]


def _agreed_classes(scans: list[_Scan]) -> int:
    """How many classes the masks agree on, when none are named: two when most masks are 0/255 (or
    0/1); else every index up to the largest one found in at least two masks (all of them, with one
    mask). A value only one mask has would make a class of its own, so that mask is left out instead."""
    if sum(sc.binary_like or sc.values <= {0, 1} for sc in scans) * 2 > len(scans):
        return 2
    seen: dict[int, int] = {}
    for sc in scans:
        for v in sc.values - {IGNORE}:
            seen[v] = seen.get(v, 0) + 1
    agreed = [v for v, n in seen.items() if n >= min(2, len(scans))]
    k = max(agreed, default=1) + 1
    if k > MAX_INFERRED:
        worst = max(scans, key=lambda sc: len(sc.values))
        raise UsageError(f"{worst.sample.mask}: {len(worst.values)} distinct values, not class indices "
                         f"(grayscale?){_mask_hint(worst.sample.mask)}; masks hold 0..K-1 (or 0/255 for two "
                         f"classes); name the classes with --classes or {CLASSES_FILE}")
    return max(k, 2)


def check_samples(samples: list[Sample], labels: list[str] | None) -> tuple[list[Sample], list[str], list[tuple[str, str]], list | None]:
    """Decode every pair, decide the classes and each mask's encoding; returns (good samples, labels,
    failures, palette colours). `labels` None: the classes the masks agree on (`_agreed_classes`). A
    mask with values outside the classes is listed with those values and left out; it never changes
    the classes of the others."""
    scans, failures = [], []
    for s in samples:
        try:
            scans.append(_scan(s))
        except ValueError as exc:
            path, _, reason = str(exc).partition(": ")
            failures.append((path, reason))
    if labels is None:
        labels = _default_labels(_agreed_classes(scans)) if scans else _default_labels(2)
    k = len(labels)
    good = []
    for sc in scans:
        if k == 2 and sc.binary_like:
            sc.sample.binary = True
        else:
            bad = sorted(v for v in sc.values if v >= k and v != IGNORE)
            if bad:
                shown = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
                failures.append((sc.sample.mask, f"values {shown} outside the {k} classes (0..{k - 1}; "
                                                 f"{IGNORE} = ignore){_mask_hint(sc.sample.mask)}; name the "
                                                 f"classes with --classes or {CLASSES_FILE} if they are real"))
                continue
        good.append(sc.sample)
    palette = next((sc.palette for sc in scans if sc.palette), None)
    colors = [list(palette[3 * i:3 * i + 3]) for i in range(k)] if palette and len(palette) >= 3 * k else None
    return good, labels, failures, colors


def random_split(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out `fraction` of the samples (at least one when there are two or more), seeded (data.splits)."""
    kept, held = holdout(len(samples), fraction, seed)
    return [samples[i] for i in kept], [samples[i] for i in held]


def _labels_for(root: Path, classes: list[str] | None) -> list[str] | None:
    if classes:
        if len(classes) < 2:
            raise UsageError(f"--classes names {len(classes)} class; segmentation needs at least two")
        if len(set(classes)) != len(classes):
            raise UsageError(f"--classes has duplicate names: {', '.join(classes)}")
        return list(classes)
    if (root / CLASSES_FILE).is_file():
        labels = read_classes_file(root / CLASSES_FILE)
        if len(labels) < 2:
            raise UsageError(f"{root / CLASSES_FILE} names {len(labels)} class(es); segmentation needs at least two")
        return labels
    return None


def load_seg_dataset(data: str | os.PathLike, *, classes: list[str] | None = None, val_split: float = 0.2,
                     seed: int = 0, labels_required: list[str] | None = None, eval_only: bool = False) -> SegDataset:
    """Read and check DATA. `labels_required` (evaluation): the model's classes, which the masks must fit.
    `eval_only`: the images to evaluate on (test/, else val/, else all) land in `train`."""
    root = Path(data)
    if not root.is_dir():
        raise UsageError(f"no such dataset folder: {root}")
    if not 0 <= val_split < 1:
        raise UsageError(f"--val-split must be in [0, 1), got {val_split}")
    labels = labels_required or _labels_for(root, classes)
    dirs = find_split_dirs(root)
    if eval_only:
        dirs = {"train": dirs.get("test") or dirs.get("val") or root} if dirs else {}
    elif dirs and "train" not in dirs:
        raise UsageError(f"{root}: has {'/'.join(d.name for d in dirs.values())}/ but no train/ folder")
    parts: dict[str, list[Sample]] = {}
    failures: list[tuple[str, str]] = []
    for name, folder in (dirs or {"train": root}).items():
        parts[name], missing = pair_folder(folder)
        failures += missing
    everything = [s for part in parts.values() for s in part]
    good, labels, bad, colors = check_samples(everything, labels)
    failures += bad
    keep = {id(s) for s in good}
    parts = {name: [s for s in part if id(s) in keep] for name, part in parts.items()}
    if not parts["train"]:
        raise UsageError(f"{root}: no usable image/mask pairs"
                         + (f" (e.g. {failures[0][0]}: {failures[0][1]})" if failures else ""))
    ds = SegDataset(labels, parts["train"], parts.get("val", []), parts.get("test", []), failures, colors,
                    str(root), "splits" if dirs and not eval_only else "folder")
    if not eval_only and not ds.val and val_split > 0:
        ds.train, ds.val = random_split(ds.train, val_split, seed)
    return ds


# --------------------------------------------------------------------------- torch side
def load_pair(sample: Sample, resize: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 image 3xHxW, int64 mask HxW), the short side scaled to `resize` when given."""
    img = load_rgb(sample.image)
    mask = torch.from_numpy(to_classes(read_mask(sample.mask)[0], sample.binary))
    image = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
    if resize:
        from torchvision.transforms.v2 import functional as F

        image = F.resize(image, resize, antialias=True)
        mask = F.resize(mask[None], resize, interpolation=F.InterpolationMode.NEAREST_EXACT)[0]
    return image, mask


def train_augment(size: int, vflip: bool = False) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Random crop, scale (0.8-1.25) and small rotation, flips and colour jitter, applied to image and
    mask together (torchvision v2: masks interpolate nearest, pad with the ignore value)."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    fill = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE}
    ops = [v2.RandomCrop(int(size * 1.45) + 1, pad_if_needed=True, fill=fill),  # room for rotate + zoom out
           v2.RandomAffine(degrees=10, scale=(0.8, 1.25), fill=fill),
           v2.CenterCrop(size), v2.RandomHorizontalFlip()]
    if vflip:
        ops.append(v2.RandomVerticalFlip())
    ops.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1))
    pipeline = v2.Compose(ops)

    def apply(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img, m = pipeline(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return img.as_subclass(torch.Tensor), m.as_subclass(torch.Tensor)

    return apply


class PairDataset(torch.utils.data.Dataset):
    """Index -> (image, mask, None) or (None, None, (file, reason)); never raises mid-training.
    Each sample appears `repeats[i]` times per epoch (random crops of big images)."""

    def __init__(self, samples: list[Sample], transform: Callable | None, *, resize: int | None = None,
                 repeats: list[int] | None = None):
        self.samples, self.transform, self.resize = samples, transform, resize
        self.index = [i for i, r in enumerate(repeats or [1] * len(samples)) for _ in range(r)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int):
        sample = self.samples[self.index[k]]
        try:
            image, mask = load_pair(sample, self.resize)
        except ImageDecodeError as exc:
            return None, None, (sample.image, exc.reason)
        except ValueError as exc:
            return None, None, (sample.mask, str(exc))
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, mask, None


def collate_pairs(items) -> tuple[torch.Tensor | None, torch.Tensor | None, list[tuple[str, str]]]:
    good = [(x, y) for x, y, err in items if err is None]
    failed = [err for _, _, err in items if err is not None]
    if not good:
        return None, None, failed
    return torch.stack([x for x, _ in good]), torch.stack([y for _, y in good]), failed
