"""Caption datasets: image paths, each with one or more reference captions.

Three layouts are read:
- a folder with `captions.csv` (columns `image,caption`; image paths relative to the folder;
  several rows per image; an optional `split` column with train / val / test), or such a CSV
  file given directly;
- Flickr8k: `captions.txt` (the `image,caption` CSV, or the original `Flickr8k.token.txt`
  lines `NAME.jpg#0<TAB>caption`), images beside it or in `Images/` / `Flicker8k_Dataset/`;
  `Flickr_8k.{train,dev,test}Images.txt` split files are honoured when present;
- COCO captions JSON (`--annotations FILE`: `images` with `id`, `file_name`; `annotations`
  with `image_id`, `caption`), images under the data folder.

Bad rows never stop a run: a caption naming a missing image, or an empty caption, becomes a
problem `(where, reason)` naming the file and line, and the rest is kept.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ...data.splits import shuffled
from ...data.tables import csv_rows, read_text
from ...errors import UsageError

CSV_NAMES = ("captions.csv", "captions.txt")
FLICKR_IMAGE_DIRS = ("", "Images", "images", "Flicker8k_Dataset", "Flickr8k_Dataset")
FLICKR_SPLITS = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
                 "test": "Flickr_8k.testImages.txt"}
SPLITS = ("train", "val", "test")


@dataclass
class CaptionSet:
    """Images (sorted paths) with their captions; problems found while reading."""

    captions: dict[str, list[str]]                     # image path -> reference captions
    source: str
    layout: str
    splits: dict[str, str] = field(default_factory=dict)          # image path -> train/val/test, if given
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file:line, reason)

    @property
    def images(self) -> list[str]:
        return sorted(self.captions)

    def subset(self, images: list[str]) -> "CaptionSet":
        return CaptionSet({p: self.captions[p] for p in images}, self.source, self.layout,
                          {p: s for p, s in self.splits.items() if p in images})

    def n_captions(self) -> int:
        return sum(len(c) for c in self.captions.values())


class _Collector:
    """Adds (image, caption) rows, turning missing images and empty captions into problems."""

    def __init__(self, source: str, layout: str):
        self.set = CaptionSet({}, source, layout)
        self._exists: dict[str, bool] = {}

    def add(self, where: str, image: Path, caption: str | None, shown: str, split: str | None = None) -> None:
        caption = " ".join((caption or "").split())
        path = os.fspath(image)
        if path not in self._exists:
            self._exists[path] = image.is_file()
        if not self._exists[path]:
            self.set.problems.append((where, f"image {shown!r} not found ({path})"))
            return
        if not caption:
            self.set.problems.append((where, f"empty caption for {shown!r}"))
            return
        self.set.captions.setdefault(path, []).append(caption)
        if split:
            split = {"dev": "val", "valid": "val", "validation": "val"}.get(split.strip().lower(), split.strip().lower())
            if split not in SPLITS:
                self.set.problems.append((where, f"unknown split {split!r} (use train, val or test); row kept for training"))
                split = "train"
            self.set.splits[path] = split

    def done(self) -> CaptionSet:
        if not self.set.captions:
            reasons = "; ".join(f"{w}: {r}" for w, r in self.set.problems[:3])
            raise UsageError(f"no usable image/caption pairs in {self.set.source}" + (f" ({reasons})" if reasons else ""))
        return self.set


def _find_image(root: Path, name: str, dirs: tuple[str, ...]) -> Path:
    """The first of root/DIR/name that exists (else root/name, which the collector reports missing)."""
    candidates = [root / d / name for d in dirs]
    return next((p for p in candidates if p.is_file()), candidates[0])


def _read_csv(path: Path, image_dirs: tuple[str, ...], encoding: str = "utf-8") -> CaptionSet:
    root = path.parent
    col = _Collector(str(path), "csv")
    rows = csv_rows(path, encoding)
    first = next(rows, None)
    fields = {h.strip().lower(): i for i, h in enumerate(first[1])} if first else {}
    if "image" not in fields or "caption" not in fields:
        raise UsageError(f"{path} needs a header row with the columns image,caption (found: {', '.join(fields) or 'none'})")
    for line, row in rows:
        name = row[fields["image"]].strip()
        where = f"{path.name}:{line}"
        if not name:
            col.set.problems.append((where, "row without an image name"))
            continue
        col.add(where, _find_image(root, name, image_dirs), row[fields["caption"]], name,
                row[fields["split"]] if "split" in fields else None)
    return col.done()


def _read_flickr_tokens(path: Path, encoding: str = "utf-8") -> CaptionSet:
    """The original Flickr8k.token.txt: `NAME.jpg#N<TAB>caption` per line."""
    root = path.parent
    col = _Collector(str(path), "flickr8k")
    for n, line in enumerate(read_text(path, encoding).splitlines(), 1):
        if not line.strip():
            continue
        key, _, caption = line.partition("\t")
        name = key.split("#", 1)[0].strip()
        col.add(f"{path.name}:{n}", _find_image(root, name, FLICKR_IMAGE_DIRS), caption, name)
    return col.done()


def _flickr_split_files(ds: CaptionSet, root: Path) -> None:
    by_name = {Path(p).name: p for p in ds.captions}
    for split, fname in FLICKR_SPLITS.items():
        f = root / fname
        if f.is_file():
            for name in f.read_text("utf-8").split():
                if name in by_name:
                    ds.splits[by_name[name]] = split


def _read_coco(annotations: Path, root: Path) -> CaptionSet:
    try:
        data = json.loads(annotations.read_text("utf-8"))
        images = {img["id"]: img["file_name"] for img in data["images"]}
        anns = data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{annotations} is not a COCO captions file ({type(exc).__name__}: {exc})") from None
    col = _Collector(str(annotations), "coco")
    for n, ann in enumerate(anns):
        where = f"{annotations.name}: annotation {ann.get('id', n)}"
        name = images.get(ann.get("image_id"))
        if name is None:
            col.set.problems.append((where, f"image_id {ann.get('image_id')!r} is not in the file's images"))
            continue
        col.add(where, root / name, ann.get("caption"), name)
    return col.done()


def read_captions(data: str | os.PathLike, annotations: str | os.PathLike | None = None,
                  encoding: str = "utf-8") -> CaptionSet:
    """Read any supported layout (see the module docstring) into a CaptionSet; caption text files are
    read strictly in `encoding` (an unbalanced quote or a row of the wrong width is an error naming its line)."""
    data = Path(data)
    if annotations is not None:
        annotations = Path(annotations)
        if not annotations.is_file():
            raise UsageError(f"annotations file not found: {annotations}")
        if not data.is_dir():
            raise UsageError(f"with --annotations, DATA must be the image folder; {data} is not a folder")
        return _read_coco(annotations, data)
    if data.is_file():
        return _read_table(data, encoding)
    if not data.is_dir():
        raise UsageError(f"no such file or folder: {data}")
    for name in CSV_NAMES:
        if (data / name).is_file():
            return _read_table(data / name, encoding)
    if (data / "Flickr8k.token.txt").is_file():
        return _read_table(data / "Flickr8k.token.txt", encoding)
    raise UsageError(f"{data} has no captions.csv or captions.txt (image,caption rows); for COCO captions pass "
                     f"--annotations captions.json")


def _read_table(path: Path, encoding: str = "utf-8") -> CaptionSet:
    if path.suffix.lower() == ".json":
        raise UsageError(f"{path} looks like a COCO captions file: pass it with --annotations and the image folder as DATA")
    with path.open("rb") as f:
        first = f.readline()
    if b"\t" in first and b"#" in first.split(b"\t", 1)[0]:
        ds = _read_flickr_tokens(path, encoding)
    else:
        ds = _read_csv(path, FLICKR_IMAGE_DIRS if path.name == "captions.txt" else ("",), encoding)
        if path.name == "captions.txt":
            ds.layout = "flickr8k"
    if ds.layout == "flickr8k":
        _flickr_split_files(ds, path.parent)
    return ds


def split_images(ds: CaptionSet, val_split: float, test_split: float, seed: int) -> dict[str, list[str]]:
    """train / val / test image lists: the dataset's own splits when it has them, else a seeded
    shuffle by image (never by caption, so no image's captions leak across splits)."""
    if not 0 <= val_split < 1 or not 0 <= test_split < 1 or val_split + test_split >= 1:
        raise UsageError("--val-split and --test-split must be in [0, 1) and leave images for training")
    images = ds.images
    if ds.splits:
        out = {s: [p for p in images if ds.splits.get(p, "train") == s] for s in SPLITS}
        if not out["train"]:
            raise UsageError(f"{ds.source} assigns no image to the train split")
        return out
    order = [images[i] for i in shuffled(len(images), seed)]
    n = len(order)
    n_test = round(n * test_split) if n >= 3 else 0
    n_val = round(n * val_split) if n >= 3 else 0
    if n - n_test - n_val < 1:
        raise UsageError(f"only {n} image(s): too few to split into train / val / test")
    return {"test": sorted(order[:n_test]), "val": sorted(order[n_test:n_test + n_val]),
            "train": sorted(order[n_test + n_val:])}
