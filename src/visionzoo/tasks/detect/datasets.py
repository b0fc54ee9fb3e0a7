"""Box (and mask) annotations as labelling tools write them: Pascal VOC, COCO JSON, YOLO txt.

Every reader gives the same thing: a list of Samples whose boxes are in the pixels of the image as
it is displayed (EXIF rotation applied, like `load_rgb`), and a list of Issues naming each file
that was skipped or fixed and why. A bad file never stops the reading; no usable image does.
"""
from __future__ import annotations

import glob
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ...data.geometry import SWAPPING, displayed_size, image_frame, orient_boxes, orient_points, transposed
from ...data.inputs import is_image_name
from ...data.splits import holdout
from ...errors import UsageError

FORMATS = ("voc", "coco", "yolo")


@dataclass
class Sample:
    """One image and its objects; boxes x1, y1, x2, y2 in displayed (EXIF-rotated) pixels."""

    path: str
    size: tuple[int, int]                          # displayed (width, height)
    boxes: np.ndarray                              # (N, 4) float32
    labels: np.ndarray                             # (N,) int64, index into classes
    crowd: np.ndarray                              # (N,) bool: COCO iscrowd / VOC difficult, ignored by mAP
    segmentations: list[Any] | None = None         # per object: COCO polygons (list) or RLE (dict), in displayed pixels


@dataclass
class Issue:
    file: str
    reason: str
    skipped: bool = True       # the file (or image) was left out; False: it was used after a fix


@dataclass
class DetectionData:
    classes: list[str]
    samples: list[Sample]
    format: str
    root: str
    issues: list[Issue] = field(default_factory=list)

    @property
    def has_masks(self) -> bool:
        return any(s.segmentations is not None and len(s.segmentations) for s in self.samples)

    @property
    def n_boxes(self) -> int:
        return int(sum(len(s.boxes) for s in self.samples))

    def describe(self) -> str:
        return (f"{self.format.upper()} set {self.root}: {len(self.samples)} images, {self.n_boxes} boxes, "
                f"{len(self.classes)} classes ({', '.join(self.classes[:8])}{', ...' if len(self.classes) > 8 else ''})"
                + (", with masks" if self.has_masks else ""))


# --------------------------------------------------------------------------- geometry
def _orient_segmentation(seg: Any, stored: tuple[int, int], orientation: int) -> Any:
    if orientation == 1:
        return seg
    if isinstance(seg, list):
        return [orient_points(np.asarray(p, dtype=np.float64).reshape(-1, 2), stored, orientation).ravel().tolist()
                for p in seg]
    from .masks import decode_segmentation, encode_mask

    mask = Image.fromarray(decode_segmentation(seg, stored[1], stored[0]) * 255)
    return encode_mask(np.asarray(transposed(mask, orientation)) > 127)


