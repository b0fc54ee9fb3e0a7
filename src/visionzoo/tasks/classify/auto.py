"""`train --strategy auto` (the default): pick backbone and head by k-fold cross-validation on the
training images, then save one ordinary run folder.

Why this recipe: on a CPU, fine-tuning a few hundred photos takes minutes per run (211 s for ~500
photos, measured) and did not beat a linear head there, so cross-validating it would multiply
that by the folds, and it is not a candidate. A linear head is cheap once the features exist, so every
candidate backbone is run once over the training images and their mirror images at its own input
size, and a logistic-regression head (fitted on both views, scored on their mean: flip TTA) is
cross-validated over a small grid of C on those features. The winner's head is folded
(standardisation included) into the backbone's own Linear classifier, and the flip TTA is recorded
in the spec (`tta: "hflip"`), so predict, evaluate, serve, extract and the ONNX export all compute
what the cross-validation measured.

Only images outside the held-out split are used (train, plus val when a test split exists).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ...data import eval_transform, iter_batches
from ...errors import UsageError
from ...progress import progress_bar
from ...zoo import load_model, resolve
from ...zoo.tta import with_tta
from .config import AUTO, TrainConfig
from .data import LabeledDataset, Split
from .model import build_model
from .runfolder import finish, held_out

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)   # inverse L2 strength of the head, on standardised features
MAX_FOLDS = 5
REPEATS = 2                                    # k-fold repeated with reshuffled folds: a steadier estimate
TTA = "hflip"
FALLBACK_C = 0.1                               # when a class has too few images to cross-validate
# Budgeting: the saved run is evaluated with eager PyTorch (about this many times slower than
# ONNX Runtime per image on CPU), plus seconds for the CV fits, saving and the report's pictures.
EVAL_SLOWDOWN = 5.0
FIXED_COST_S = 15.0
NOT_TRIED = ("fine-tuning: one run costs minutes on a CPU (211 s for ~500 photos, measured) and did not beat a "
             "linear head there, so cross-validating it would cost that many minutes per fold; "
             "concatenated backbones: not a single-backbone run folder")
Log = Callable[[str], None]


def candidate_models(model: str) -> list[str]:
    """`auto`: the bundled offline backbones, cheapest (smallest input) first; `a,b`: those; else [model]."""
    if model != AUTO:
        return [m.strip() for m in model.split(",") if m.strip()]
    from ...zoo import FAMILIAR
    from ...zoo.weights import bundled_weights_path

    names = [n for n, a in FAMILIAR.items() if bundled_weights_path(a.target.split(".")[0]) is not None]
    if not names:
        raise UsageError("--model auto needs the bundled offline backbones (efficientnet_lite0/1/2 packages); "
                         "name a backbone with --model")
    return sorted(names, key=lambda n: (resolve(n).preprocessing.image_size, n))


@dataclass
class Candidate:
    """One backbone's features of the pool's images and of their mirror images (rows follow `paths`);
    `mirrored` is None for features read from a feature file (one view per image)."""

    model: str
    image_size: int
    paths: list[str]
    plain: np.ndarray
    mirrored: np.ndarray | None
    backend: str
    seconds: float                  # feature extraction, decoding and ONNX export included

    @property
    def features(self) -> np.ndarray:
        """What the saved run computes for each image (flip TTA): the mean of both views."""
        return self.plain if self.mirrored is None else (self.plain + self.mirrored) * 0.5

    def training_rows(self, y: np.ndarray, rows: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Both views of the chosen images as separate samples: the head learns from twice the images,
        measured (8 random splits of 3 real sets) slightly better than fitting the mean alone."""
        if self.mirrored is None:
            return self.plain[rows], y[rows]
        return np.concatenate([self.plain[rows], self.mirrored[rows]]), np.concatenate([y[rows], y[rows]])


