"""Group the faces of an index into people nobody has named yet.

Chinese whispers, as dlib clusters faces (dlib.chinese_whispers): faces within `max_distance`
of each other are linked, every face starts as its own group and, round after round, takes the
group most of its links point to. Unlike single-linkage methods (DBSCAN with few neighbours) a
few close pairs between two people do not merge them: each face follows the majority of its
links. Each face keeps its NEIGHBOURS nearest links (the graph stays ~20 links a face on any
library). Groups smaller than `min_faces` are left alone (cluster -1). Groups are numbered by
size, largest first. Each group gets a contact sheet and a folder of a few crops of its most
typical faces: moved into a gallery under a name (`GALLERY/NAME/`), it makes that person
findable with `faces find`.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ...atomic import atomic_path, write_json
from ...data.decode import ImageDecodeError, load_rgb
from ...data.geometry import file_displayed_size
from ...data.natural import natural_key
from .detectors import MIN_SCORE
from .faceindex import FaceIndex, load_index
from .models import dlib_module
from .recognize import distances
from .sheets import contact_sheet, photo_label

MAX_DISTANCE = 0.45     # tighter than verify's 0.6: in a library, two people must not share a group
MIN_FACES = 2
NEIGHBOURS = 20         # links kept per face (its nearest within max_distance)
CROPS = 5               # per group folder
CROP_SIDE = 300
_ROWS = 256             # distances computed this many faces at a time (256 x 40k faces: 80 MB)


@dataclass
class Grouping:
    labels: np.ndarray          # per face of the index (its key order): group number, or -1
    sizes: list[int]            # faces per group, group 0 first

    def to_dict(self) -> dict:
        return {"groups": len(self.sizes), "sizes": self.sizes, "grouped": int((self.labels >= 0).sum()),
                "alone": int((self.labels < 0).sum())}


def _links(embeddings: np.ndarray, max_distance: float) -> list[tuple[int, int]]:
    """Each face's self-link and links to its NEIGHBOURS nearest faces within max_distance."""
    links = [(i, i) for i in range(len(embeddings))]
    for a in range(0, len(embeddings), _ROWS):
        d = distances(embeddings[a:a + _ROWS], embeddings)
        k = min(NEIGHBOURS + 1, d.shape[1])
        near = np.argpartition(d, k - 1, axis=1)[:, :k]
        for r, row in enumerate(near):
            i = a + r
            links += [(min(i, int(j)), max(i, int(j))) for j in row if j != i and d[r, j] < max_distance]
    return sorted(set(links))


def group_faces(embeddings: np.ndarray, max_distance: float = MAX_DISTANCE, min_faces: int = MIN_FACES) -> Grouping:
    """Group numbers per row (-1: in no group of at least `min_faces`), largest group first."""
    if not len(embeddings):
        return Grouping(np.zeros(0, np.int64), [])
    raw = np.asarray(dlib_module().chinese_whispers(_links(np.asarray(embeddings, np.float64), max_distance)))
    found = [g for g in np.unique(raw) if (raw == g).sum() >= min_faces]
    order = sorted(found, key=lambda g: (-(raw == g).sum(), int(np.flatnonzero(raw == g)[0])))
    labels = np.full(len(raw), -1, np.int64)
    for new, g in enumerate(order):
        labels[raw == g] = new
    return Grouping(labels, [int((labels == g).sum()) for g in range(len(order))])