class _Builder:
    """Collects samples and issues; fixes boxes (frame, clipping) the same way for every format."""

    def __init__(self, fmt: str, root: Path, classes: list[str] | None):
        self.fmt, self.root = fmt, root
        self.fixed_classes = classes is not None
        self.classes: list[str] = list(classes or [])
        self.samples: list[Sample] = []
        self.issues: list[Issue] = []

    def skip(self, file: str | Path, reason: str) -> None:
        self.issues.append(Issue(str(file), reason, skipped=True))

    def note(self, file: str | Path, reason: str) -> None:
        self.issues.append(Issue(str(file), reason, skipped=False))

    def class_index(self, name: str, file: str | Path) -> int | None:
        name = name.strip()
        if name in self.classes:
            return self.classes.index(name)
        if self.fixed_classes:
            self.note(file, f"unknown class {name!r} (classes: {', '.join(self.classes)}); that box is ignored")
            return None
        self.classes.append(name)
        return len(self.classes) - 1

    def add(self, image: Path, ann_file: str | Path, objects: list[dict], declared: tuple[int, int] | None = None,
            normalized: bool = False) -> None:
        """objects: {"box": [x1, y1, x2, y2], "label": index, "crowd": bool, "segmentation": ...}.
        `declared` is the image size the annotation states; `normalized` means 0-1 coordinates (YOLO)."""
        if not image.is_file():
            self.skip(ann_file, f"its image {image} does not exist")
            return
        try:
            stored, orientation = image_frame(str(image))
        except Exception as exc:
            self.skip(image, f"not a readable image ({type(exc).__name__}: {exc})")
            return
        shown = displayed_size(stored, orientation)
        frame: tuple[tuple[int, int], int] | None = None  # annotation made on the stored, unrotated pixels
        scale = (1.0, 1.0)
        if normalized:
            scale = shown
        elif declared and declared != shown:
            if declared == stored and orientation in SWAPPING:
                frame = (stored, orientation)
                self.note(ann_file, f"annotated on the unrotated image {stored[0]}x{stored[1]}; boxes rotated "
                                    f"with its EXIF orientation {orientation}")
            elif declared[0] > 0 and declared[1] > 0:
                scale = (shown[0] / declared[0], shown[1] / declared[1])
                self.note(ann_file, f"states size {declared[0]}x{declared[1]} but the image is {shown[0]}x{shown[1]};"
                                    " boxes rescaled")
        boxes, labels, crowd, segs = [], [], [], []
        for obj in objects:
            box = np.asarray(obj["box"], dtype=np.float64)
            segmentation = obj.get("segmentation")
            if frame is not None:
                box = orient_boxes(box[None], *frame)[0]
                if segmentation is not None:
                    segmentation = _orient_segmentation(segmentation, *frame)
            if scale != (1.0, 1.0):
                box = box * [scale[0], scale[1], scale[0], scale[1]]
                if isinstance(segmentation, list):
                    segmentation = [(np.asarray(p, dtype=np.float64).reshape(-1, 2) * scale).ravel().tolist()
                                    for p in segmentation]
            if not np.all(np.isfinite(box)):
                self.note(ann_file, f"box {obj['box']} is not numeric; ignored")
                continue
            clipped = np.clip(box, 0, [shown[0], shown[1], shown[0], shown[1]])
            if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
                self.note(ann_file, f"box {np.round(box, 1).tolist()} is empty or outside the "
                                    f"{shown[0]}x{shown[1]} image; ignored")
                continue
            if np.abs(clipped - box).max() > 1:
                self.note(ann_file, f"box {np.round(box, 1).tolist()} reaches outside the image; clipped")
            boxes.append(clipped)
            labels.append(obj["label"])
            crowd.append(bool(obj.get("crowd", False)))
            segs.append(segmentation)
        has_masks = any(s is not None for s in segs)
        if has_masks and any(s is None for s in segs):
            self.note(ann_file, "some objects have no mask; their masks are taken as their boxes")
            segs = [s if s is not None else _box_polygon(b) for s, b in zip(segs, boxes)]
        self.samples.append(Sample(
            path=str(image), size=shown,
            boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            labels=np.asarray(labels, dtype=np.int64), crowd=np.asarray(crowd, dtype=bool),
            segmentations=segs if has_masks else None,
        ))

    def result(self, require_objects: bool = True) -> DetectionData:
        self.samples.sort(key=lambda s: s.path)
        if not self.samples:
            detail = "; ".join(f"{i.file}: {i.reason}" for i in self.issues[:3])
            raise UsageError(f"no usable annotated images in {self.root}" + (f" ({detail})" if detail else ""))
        if require_objects and not any(len(s.boxes) for s in self.samples):
            raise UsageError(f"no boxes in {self.root}: every image is empty after reading its annotations")
        return DetectionData(self.classes, self.samples, self.fmt, str(self.root), self.issues)


def _box_polygon(box: np.ndarray) -> list[list[float]]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


# --------------------------------------------------------------------------- Pascal VOC
def _find_dir(root: Path, *names: str) -> Path | None:
    for name in names:
        for child in (root / name, root / name.lower(), root / name.capitalize()):
            if child.is_dir():
                return child
    return None


