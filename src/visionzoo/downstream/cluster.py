"""k-means on stored features (spherical, i.e. by cosine, with FAISS).

`k="auto"` picks K with the highest mean silhouette (cosine) over K = 2..min(N-1, max(10,
sqrt(N/2)), 50), scored on at most 3,000 rows: the silhouette rewards clusters that are
tight and far from the next one, and needs no labels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .features import FeaturesArg, check_images, open_features

SCORE_ROWS = 3000
MONTAGE_IMAGES = 25


@dataclass
class Clustering:
    paths: list[str]
    labels: np.ndarray                  # cluster id per path, 0..k-1, largest cluster first
    similarity: np.ndarray              # cosine of each row to its cluster centre
    k: int
    silhouette: dict[int, float] = field(default_factory=dict)  # K -> score, when K was chosen
    out: str | None = None

    @property
    def sizes(self) -> list[int]:
        return np.bincount(self.labels, minlength=self.k).tolist()

    def to_dict(self) -> dict:
        return {"k": self.k, "sizes": self.sizes, "silhouette": {str(k): v for k, v in self.silhouette.items()},
                "criterion": "max mean silhouette (cosine)" if self.silhouette else "given k"}


def kmeans(x: np.ndarray, k: int, seed: int = 0, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels of `rows` (default all), centroids) of spherical k-means on L2-normalised rows."""
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=25, nredo=3, seed=seed, spherical=True,
                      min_points_per_centroid=1, max_points_per_centroid=512, verbose=False)
    km.train(x)
    _, labels = km.index.search(x if rows is None else x[rows], 1)
    return labels.ravel(), km.centroids


def auto_k(x: np.ndarray, seed: int = 0) -> dict[int, float]:
    from sklearn.metrics import silhouette_score

    n = len(x)
    hi = min(n - 1, max(10, round((n / 2) ** 0.5)), 50)
    sample = np.sort(np.random.default_rng(seed).choice(n, size=min(n, SCORE_ROWS), replace=False))
    scores = {}
    for k in range(2, hi + 1):
        labels, _ = kmeans(x, k, seed, sample)
        if len(set(labels.tolist())) > 1:
            scores[k] = round(float(silhouette_score(x[sample], labels, metric="cosine")), 6)
    return scores


def cluster(
    features: FeaturesArg,
    k: int | str = "auto",
    out: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    montages: bool = True,
    allow_pickle: bool = False,
    root: str | os.PathLike | None = None,
) -> Clustering:
    """Cluster the rows; with `out`, write assignments.csv, clusters.json and cluster_NN.png montages
    (`root`: where the images are now, if the collection moved since the features were extracted)."""
    fs = open_features(features, allow_pickle=allow_pickle, root=root)
    if out is not None and montages:
        check_images(fs)
    x = fs.normalized()
    n = len(x)
    scores: dict[int, float] = {}
    if k == "auto":
        if n < 3:
            raise UsageError(f"--clusters auto needs at least 3 images, got {n}")
        scores = auto_k(x, seed)
        k = max(scores, key=scores.get) if scores else 1
    else:
        k = int(k)
        if not 1 <= k <= n:
            raise UsageError(f"k must be between 1 and the number of images ({n}), got {k}")
    labels, centroids = kmeans(x, k, seed) if k > 1 else (np.zeros(n, np.int64), x.mean(0, keepdims=True))
    order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")  # renumber: largest first
    labels = np.argsort(order)[labels]
    centroids = centroids[order] / np.linalg.norm(centroids[order], axis=1, keepdims=True).clip(min=1e-12)
    sim = np.einsum("ij,ij->i", x, centroids[labels])
    result = Clustering(fs.paths, labels, sim, k, scores)
    if out is not None:
        result.out = str(_write(result, Path(out), montages))
    return result


def _write(c: Clustering, out: Path, montages: bool) -> Path:
    import csv

    from ..atomic import atomic_path, write_json

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "assignments.csv") as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "cluster", "similarity"])
        for p, lab, s in zip(c.paths, c.labels, c.similarity):
            w.writerow([p, int(lab), f"{s:.6f}"])
    write_json(out / "clusters.json", c.to_dict())
    for old in out.glob("cluster_[0-9]*.png"):   # an earlier run's montages of clusters this run does not have
        if not old.stem.removeprefix("cluster_").isdigit() or int(old.stem.removeprefix("cluster_")) >= c.k \
                or not montages:
            old.unlink()
    if montages:
        from ..viz.montage import montage

        for j in range(c.k):
            rows = np.flatnonzero(c.labels == j)
            rows = rows[np.argsort(-c.similarity[rows], kind="stable")][:MONTAGE_IMAGES]  # most typical first
            montage([c.paths[i] for i in rows], out / f"cluster_{j:02d}.png",
                    title=f"cluster {j}: {int((c.labels == j).sum())} image(s)",
                    captions=[f"{c.similarity[i]:.2f}" for i in rows])
    return out
