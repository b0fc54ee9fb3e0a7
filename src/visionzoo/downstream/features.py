"""One way in for every downstream job: a feature file (any `extract` format), or rows in memory.

The manifest travels with the rows so that a search query or a probe's new images are embedded
exactly like the stored ones (same model, weights, preprocessing, layer, pooling).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from ..errors import UsageError


@dataclass
class FeatureSet:
    paths: list[str]
    matrix: np.ndarray                     # (len(paths), D) float32
    manifest: dict[str, Any] | None = None  # what made the features; None for bare arrays
    source: str | None = None               # the feature file, when read from one

    def __post_init__(self) -> None:
        self.matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.paths):
            raise UsageError(f"features: expected one row per path, got matrix {self.matrix.shape} "
                             f"for {len(self.paths)} path(s)")
        if not len(self.paths):
            raise UsageError(f"no feature rows in {self.source or 'the input'}")

    def normalized(self) -> np.ndarray:
        """L2-normalised rows (cosine similarity = inner product). Rows read from a file are
        normalised in place (nobody else holds them; 1M x 1280 is 5 GB), arrays passed in are copied."""
        return l2_normalize(self.matrix if self.source else self.matrix.copy())


FeaturesArg = Union[str, os.PathLike, FeatureSet, tuple]


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Normalise rows in place (zero rows stay zero) and return the array."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix /= np.maximum(norms, 1e-12)
    return matrix


def _file_of(key: str) -> str:
    """The image file of a row key: a path, or `PATH#...` (a face or object region, a video frame)."""
    return key if "#" not in key or os.path.exists(key) else key.rsplit("#", 1)[0]


def rebased(paths: Sequence[str], recorded: str, root: str | os.PathLike) -> list[str]:
    """Row keys under the folder the feature file recorded (`recorded`) moved under `root`."""
    root = os.path.abspath(root)
    out = []
    for p in paths:
        if "://" in p or not os.path.isabs(p) or os.path.commonpath([recorded, p]) != recorded:
            out.append(p)
        else:
            out.append(os.path.join(root, os.path.relpath(p, recorded)))
    return out


def check_images(fs: FeatureSet, sample: int = 8) -> None:
    """A usage error, before any work, when the images the rows name are not where the file says
    (a collection moved since it was indexed): a few rows spread over the file are looked up."""
    local = [p for p in fs.paths if "://" not in p]
    if not local:
        return
    picks = [local[round(i * (len(local) - 1) / max(sample - 1, 1))] for i in range(min(sample, len(local)))]
    if not any(os.path.exists(_file_of(p)) for p in picks):
        root = (fs.manifest or {}).get("root")
        where = f" under {root}" if root else ""
        raise UsageError(f"the images of {fs.source or 'these features'} are not where it recorded them{where} "
                         f"(e.g. {_file_of(picks[0])} is missing): if the collection moved, pass --root "
                         f"NEW_FOLDER")


def open_features(features: FeaturesArg, *, allow_pickle: bool = False,
                  root: str | os.PathLike | None = None) -> FeatureSet:
    """A feature file path, a FeatureSet, an Embeddings or a (paths, matrix) pair -> FeatureSet.
    `root`: where the collection the file was made from is now (its rows' recorded folder moves there)."""
    if isinstance(features, FeatureSet):
        return features
    if isinstance(features, tuple) and len(features) == 2:
        return FeatureSet(list(map(str, features[0])), np.asarray(features[1]))
    if hasattr(features, "paths") and hasattr(features, "matrix"):  # tasks.embed.Embeddings
        return FeatureSet(list(features.paths), features.matrix)
    path = os.fspath(features)  # a local path or a URI (s3://...): the store checks it exists
    from ..store import load_features, read_manifest

    paths, matrix = load_features(path, allow_pickle=allow_pickle)
    try:
        manifest = read_manifest(path)
    except (UsageError, OSError, ValueError):
        manifest = None  # e.g. a classic pickle written by an old script: rows only
    paths = list(paths)
    if root is not None:
        recorded = (manifest or {}).get("root")
        if not recorded:
            raise UsageError(f"{path} records no folder its images came from (made by an older version, or from "
                             f"URIs); --root applies to feature files written by `visionzoo extract`")
        paths = rebased(paths, recorded, root)
    return FeatureSet(paths, matrix, manifest, str(path))


def labels_for(paths: Sequence[str], labels: str | os.PathLike | Sequence[str] | None = None) -> list[str | None]:
    """Label per path: None (the default: each image's parent folder), a CSV of path,label, or a list.

    "FOLDER_NAMES", the old spelling of the default, still means parent folders.

    CSV rows match a stored path as written, by absolute path, or else by file name when that is
    unique; paths without a label get None.
    """
    if labels is None or str(labels) == "FOLDER_NAMES":
        return [Path(p).parent.name for p in paths]
    if not isinstance(labels, (str, os.PathLike)):
        labels = list(labels)
        if len(labels) != len(paths):
            raise UsageError(f"{len(labels)} label(s) for {len(paths)} feature row(s)")
        return [str(x) for x in labels]
    return _labels_from_csv(paths, Path(labels))


def _labels_from_csv(paths: Sequence[str], csv_path: Path) -> list[str | None]:
    from ..data.folders import read_label_csv

    if not csv_path.is_file():
        raise UsageError(f"--labels: no such CSV file: {csv_path} (leave --labels out for folder names)")
    rows = read_label_csv(csv_path)
    by_path = dict(rows)
    by_abs = {os.path.abspath(p): label for p, label in rows}
    names: dict[str, list[str]] = {}
    for p, label in rows:
        names.setdefault(os.path.basename(p), []).append(label)
    out: list[str | None] = []
    for p in paths:
        label = by_path.get(p) or by_abs.get(os.path.abspath(p))
        if label is None and len(names.get(os.path.basename(p), ())) == 1:
            label = names[os.path.basename(p)][0]
        out.append(label)
    if not any(out):
        raise UsageError(f"{csv_path}: none of its paths matches a stored feature row")
    return out