def read_voc(root: Path, classes: list[str] | None = None) -> DetectionData:
    """`images/` (or `JPEGImages/`) + `annotations/*.xml` (or `Annotations/`). `<filename>` is taken
    relative to the images folder; `<path>` (usually the annotator's own absolute path) is ignored."""
    ann_dir = _find_dir(root, "annotations", "Annotations") or root
    img_dir = _find_dir(root, "images", "JPEGImages") or ann_dir
    b = _Builder("voc", root, classes)
    annotated: set[str] = set()
    for xml in sorted(ann_dir.rglob("*.xml")):
        try:
            node = ET.parse(xml).getroot()
            filename = (node.findtext("filename") or "").strip()
            if not filename:
                raise ValueError("no <filename>")
            w, h = int(float(node.findtext("size/width") or 0)), int(float(node.findtext("size/height") or 0))
            objects = []
            for obj in node.findall("object"):
                name = obj.findtext("name")
                bb = obj.find("bndbox")
                if name is None or bb is None:
                    raise ValueError("an <object> without <name> or <bndbox>")
                box = [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
                label = b.class_index(name, xml)
                if label is not None:
                    objects.append({"box": box, "label": label, "crowd": (obj.findtext("difficult") or "0").strip() == "1"})
        except (ET.ParseError, ValueError, TypeError) as exc:
            b.skip(xml, f"cannot parse the annotation ({exc})")
            continue
        image = img_dir / filename
        if not image.is_file() and (img_dir / Path(filename).name).is_file():
            image = img_dir / Path(filename).name
        if not image.is_file():  # filename without extension, as some tools write it
            image = next((p for p in sorted(img_dir.glob(glob.escape(Path(filename).stem) + ".*")) if is_image_name(p)), image)
        annotated.add(str(image.resolve()))
        b.add(image, xml, objects, declared=(w, h) if w > 0 and h > 0 else None)
    for image in sorted(p for p in img_dir.rglob("*") if is_image_name(p) and str(p.resolve()) not in annotated):
        b.skip(image, "no annotation file for this image")
    return b.result()


# --------------------------------------------------------------------------- COCO
def read_coco(annotations: Path, images: Path | None = None, classes: list[str] | None = None) -> DetectionData:
    """A COCO JSON file: images, annotations (bbox x, y, w, h; polygon or RLE segmentation), categories.
    `file_name` is looked up under `images` [default: the JSON's folder, then its images/ subfolder]."""
    try:
        coco = json.loads(Path(annotations).read_text("utf-8"))
        cats = sorted(coco["categories"], key=lambda c: c["id"])
        image_rows = coco["images"]
        ann_rows = coco.get("annotations", [])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read COCO annotations {annotations}: {exc}") from None
    names = [str(c["name"]) for c in cats]
    b = _Builder("coco", Path(images or Path(annotations).parent), classes if classes is not None else names)
    cat_label = {c["id"]: b.classes.index(str(c["name"])) if str(c["name"]) in b.classes else None for c in cats}
    for c in cats:
        if cat_label[c["id"]] is None:
            b.note(annotations, f"category {c['name']!r} is not one of the classes ({', '.join(b.classes)}); ignored")
    by_image: dict[Any, list[dict]] = {}
    for ann in ann_rows:
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    bases = [Path(images)] if images else [Path(annotations).parent, Path(annotations).parent / "images"]
    for row in image_rows:
        file_name = str(row.get("file_name", ""))
        image = next((base / file_name for base in bases if (base / file_name).is_file()), bases[0] / file_name)
        objects = []
        for ann in by_image.get(row.get("id"), []):
            label = cat_label.get(ann.get("category_id"))
            if label is None:
                if ann.get("category_id") not in cat_label:
                    b.note(annotations, f"annotation {ann.get('id')} of {file_name} has unknown category_id "
                                        f"{ann.get('category_id')}; ignored")
                continue
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
            except (KeyError, TypeError, ValueError):
                b.note(annotations, f"annotation {ann.get('id')} of {file_name} has no valid bbox; ignored")
                continue
            seg = ann.get("segmentation") or None
            objects.append({"box": [x, y, x + w, y + h], "label": label, "crowd": bool(ann.get("iscrowd", 0)),
                            "segmentation": seg})
        declared = (int(row["width"]), int(row["height"])) if row.get("width") and row.get("height") else None
        b.add(image, f"{annotations} ({file_name})", objects, declared=declared)
    return b.result()


# --------------------------------------------------------------------------- YOLO
def _yolo_names(root: Path) -> list[str] | None:
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        path = root / name
        if path.is_file():
            import yaml

            try:
                names = (yaml.safe_load(path.read_text("utf-8")) or {}).get("names")
            except yaml.YAMLError as exc:
                raise UsageError(f"cannot parse {path}: {exc}") from None
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names, key=int)]
            if isinstance(names, list):
                return [str(n) for n in names]
            raise UsageError(f"{path} has no 'names' list of class names")
    for name in ("classes.txt", "obj.names", "classes.names"):
        for path in (root / name, root / "labels" / name):
            if path.is_file():
                return [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
    return None


def read_yolo(root: Path, classes: list[str] | None = None) -> DetectionData:
    """`images/` + `labels/*.txt` (one `class cx cy w h` line per box, 0-1 coordinates; a longer line is
    a YOLO-seg polygon) + class names in `data.yaml` or `classes.txt`. An image without a label
    file is a background image, as in YOLO tools."""
    names = _yolo_names(root)
    if names is None:
        raise UsageError(f"YOLO set {root} has no class names: add data.yaml (names: [...]) or classes.txt")
    if classes is not None and classes != names:
        raise UsageError(f"{root} has classes {names}, but {classes} were expected")
    img_dir, lbl_dir = root / "images", root / "labels"
    b = _Builder("yolo", root, names)
    images = sorted(p for p in img_dir.rglob("*") if is_image_name(p))
    backgrounds = 0
    for image in images:
        txt = lbl_dir / image.relative_to(img_dir).with_suffix(".txt")
        if not txt.is_file():
            backgrounds += 1
            b.add(image, image, [])
            continue
        objects, bad = [], None
        for n, line in enumerate(txt.read_text("utf-8", errors="replace").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            try:
                cls, values = int(parts[0]), [float(v) for v in parts[1:]]
            except ValueError:
                bad = f"line {n} is not numeric: {line.strip()[:60]!r}"
                break
            if not 0 <= cls < len(names):
                bad = f"line {n}: class {cls} is not one of the {len(names)} class ids (0-{len(names) - 1})"
                break
            if len(values) == 4:
                cx, cy, w, h = values
                objects.append({"box": [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], "label": cls})
            elif len(values) >= 6 and len(values) % 2 == 0:  # polygon, scaled with the box by the builder
                xy = np.asarray(values).reshape(-1, 2)
                objects.append({"box": [*xy.min(0), *xy.max(0)], "label": cls, "segmentation": [values]})
            else:
                bad = f"line {n} has {len(values)} numbers after the class (4 for a box, pairs for a polygon)"
                break
        if bad:
            b.skip(txt, bad)
            continue
        b.add(image, txt, objects, normalized=True)
    if backgrounds:
        b.note(lbl_dir, f"{backgrounds} image(s) have no label file and are used as background (no objects)")
    return b.result()


# --------------------------------------------------------------------------- format detection
def detect_format(root: Path) -> tuple[str, Path | None]:
    """('voc' | 'coco' | 'yolo', COCO json file or None) from what the folder holds."""
    if root.is_file() and root.suffix.lower() == ".json":
        return "coco", root
    if not root.is_dir():
        raise UsageError(f"no such data folder: {root}")
    if (root / "labels").is_dir() and (root / "images").is_dir():
        return "yolo", None
    if _find_dir(root, "annotations", "Annotations") and any(_find_dir(root, "annotations", "Annotations").rglob("*.xml")):
        return "voc", None
    jsons = sorted(p for p in [*root.glob("*.json"), *root.glob("annotations/*.json")] if not p.name.startswith("."))
    if len(jsons) == 1:
        return "coco", jsons[0]
    if any(root.glob("*.xml")):
        return "voc", None
    found = f" (several JSON files: {', '.join(p.name for p in jsons)}; pick one with --annotations)" if jsons else ""
    raise UsageError(
        f"cannot tell the annotation format of {root}{found}: expected Pascal VOC (images/ + annotations/*.xml), "
        "COCO (--annotations FILE.json) or YOLO (images/ + labels/*.txt + data.yaml or classes.txt)"
    )


def load_detection_data(data: str | os.PathLike, annotations: str | os.PathLike | None = None,
                        classes: Sequence[str] | None = None) -> DetectionData:
    """Read a detection set in whichever format its folder holds. `classes` fixes the class list
    (e.g. a trained run's): boxes of other classes are then reported and ignored."""
    root = Path(data)
    if not root.exists():
        raise UsageError(f"no such data folder or file: {root}")
    fixed = list(classes) if classes is not None else None
    if annotations is not None:
        ann = Path(annotations)
        if not ann.is_file():
            raise UsageError(f"no such annotation file: {ann}")
        return read_coco(ann, root if root.is_dir() else None, fixed)
    fmt, json_file = detect_format(root)
    if fmt == "coco":
        return read_coco(json_file, root if root.is_dir() else None, fixed)
    return (read_voc if fmt == "voc" else read_yolo)(root, fixed)


def split_samples(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """A seeded (train, val) split (data.splits); at least one image on each side."""
    if not 0 < fraction < 1:
        raise UsageError(f"--val-split must be between 0 and 1, got {fraction}")
    if len(samples) < 2:
        raise UsageError("at least two annotated images are needed to split off a validation set")
    kept, held = holdout(len(samples), fraction, seed)
    return [samples[i] for i in kept], [samples[i] for i in held]
