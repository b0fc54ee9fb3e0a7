"""Near-duplicate groups: exact, resized and recompressed copies, with a keep/drop suggestion.

Two signals, because "duplicate" is a pixel notion and CNN features are a semantic one:
1. candidates: pairs whose feature cosine >= `threshold` among each image's nearest neighbours
   (FAISS, so it scales like search). Default 0.5: resized (1/2) and JPEG q=20 copies of real
   skimage photos scored >= 0.68 with lite0 features, distinct photos <= 0.58.
2. confirmation: the two files' perceptual hashes (imagehash's DCT pHash + gradient dHash,
   64 bits each, on the whole picture squashed to a square, so any aspect ratio works) differ in
   at most `max_distance` of 128 bits. Default 28: on the 160 real raccoon photos, copies
   resized 0.4-0.9x, re-saved at JPEG quality 30-90 and cropped up to 5% were <= 27 bits apart,
   distinct photos >= 31, except the set's own copies and one burst (two frames a moment apart,
   19 bits: grouped, as a near-duplicate should be); tests/test_downstream_dedup.py checks it. Two different photos of the
   same kind of thing (two cats) are close in feature space but not in hashes, so they stay apart.
   `max_distance=None` trusts the features alone (then raise `threshold`, e.g. to 0.9).
Groups are connected components of confirmed pairs; the kept image is the one with the most
pixels, then the largest file, then the first path.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np

from ..data.decode import ImageDecodeError, load_rgb
from .features import FeaturesArg, check_images, open_features
from .index import make_faiss_index

DEFAULT_THRESHOLD = 0.5
DEFAULT_MAX_DISTANCE = 28   # bits of 128 (pHash + dHash) between a confirmed pair
NEIGHBOURS = 16             # candidates looked at per image
HASH_DECODE = 64            # JPEGs are draft-decoded near this size: hashes look at 8-32 px


@dataclass
class Member:
    path: str
    action: str             # "keep" | "drop"
    similarity: float       # feature cosine to the kept image (1.0 for the kept one)
    width: int = 0
    height: int = 0
    bytes: int = 0


@dataclass
class DuplicateReport:
    groups: list[list[Member]]
    pairs_checked: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): pair not confirmed

    def to_dict(self) -> dict:
        return {"groups": [[asdict(m) for m in g] for g in self.groups], "pairs_checked": self.pairs_checked,
                "unreadable": [list(u) for u in self.unreadable]}

    @property
    def drops(self) -> list[str]:
        return [m.path for g in self.groups for m in g if m.action == "drop"]


def fingerprint(path: str) -> np.ndarray:
    """pHash + dHash bits of the file (128 booleans), robust to resizing, recompression, light crops."""
    return image_fingerprint(load_rgb(path, target_size=HASH_DECODE))


def image_fingerprint(img) -> np.ndarray:
    """`fingerprint` of a decoded PIL image (a video frame, for scene changes)."""
    import imagehash

    return np.concatenate([imagehash.phash(img).hash.ravel(), imagehash.dhash(img).hash.ravel()])


def hash_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Bits that differ between two fingerprints."""
    return int(np.count_nonzero(a != b))


def _image_size(path: str) -> tuple[int, int, int]:
    from PIL import Image

    try:
        nbytes = os.path.getsize(path)
        with Image.open(path) as im:
            return im.size[0], im.size[1], nbytes
    except Exception:  # noqa: BLE001 - a size is only a tie-breaker
        return 0, 0, 0


def find_duplicates(
    features: FeaturesArg,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_distance: int | None = DEFAULT_MAX_DISTANCE,
    allow_pickle: bool = False,
    neighbours: int = NEIGHBOURS,
    root: str | os.PathLike | None = None,
) -> DuplicateReport:
    """Groups of near-duplicate images in a feature file, each with one "keep" and the rest "drop".
    `neighbours`: candidates looked at per image; more find copies among many look-alikes (tiles of
    one texture), at the cost of more hash checks. `root`: where the images are now, if the
    collection moved since the features were extracted."""
    fs = open_features(features, allow_pickle=allow_pickle, root=root)
    if max_distance is not None:  # the pairs are confirmed on the files themselves
        check_images(fs)
    x = fs.normalized()
    index, _ = make_faiss_index(x)
    scores, rows = index.search(x, min(neighbours + 1, len(x)))
    pairs = sorted({(min(i, int(j)), max(i, int(j))) for i in range(len(x))
                    for s, j in zip(scores[i], rows[i]) if j >= 0 and j != i and s >= threshold})
    prints: dict[int, np.ndarray | None] = {}
    unreadable: dict[str, str] = {}

    def print_of(i: int) -> np.ndarray | None:
        if i not in prints:
            try:
                prints[i] = fingerprint(fs.paths[i])
            except ImageDecodeError as exc:
                prints[i], unreadable[fs.paths[i]] = None, exc.reason
        return prints[i]

    parent = list(range(len(x)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        if max_distance is not None:
            a, b = print_of(i), print_of(j)
            if a is None or b is None or hash_distance(a, b) > max_distance:
                continue
        parent[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    for i in range(len(x)):
        members.setdefault(root(i), []).append(i)
    groups = []
    for rows_ in members.values():
        if len(rows_) < 2:
            continue
        sizes = {i: _image_size(fs.paths[i]) for i in rows_}
        keep = min(rows_, key=lambda i: (-sizes[i][0] * sizes[i][1], -sizes[i][2], fs.paths[i]))
        ordered = [keep] + sorted((i for i in rows_ if i != keep), key=lambda i: fs.paths[i])
        groups.append([Member(fs.paths[i], "keep" if i == keep else "drop", round(float(x[i] @ x[keep]), 6),
                              *sizes[i]) for i in ordered])
    groups.sort(key=lambda g: g[0].path)
    return DuplicateReport(groups, len(pairs), sorted(unreadable.items()))


def write_csv(report: DuplicateReport, out: str | os.PathLike) -> None:
    import csv
    from pathlib import Path

    from ..atomic import atomic_path

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["group", "path", "action", "similarity", "width", "height", "bytes"])
        for n, group in enumerate(report.groups, 1):
            for m in group:
                w.writerow([n, m.path, m.action, f"{m.similarity:.6f}", m.width, m.height, m.bytes])
