"""A classifier on stored features in seconds: logistic regression or k-nearest neighbours,
cross-validated, saved without pickle so `visionzoo predict PROBE_DIR images/` can use it.

A probe folder holds `probe.json` (labels, metrics, the feature file's manifest: model, weights,
preprocessing, layer, pooling) and `probe.safetensors` (the numbers). New images are embedded
with `tasks.embed.embed_like(manifest, ...)`, i.e. exactly like the training features.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..atomic import atomic_path, write_json
from ..errors import UsageError
from .features import FeaturesArg, l2_normalize, labels_for, open_features

PROBE_FILE = "probe.json"
ARRAYS_FILE = "probe.safetensors"
FORMAT = "visionzoo-probe"
KINDS = ("logreg", "knn")
KNN_K = 5


@dataclass
class ProbeReport:
    kind: str
    labels: list[str]
    count: int                      # labelled rows used
    folds: int
    accuracy: float                 # cross-validated, pooled over folds
    accuracy_std: float             # spread of per-fold accuracy
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    unlabelled: int = 0             # rows without a label (not used)
    out: str | None = None
    fold_accuracy: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _estimator(kind: str, n_train: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logreg":
        # Standardised unit-norm features, mild L2: robust across models without tuning.
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    if kind == "knn":
        # Rows are L2-normalised, so Euclidean neighbours are cosine neighbours.
        return KNeighborsClassifier(n_neighbors=max(1, min(KNN_K, n_train - 1)))
    raise UsageError(f"unknown probe classifier {kind!r}; use one of {', '.join(KINDS)}")


def train_probe(
    features: FeaturesArg,
    labels: str | os.PathLike | Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
    *,
    classifier: str = "logreg",
    cv: int = 5,
    seed: int = 0,
    allow_pickle: bool = False,
) -> ProbeReport:
    """Cross-validate a `classifier` ("logreg" | "knn") on labelled rows (labels None: parent folders), then fit on all and save to `out`."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    fs = open_features(features, allow_pickle=allow_pickle)
    row_labels = labels_for(fs.paths, labels)
    keep = [i for i, lab in enumerate(row_labels) if lab]
    y_names = [row_labels[i] for i in keep]
    counts = Counter(y_names)
    if len(counts) < 2:
        raise UsageError(f"a probe needs at least two labels; found {sorted(counts) or 'none'}")
    classes = sorted(counts)
    y = np.array([classes.index(n) for n in y_names])
    x = l2_normalize(fs.matrix[keep].copy())
    folds = min(cv, min(counts.values()))
    if folds < 2:
        rare = min(counts, key=counts.get)
        raise UsageError(f"label {rare!r} has {counts[rare]} example(s); cross-validation needs >= 2 per label")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pred = cross_val_predict(_estimator(classifier, len(y) * (folds - 1) // folds), x, y, cv=splitter)
    fold_acc = [float((pred[te] == y[te]).mean()) for _, te in splitter.split(x, y)]
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(len(classes)), zero_division=0)
    report = ProbeReport(
        kind=classifier, labels=classes, count=len(y), folds=folds,
        accuracy=round(float(accuracy_score(y, pred)), 6), accuracy_std=round(float(np.std(fold_acc)), 6),
        macro_f1=round(float(f1_score(y, pred, average="macro")), 6),
        per_class={c: {"precision": round(float(p[i]), 6), "recall": round(float(r[i]), 6),
                       "f1": round(float(f[i]), 6), "support": int(s[i])} for i, c in enumerate(classes)},
        unlabelled=len(fs.paths) - len(keep), fold_accuracy=[round(a, 6) for a in fold_acc],
    )
    if out is not None:
        final = _estimator(classifier, len(y)).fit(x, y)
        report.out = str(_save(Path(out), classifier, final, x, y, classes, fs, report))
    return report


def _save(out: Path, kind: str, est, x: np.ndarray, y: np.ndarray, classes: list[str], fs, report) -> Path:
    from safetensors.numpy import save_file

    if kind == "logreg":
        scaler, logreg = est[0], est[-1]
        arrays = {"mean": scaler.mean_, "scale": scaler.scale_, "coef": logreg.coef_, "intercept": logreg.intercept_}
    else:
        arrays = {"train": x, "targets": y.astype(np.int64), "k": np.array([est.n_neighbors], np.int64)}
    out.mkdir(parents=True, exist_ok=True)
    (out / PROBE_FILE).unlink(missing_ok=True)   # the mark of a complete probe goes first and comes back last
    with atomic_path(out / ARRAYS_FILE) as tmp:
        save_file({k: np.ascontiguousarray(v, dtype=np.int64 if v.dtype.kind == "i" else np.float32)
                   for k, v in arrays.items()}, str(tmp))
    meta = {"format": FORMAT, "version": 1, "kind": kind, "labels": classes, "features": fs.source,
            "manifest": fs.manifest, "metrics": report.to_dict()}
    write_json(out / PROBE_FILE, meta)
    return out


def is_probe_dir(path: str | os.PathLike) -> bool:
    """True for a folder written by `train_probe` / `visionzoo probe --out`."""
    p = Path(path) / PROBE_FILE
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text("utf-8")).get("format") == FORMAT
    except (OSError, ValueError):
        return False


