"""2-D maps of a feature file: PCA to 50 dimensions, then t-SNE (or UMAP when installed).

Points are coloured by label (a CSV, else the images' folder names) or, when every image sits in
one folder, by k-means cluster
(`k="auto"`). Large collections are mapped on a random sample of `max_points` rows: t-SNE's
cost grows faster than linearly and a scatter of more points is unreadable anyway.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UsageError
from .features import FeaturesArg, check_images, l2_normalize, labels_for, open_features

METHODS = ("auto", "tsne", "umap", "pca")
PCA_DIMS = 50


@dataclass
class FeatureMap:
    paths: list[str]
    xy: np.ndarray          # (N, 2)
    labels: list[str]
    method: str
    out: str | None = None


def project(x: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """(N, 2) coordinates of L2-normalised rows and the method actually used."""
    from sklearn.decomposition import PCA

    if method not in METHODS:
        raise UsageError(f"unknown map method {method!r}; use one of {', '.join(METHODS)}")
    if method == "auto":
        method = "umap" if importlib.util.find_spec("umap") else "tsne"
    n = len(x)
    if n < 5 and method != "pca":
        method = "pca"  # t-SNE / UMAP need a neighbourhood; a handful of points is just PCA
    reduced = PCA(n_components=min(PCA_DIMS, n, x.shape[1]), random_state=seed).fit_transform(x)
    if method == "pca":
        xy = reduced[:, :2] if reduced.shape[1] >= 2 else np.pad(reduced, ((0, 0), (0, 2 - reduced.shape[1])))
    elif method == "umap":
        import umap

        xy = umap.UMAP(n_neighbors=min(15, n - 1), random_state=seed).fit_transform(reduced)
    else:
        from sklearn.manifold import TSNE

        xy = TSNE(perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed).fit_transform(reduced)
    return np.asarray(xy, np.float32), method


def feature_map(
    features: FeaturesArg,
    out: str | os.PathLike | None = None,
    *,
    labels: str | os.PathLike | Sequence[str] | None = None,
    method: str = "auto",
    max_points: int = 5000,
    seed: int = 0,
    allow_pickle: bool = False,
    root: str | os.PathLike | None = None,
) -> FeatureMap:
    """Project to 2-D; `out` FILE.png draws a scatter, FILE.html a page with thumbnails on hover."""
    if out is not None and Path(out).suffix.lower() not in (".png", ".html", ".htm"):
        raise UsageError(f"map output must be .png or .html, got {out}")
    fs = open_features(features, allow_pickle=allow_pickle, root=root)
    if out is not None and Path(out).suffix.lower() != ".png":  # the page shows the images themselves
        check_images(fs)
    rows = np.arange(len(fs.paths))
    if len(rows) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_points, replace=False))
    paths = [fs.paths[i] for i in rows]
    x = l2_normalize(fs.matrix[rows])  # fancy indexing copies: the file's rows stay as they are
    names = [lab or "(unlabelled)" for lab in labels_for(fs.paths, labels)]
    names = [names[i] for i in rows]
    if labels is None and len(set(names)) < 2:  # one folder: no labels to colour by, so clusters
        from .cluster import cluster

        clusters = cluster((paths, x), "auto" if len(x) >= 3 else 1, montages=False)
        names = [f"cluster {c}" for c in clusters.labels]
    xy, used = project(x, method, seed)
    result = FeatureMap(paths, xy, names, used)
    if out is not None:
        from ..viz.scatter import scatter_html, scatter_png

        title = f"{len(paths)} image(s), {used.upper()} of {Path(fs.source).name if fs.source else 'features'}"
        if Path(out).suffix.lower() == ".png":
            result.out = str(scatter_png(xy, names, out, title))
        else:
            result.out = str(scatter_html(xy, names, paths, out, title))
    return result