def extract_candidate(name: str, paths: list[str], cfg: TrainConfig, *, failures: dict[str, str],
                      deadline: float | None = None, reserve: Callable[[float], float] = lambda rate: 0.0,
                      progress: bool = False) -> Candidate | None:
    """Pre-logits features of `paths` and of their mirror images (each image decoded once), on the
    fastest backend (ONNX Runtime on CPU). None when, after a few batches, finishing this backbone
    plus `reserve(images per second)` would end past `deadline`."""
    from ..embed import feature_runner

    module = load_model(name)
    pre = module.zoo_spec.preprocessing
    if cfg.image_size is not None:
        pre = pre.with_size(cfg.image_size)
        module.zoo_spec = replace(module.zoo_spec, preprocessing=pre)
    start = time.perf_counter()
    runner, backend = feature_runner(module, device=cfg.device)
    plain_rows: list[np.ndarray] = []
    mirrored_rows: list[np.ndarray] = []
    kept: list[str] = []
    done = 0
    first: tuple[int, float] | None = None  # (images, time) after the first batch, which pays the warm-up
    with progress_bar(total=len(paths), unit="img", disable=not progress, desc=f"features {name}") as bar:
        for batch in iter_batches(paths, eval_transform(pre), batch_size=cfg.batch_size, workers=cfg.workers,
                                  target_size=pre.resize_size):
            failures.update({paths[i]: reason for i, reason in batch.failures})
            if batch.tensor is not None:
                plain_rows.append(np.asarray(runner(batch.tensor), dtype=np.float32))
                mirrored_rows.append(np.asarray(runner(batch.tensor.flip(-1)), dtype=np.float32))
                kept += [paths[i] for i in batch.indices]
            bar.update(len(batch.indices) + len(batch.failures))
            done, now = done + len(batch.indices) + len(batch.failures), time.perf_counter()
            if first is None:
                first = (done, now)
            elif deadline is not None and done < len(paths):
                rate = (done - first[0]) / max(now - first[1], 1e-6)
                if now + (len(paths) - done) / rate + reserve(rate) > deadline:
                    return None
    if not kept:
        raise UsageError("none of the training images could be read")
    return Candidate(name, pre.image_size, kept, np.concatenate(plain_rows), np.concatenate(mirrored_rows), backend,
                     time.perf_counter() - start)


def _head(c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))