class Probe:
    """A saved probe: `probe.probabilities(features) -> (N, classes)`."""

    def __init__(self, path: str | os.PathLike):
        from safetensors.numpy import load_file

        if not is_probe_dir(path):
            raise UsageError(f"{path} is not a probe folder (no {PROBE_FILE} written by `visionzoo probe`)")
        self.path = Path(path)
        self.meta = json.loads((self.path / PROBE_FILE).read_text("utf-8"))
        self.kind: str = self.meta["kind"]
        self.labels: list[str] = self.meta["labels"]
        self.manifest: dict | None = self.meta.get("manifest")
        self.arrays = load_file(str(self.path / ARRAYS_FILE))

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        x = l2_normalize(np.array(matrix, dtype=np.float32))
        a = self.arrays
        if self.kind == "logreg":
            z = ((x - a["mean"]) / a["scale"]) @ a["coef"].T + a["intercept"]
            if z.shape[1] == 1:  # binary: sklearn keeps one score, for the second class
                z = np.concatenate([np.zeros_like(z), z], axis=1)
            z -= z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        k = int(a["k"][0])
        sims = x @ a["train"].T
        nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        votes = np.zeros((len(x), len(self.labels)), np.float32)
        np.add.at(votes, (np.repeat(np.arange(len(x)), k), a["targets"][nearest].ravel()), 1.0)
        return votes / k


def predict_probe(
    path: str | os.PathLike,
    inputs,
    top_k: int = 5,
    batch_size: int = 32,
    workers: int | None = None,
    device: str = "auto",
    progress: bool = False,
) -> list:
    """Labels with probabilities for new images, embedded like the probe's training features.

    Returns one `ImageResult` per input file (sorted), bad files carrying `error`, as classify does.
    """
    import torch

    from ..data import expand_inputs
    from ..tasks.classify import ImageResult, topk_predictions
    from ..tasks.embed import embed_like

    probe = Probe(path)
    if not probe.manifest:
        raise UsageError(f"probe {path} was trained on features without a manifest, so new images cannot be "
                         "embedded the same way; train it on a feature file written by `visionzoo extract`")
    files = expand_inputs(inputs).files
    emb = embed_like(probe.manifest, files, batch_size=batch_size, workers=workers, device=device,
                     progress=progress)
    results = {p: ImageResult(path=p) for p in files}
    for p, reason in emb.failures:
        results[p].error = reason
    if len(emb.paths):
        probs = torch.from_numpy(probe.probabilities(emb.matrix))
        for p, preds in zip(emb.paths, topk_predictions(probs, probe.labels, top_k)):
            results[p].predictions = preds
    return [results[p] for p in files]
