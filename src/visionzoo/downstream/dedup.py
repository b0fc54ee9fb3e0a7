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
Groups never chain. A chain of near neighbours (frame 1 ~ frame 2 ~ ... ~ frame 279 of a slow
video) is not one duplicate: each group is a kept image and only images confirmed as its own
near-duplicates (cosine >= `threshold` to the kept image and, with the hash check, hashes within
`max_distance` of the kept image's). Kept images are chosen greedily in a stable order: the most
pixels, then the largest file, then the name in natural order (a video's earliest frame); an
image already in a group is not offered to a later one. So every member is within both limits of
the image it would be dropped for. The same rule holds for photos, video frames (`PATH#t=S`) and
regions such as faces (`PATH#face0@x1,y1,x2,y2`, hashed on the region itself).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np

from ..data.copies import MAX_DISTANCE, fingerprint, hash_distance, image_fingerprint
from ..data.decode import ImageDecodeError
from ..data.natural import natural_key
from ..data.regions import item_size
from .features import FeaturesArg, check_images, open_features
from .index import make_faiss_index

__all__ = ["DEFAULT_MAX_DISTANCE", "DuplicateReport", "Member", "find_duplicates", "fingerprint", "greedy_groups",
           "hash_distance", "image_fingerprint", "write_csv"]

DEFAULT_THRESHOLD = 0.5
DEFAULT_MAX_DISTANCE = MAX_DISTANCE   # bits of 128 (pHash + dHash) between a confirmed pair
NEIGHBOURS = 16             # candidates looked at per image


@dataclass
class Member:
    path: str
    action: str             # "keep" | "drop"
    similarity: float       # feature cosine to the kept image (1.0 for the kept one)
    width: int = 0
    height: int = 0
    bytes: int = 0          # 0 for a video frame or a region (no file of its own)


@dataclass
class DuplicateReport:
    groups: list[list[Member]]
    pairs_checked: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): pair not confirmed
    # every confirmed pair, grouped or not: (path, path, cosine, hash bits or -1 unchecked); for
    # callers that judge pairs themselves (audit tells copies from look-alikes)
    pairs: list[tuple[str, str, float, int]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"groups": [[asdict(m) for m in g] for g in self.groups], "pairs_checked": self.pairs_checked,
                "unreadable": [list(u) for u in self.unreadable]}

    @property
    def drops(self) -> list[str]:
        return [m.path for g in self.groups for m in g if m.action == "drop"]


def greedy_groups(order: list[int], edges: dict[int, dict[int, float]]) -> list[list[int]]:
    """Groups without chaining: walk `order` (the best image first); an image not yet taken that has
    confirmed neighbours not yet taken keeps them, its direct neighbours only. [keeper, members...]."""
    rank = {i: k for k, i in enumerate(order)}
    taken: set[int] = set()
    groups = []
    for i in order:
        if i in taken:
            continue
        members = sorted((j for j in edges.get(i, ()) if j not in taken and j != i), key=rank.__getitem__)
        if members:
            taken.update([i, *members])
            groups.append([i, *members])
    return groups


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

    edges: dict[int, dict[int, float]] = {}
    confirmed = []
    for i, j in pairs:
        bits = -1
        if max_distance is not None:
            a, b = print_of(i), print_of(j)
            if a is None or b is None or (bits := hash_distance(a, b)) > max_distance:
                continue
        edges.setdefault(i, {})[j] = edges.setdefault(j, {})[i] = float(x[i] @ x[j])
        confirmed.append((fs.paths[i], fs.paths[j], round(edges[i][j], 6), bits))
    sizes = {i: item_size(fs.paths[i]) for i in edges}
    order = sorted(edges, key=lambda i: (-sizes[i][0] * sizes[i][1], -sizes[i][2], natural_key(fs.paths[i])))
    groups = []
    for keep, *rest in greedy_groups(order, edges):
        rest.sort(key=lambda i: natural_key(fs.paths[i]))
        groups.append([Member(fs.paths[keep], "keep", 1.0, *sizes[keep])]
                      + [Member(fs.paths[i], "drop", round(edges[keep][i], 6), *sizes[i]) for i in rest])
    groups.sort(key=lambda g: natural_key(g[0].path))
    return DuplicateReport(groups, len(pairs), sorted(unreadable.items()), confirmed)


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