def _fit(c: float, x: np.ndarray, y: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # slow convergence at the largest C is expected and harmless
        return _head(c).fit(x, y)


def cross_validate(cand: Candidate, y: np.ndarray, k: int, seed: int, repeats: int = REPEATS) -> list[dict[str, float]]:
    """Stratified k-fold (repeated `repeats` times) accuracy (mean, std) and log-loss of the head for
    every C in C_GRID: fitted on both views of each fold's training images, scored on the TTA
    features of its held-out ones."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import RepeatedStratifiedKFold

    features = cand.features
    folds = RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    acc, loss = np.zeros((len(C_GRID), k * repeats)), np.zeros((len(C_GRID), k * repeats))
    seconds = np.zeros(len(C_GRID))
    for f, (tr, te) in enumerate(folds.split(features, y)):
        x, yy = cand.training_rows(y, tr)
        for i, c in enumerate(C_GRID):
            t = time.perf_counter()
            pipe = _fit(c, x, yy)
            probs = pipe.predict_proba(features[te])
            acc[i, f] = float((pipe.classes_[probs.argmax(1)] == y[te]).mean())
            loss[i, f] = log_loss(y[te], probs, labels=pipe.classes_)
            seconds[i] += time.perf_counter() - t
    return [{"C": float(c), "cv_accuracy": float(acc[i].mean()), "cv_accuracy_std": float(acc[i].std()),
             "cv_log_loss": float(loss[i].mean()), "seconds": float(seconds[i])} for i, c in enumerate(C_GRID)]


def out_of_fold(cand: Candidate, y: np.ndarray, c: float, k: int, seed: int) -> np.ndarray:
    """Each image's class probabilities from the head (C=`c`) fitted on the other folds of a
    stratified k-fold: what the chosen head says about images it never saw, the input label-error
    search needs. Columns follow the sorted classes of `y`."""
    from sklearn.model_selection import StratifiedKFold

    classes = np.unique(y)
    probs = np.zeros((len(y), len(classes)))
    for tr, te in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(cand.features, y):
        pipe = _fit(c, *cand.training_rows(y, tr))
        probs[np.ix_(te, np.searchsorted(classes, pipe.classes_))] = pipe.predict_proba(cand.features[te])
    return probs


def fit_head(x: np.ndarray, y: np.ndarray, c: float, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit standardisation + logistic regression on all of (x, y) and fold both into one Linear layer's
    (weight (K, D), bias (K,)): softmax(weight @ f + bias) equals the pipeline's predict_proba."""
    pipe = _fit(c, x, y)
    scaler, lr = pipe.named_steps["standardscaler"], pipe.named_steps["logisticregression"]
    coef, intercept = lr.coef_, lr.intercept_
    if len(lr.classes_) == 2:  # one logit z for class 1: softmax([-z/2, z/2]) = [1 - sigmoid(z), sigmoid(z)]
        coef, intercept = np.concatenate([-coef, coef]) / 2, np.concatenate([-intercept, intercept]) / 2
    weight = coef / scaler.scale_
    bias = intercept - weight @ scaler.mean_
    full_w = np.zeros((num_classes, x.shape[1]))
    full_b = np.full(num_classes, -30.0)  # a class absent from training is never predicted
    full_w[lr.classes_], full_b[lr.classes_] = weight, bias
    return torch.from_numpy(full_w).float(), torch.from_numpy(full_b).float()


def _pool(ds: LabeledDataset, held_out: str) -> tuple[Split, str]:
    """Every image the held-out report does not use: train, plus val when the report is on test."""
    if held_out == "test" and ds.val:
        return Split(ds.train.paths + ds.val.paths, ds.train.targets + ds.val.targets), "train+val"
    return ds.train, "train"


def _best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Lowest CV log-loss (ties: higher CV accuracy). Log-loss scores every image's probability, not
    just right/wrong, so on a few hundred images it ranks candidates more steadily than accuracy:
    over 8 random 80/20 splits of 3 real sets it picked heads with equal or higher held-out accuracy."""
    return min(rows, key=lambda r: (r["cv_log_loss"], -r["cv_accuracy"]))


def select(cfg: TrainConfig, pool: Split, n_eval: int, *, progress: bool,
           log: Log) -> tuple[Candidate, dict[str, Any], dict[str, Any], dict[str, str]]:
    """Extract every candidate (within `--time-budget` when one is given) and cross-validate its heads;
    `n_eval` images are still to be evaluated at the end. Returns (winner, its best row, the summary,
    failures). Without a budget the choice depends on the images and the seed alone."""
    deadline = None if cfg.time_budget is None else time.perf_counter() + cfg.time_budget
    names = candidate_models(cfg.model)
    target = dict(zip(pool.paths, pool.targets))
    counts = np.bincount(pool.targets, minlength=max(pool.targets) + 1)
    k = int(min(MAX_FOLDS, counts[counts > 0].min()))
    failures: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    extracted: dict[str, Candidate] = {}
    seconds: dict[str, float] = {}
    for i, name in enumerate(names):
        left = len(names) - i

        def reserve(rate: float) -> float:  # what must still fit after this backbone's features if it wins
            return FIXED_COST_S + 2.0 * (left - 1) + n_eval * EVAL_SLOWDOWN / rate

        cand = None
        if extracted and deadline is not None:  # the first backbone always runs; a later one only if it should fit
            prev = list(extracted.values())[-1]
            size = cfg.image_size or resolve(name).preprocessing.image_size
            rate = len(prev.paths) / prev.seconds * (prev.image_size / size) ** 2  # cost grows with pixels
            if time.perf_counter() + len(pool) / rate + reserve(rate) <= deadline:
                cand = extract_candidate(name, pool.paths, cfg, failures=failures, deadline=deadline, reserve=reserve,
                                         progress=progress)
        else:
            cand = extract_candidate(name, pool.paths, cfg, failures=failures, progress=progress)
        if cand is None:
            reason = f"skipped: its features would not fit in the time budget ({cfg.time_budget:g} s)"
            skipped += [{"model": n, "reason": reason} for n in names[i:]]
            log(f"auto: {name}" + (" and the larger backbones" if left > 1 else "") + f" {reason}")
            break
        extracted[name] = cand
        y = np.asarray([target[p] for p in cand.paths])
        if k >= 2:
            t = time.perf_counter()
            cv_rows = cross_validate(cand, y, k, cfg.seed)
            cv_s = time.perf_counter() - t
        else:
            cv_rows, cv_s = [], 0.0
        rows += [{"model": name, "image_size": cand.image_size, **r} for r in cv_rows]
        best = _best(cv_rows) if cv_rows else None
        cv_text = (f", {k}-fold x {REPEATS} CV {cv_s:.1f} s, best C={best['C']:g}: log-loss {best['cv_log_loss']:.4f}, "
                   f"accuracy {best['cv_accuracy']:.4f} ± {best['cv_accuracy_std']:.4f}") if best else ""
        log(f"auto: {name} at {cand.image_size} px: features of {len(cand.paths)} images + mirrors in "
            f"{cand.seconds:.1f} s ({cand.backend}){cv_text}")
        seconds[name] = round(cand.seconds + cv_s, 2)
    if rows:
        chosen = _best(rows)
        why = (f"lowest {k}-fold x {REPEATS} cross-validated log-loss on the {len(pool)} training images "
               f"({chosen['cv_log_loss']:.4f}; CV accuracy {chosen['cv_accuracy']:.4f} "
               f"± {chosen['cv_accuracy_std']:.4f})")
    else:  # a class with a single image: nothing to cross-validate
        last = list(extracted)[-1]
        chosen = {"model": last, "image_size": extracted[last].image_size, "C": FALLBACK_C}
        why = f"a class has fewer than 2 training images, so no cross-validation: the largest backbone, C={FALLBACK_C}"
    winner = extracted[chosen["model"]]
    summary = {
        "chosen": {"model": chosen["model"], "image_size": chosen["image_size"], "C": chosen["C"], "tta": TTA,
                   "head": "logistic regression on standardised features of each image and its mirror"},
        "why": why,
        "k": k if rows else None,
        "pool": None,  # filled in by the caller
        "n_images": len(winner.paths),
        "candidates": rows,
        "seconds": seconds,
        "skipped": skipped,
        "not_tried": NOT_TRIED,
        "time_budget_s": cfg.time_budget,
    }
    log(f"auto: chose {chosen['model']} at {chosen['image_size']} px, C={chosen['C']:g}, flip TTA: {why}")
    return winner, chosen, summary, failures


def markdown(auto: dict[str, Any]) -> str:
    """The report.md section: what was chosen, why, and the whole CV table."""
    c = auto["chosen"]
    lines = ["", "## How `--strategy auto` chose this model", "",
             f"Chosen: **{c['model']}** at {c['image_size']} px, {c['head']} with C={c['C']:g}, "
             f"horizontal-flip TTA ({c['tta']}): {auto['why']}. Images used: {auto['pool']} "
             f"({auto['n_images']}); the held-out split was never looked at.", "",
             "| backbone | size | C | CV accuracy | CV log-loss | CV seconds |", "|---|---|---|---|---|---|"]
    for r in auto["candidates"]:
        mark = " **(chosen)**" if (r["model"], r["C"]) == (c["model"], c["C"]) else ""
        lines.append(f"| {r['model']}{mark} | {r['image_size']} | {r['C']:g} | {r['cv_accuracy']:.4f} ± "
                     f"{r['cv_accuracy_std']:.4f} | {r['cv_log_loss']:.4f} | {r['seconds']:.2f} |")
    lines += ["", "Seconds per backbone (features of the images and their mirrors, then the CV): "
              + ", ".join(f"{n} {s:.1f}" for n, s in auto["seconds"].items()) + "."]
    if auto["skipped"]:
        lines += ["", "Skipped:"] + [f"- {s['model']}: {s['reason']}" for s in auto["skipped"]]
    lines += ["", f"Not tried: {auto['not_tried']}."]
    return "\n".join(lines) + "\n"


def train_auto(cfg: TrainConfig, ds: LabeledDataset, run_dir: Path, *, progress: bool, log: Log) -> dict[str, Any]:
    """The whole auto run: select on the pool, fit the winner's head on all of it, save and report."""
    held_name, held = held_out(ds, ds.train, ds.val)
    pool, pool_name = _pool(ds, held_name)
    winner, chosen, auto, failures = select(cfg, pool, len(held), progress=progress, log=log)
    auto["pool"] = pool_name
    target = dict(zip(pool.paths, pool.targets))
    weight, bias = fit_head(*winner.training_rows(np.asarray([target[p] for p in winner.paths])), chosen["C"],
                            len(ds.labels))
    run_cfg = replace(cfg, model=winner.model)
    module = build_model(run_cfg, ds.labels)
    module.zoo_spec = replace(module.zoo_spec, tta=TTA)
    with_tta(module, TTA)
    head = module.get_classifier()
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    result = finish(module, run_cfg, ds, ds.train, ds.val, (held_name, held), run_dir, None, failures, log,
                    extra={"auto": auto})
    with (run_dir / "report.md").open("a", encoding="utf-8") as f:
        f.write(markdown(auto))
    return result
