"""Near-duplicate groups: exact, resized and recompressed copies, with a keep/drop suggestion.

Two signals, because "duplicate" is a pixel notion and CNN features are a semantic one:
1. candidates: pairs whose feature cosine >= `threshold` among each image's nearest neighbours
   (FAISS, so it scales like search). Default 0.5: resized (1/2) and JPEG q=20 copies of real
   skimage photos scored >= 0.68 with lite0 features, distinct photos <= 0.58.
2. confirmation: the two files' 32x32 grayscale layouts match: correlation >= `pixel_threshold`
   (default 0.9: copies scored >= 0.97, distinct photos <= 0.64) and RMS difference <= 10 gray
   levels (copies <= 7, distinct photos >= 15; this keeps featureless patches of different
   brightness apart). Two different photos of the same kind of thing (two cats) are close in
   feature space but not in layout, so they stay apart.
   `pixel_threshold=None` trusts the features alone (then raise `threshold`, e.g. to 0.9).
Groups are connected components of confirmed pairs; the kept image is the one with the most
pixels, then the largest file, then the first path.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np

from ..data.decode import ImageDecodeError, load_rgb
from .features import FeaturesArg, open_features
from .index import make_faiss_index

DEFAULT_THRESHOLD = 0.5
DEFAULT_PIXEL_THRESHOLD = 0.9
NEIGHBOURS = 16           # candidates looked at per image
LAYOUT = 32               # side of the grayscale layout compared in the pixel check
MAX_RMS = 10.0            # gray levels (0-255) between the two layouts of a confirmed pair
FLAT_STD = 2.0            # a layout this flat has no structure to correlate


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


def layout(path: str) -> np.ndarray:
    """32x32 grayscale picture of the file, 0-255 (JPEG draft decoding keeps it cheap)."""
    from PIL import Image

    img = load_rgb(path, target_size=LAYOUT).convert("L").resize((LAYOUT, LAYOUT), Image.BOX)
    return np.asarray(img, np.float32).ravel()


def same_layout(a: np.ndarray, b: np.ndarray, min_correlation: float) -> bool:
    """Same picture up to resizing / recompression: same structure and same brightness."""
    if float(np.sqrt(np.mean((a - b) ** 2))) > MAX_RMS:
        return False
    sa, sb = float(a.std()), float(b.std())
    if sa < FLAT_STD or sb < FLAT_STD:
        return sa < FLAT_STD and sb < FLAT_STD
    return float(np.mean((a - a.mean()) * (b - b.mean()))) / (sa * sb) >= min_correlation


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
    pixel_threshold: float | None = DEFAULT_PIXEL_THRESHOLD,
    allow_pickle: bool = False,
) -> DuplicateReport:
    """Groups of near-duplicate images in a feature file, each with one "keep" and the rest "drop"."""
    fs = open_features(features, allow_pickle=allow_pickle)
    x = fs.normalized()
    index, _ = make_faiss_index(x)
    scores, rows = index.search(x, min(NEIGHBOURS + 1, len(x)))
    pairs = sorted({(min(i, int(j)), max(i, int(j))) for i in range(len(x))
                    for s, j in zip(scores[i], rows[i]) if j >= 0 and j != i and s >= threshold})
    layouts: dict[int, np.ndarray | None] = {}
    unreadable: dict[str, str] = {}

    def layout_of(i: int) -> np.ndarray | None:
        if i not in layouts:
            try:
                layouts[i] = layout(fs.paths[i])
            except ImageDecodeError as exc:
                layouts[i], unreadable[fs.paths[i]] = None, exc.reason
        return layouts[i]

    parent = list(range(len(x)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        if pixel_threshold is not None:
            a, b = layout_of(i), layout_of(j)
            if a is None or b is None or not same_layout(a, b, pixel_threshold):
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

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["group", "path", "action", "similarity", "width", "height", "bytes"])
        for n, group in enumerate(report.groups, 1):
            for m in group:
                w.writerow([n, m.path, m.action, f"{m.similarity:.6f}", m.width, m.height, m.bytes])