def face_crop(photo: str, box: np.ndarray, chip: bytes) -> Image.Image:
    """The face with its surroundings (twice the box, square, at most CROP_SIDE px), from the
    photo; from the chip on a grey margin if the photo cannot be read any more."""
    side = 2 * float(max(box[2] - box[0], box[3] - box[1]))
    size = file_displayed_size(photo)
    target = math.ceil(min(size) * CROP_SIDE / side) if size and side > CROP_SIDE else None
    try:
        img = load_rgb(photo, target_size=target)  # JPEGs: decoded no larger than the crop needs
    except ImageDecodeError:
        tile = Image.open(io.BytesIO(chip)).convert("RGB")
        canvas = Image.new("RGB", (tile.width * 2, tile.height * 2), (128, 128, 128))
        canvas.paste(tile, (tile.width // 2, tile.height // 2))
        return canvas
    r = img.width / size[0] if size else 1.0
    cx, cy, half = r * (box[0] + box[2]) / 2, r * (box[1] + box[3]) / 2, r * side / 2
    crop = img.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
    crop.thumbnail((CROP_SIDE, CROP_SIDE), Image.LANCZOS)
    return crop


def _typical(ix: FaceIndex, members: np.ndarray, n: int) -> list[int]:
    """Up to n members closest to the group's mean descriptor, one per photo."""
    centre = ix.embeddings[members].mean(0)
    picked, photos = [], set()
    for i in members[np.argsort(((ix.embeddings[members] - centre) ** 2).sum(1), kind="stable")]:
        if ix.photos[i] not in photos:
            picked.append(int(i))
            photos.add(ix.photos[i])
        if len(picked) == n:
            break
    return picked


def _write_csv(ix: FaceIndex, labels: np.ndarray, out: Path) -> None:
    with atomic_path(out) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "face", "x1", "y1", "x2", "y2", "cluster"])
        for i in range(len(ix)):
            box = [round(max(0.0, float(v)), 1) for v in ix.boxes[i]]  # a box may reach past the photo's edge
            w.writerow([ix.photos[i], int(ix.face[i]), *box, int(labels[i])])


def cluster_index(index: str | os.PathLike, out: str | os.PathLike, max_distance: float = MAX_DISTANCE,
                  min_faces: int = MIN_FACES, min_score: float | None = None) -> dict:
    """Group the index's faces; write OUT/clusters.csv (one row per face), OUT/clusters.json,
    OUT/sheets/group_NNN.jpg and OUT/groups/group_NNN/ (a few crops each); returns the summary.
    Faces the detector scored under `min_score` (default: BlazeFace's floor, MIN_SCORE) are left
    out: an index made with a lower floor holds things that are not faces."""
    ix = load_index(index, chips=True)
    min_score = MIN_SCORE if min_score is None else min_score
    low = int((ix.scores < min_score).sum())
    if low:
        ix = ix.subset(ix.scores >= min_score)
    grouping = group_faces(ix.embeddings, max_distance, min_faces)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(ix, grouping.labels, out / "clusters.csv")
    groups = []
    for g, size in enumerate(grouping.sizes):
        members = np.flatnonzero(grouping.labels == g)
        name = f"group_{g:03d}"
        order = sorted(members, key=lambda i: natural_key(ix.photos[i]))
        contact_sheet([ix.chips[i] for i in order], [(photo_label(ix.photos[i]),) for i in order],
                      out / "sheets" / f"{name}.jpg", name)
        folder = out / "groups" / name
        folder.mkdir(parents=True, exist_ok=True)
        for rank, i in enumerate(_typical(ix, members, CROPS)):  # the rank keeps same-named photos apart
            with atomic_path(folder / f"{rank}_{Path(ix.photos[i]).stem}_face{int(ix.face[i])}.jpg") as tmp:
                face_crop(ix.photos[i], ix.boxes[i], ix.chips[i]).save(tmp, "JPEG", quality=90)
        groups.append({"cluster": g, "faces": size, "photos": len({ix.photos[i] for i in members}),
                       "sheet": str(out / "sheets" / f"{name}.jpg"), "crops": str(folder)})
    summary = {**grouping.to_dict(), "faces": len(ix), "max_distance": max_distance, "min_faces": min_faces,
               "min_score": min_score, "below_min_score": low,
               "algorithm": f"Chinese whispers (dlib) on links between faces within max_distance (Euclidean, "
                            f"dlib's 128-d descriptors; each face's {NEIGHBOURS} nearest)",
               "index": str(index), "list": groups}
    write_json(out / "clusters.json", summary)
    return summary
