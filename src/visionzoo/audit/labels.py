"""Label errors of a classification set: out-of-fold class probabilities from the cross-validation
`train --model auto` runs (a logistic-regression head on standardised backbone features, its C
chosen from the same grid by k-fold log-loss), ranked by cleanlab.

cleanlab's `find_label_issues` decides which images are flagged (confident learning: it estimates
how many labels of each class are wrong from the out-of-fold probabilities and flags that many,
the least self-confident first); `get_label_quality_scores` gives each one its score (the
probability the head gives the given label). The suggestion is the head's most probable class.
Every image is predicted by a head that never saw it, so a wrong label cannot vouch for itself."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .features import ModelFeatures
from .findings import Finding
from .inventory import Item

REPEATS = 1


@dataclass
class LabelCheck:
    findings: list[Finding]
    summary: dict[str, Any] = field(default_factory=dict)


def _candidate(f: ModelFeatures, rows: np.ndarray):
    from ..tasks.classify.auto import Candidate

    return Candidate(f.model, f.image_size, [f.paths[i] for i in rows], f.matrix[rows], None, "feature file", 0.0)


def label_findings(models: Sequence[ModelFeatures], items: dict[str, Item], classes: list[str], *, seed: int,
                   folds: int | None = None) -> LabelCheck:
    """Flag images whose given label the cross-validated head confidently disagrees with.
    Classes with fewer than two readable images cannot be cross-validated and are left out."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from threadpoolctl import threadpool_limits

    from ..tasks.classify.auto import MAX_FOLDS, _best, cross_validate, out_of_fold

    start = time.perf_counter()
    first = models[0]
    labelled = np.asarray([i for i, p in enumerate(first.paths) if items[p].label is not None])
    given = np.asarray([classes.index(items[first.paths[i]].label) for i in labelled], dtype=int)
    counts = np.bincount(given, minlength=len(classes))
    used = [c for c in range(len(classes)) if counts[c] >= 2]
    if len(used) < 2:
        return LabelCheck([], {"skipped": "fewer than two classes with two or more readable images"})
    keep = np.isin(given, used)
    rows, y = labelled[keep], np.searchsorted(used, given[keep])
    k = int(min(folds or MAX_FOLDS, counts[used].min()))
    # Every model's features are cross-validated like `--model auto` does (one round of k folds: the
    # audit needs a good C, not the steadier estimate a saved run reports); the lowest log-loss wins.
    tried = []
    with threadpool_limits(limits=1, user_api="blas"):  # small fits: threads only wait on each other
        for f in models:
            cand = _candidate(f, rows)
            tried += [{"model": f.model, **r} for r in cross_validate(cand, y, k, seed, repeats=REPEATS)]
        best = _best(tried)
        cand = _candidate(next(f for f in models if f.model == best["model"]), rows)
        probs = out_of_fold(cand, y, best["C"], k, seed)
    flagged = find_label_issues(y, probs, return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(y, probs)
    names = [classes[c] for c in used]
    out = []
    for i in flagged:
        top = int(probs[i].argmax())
        out.append(Finding("label_error", cand.paths[i], 1 - float(quality[i]),
                           f"the cross-validated model gives {names[y[i]]!r} {probs[i, y[i]]:.1%} and "
                           f"{names[top]!r} {probs[i, top]:.1%}", given_label=names[y[i]],
                           suggested_label=names[top], split=items[cand.paths[i]].split))
    summary = {"model": best["model"], "C": best["C"], "folds": k, "repeats": REPEATS, "images": int(len(y)),
               "cv_accuracy": round(best["cv_accuracy"], 4), "cv_log_loss": round(best["cv_log_loss"], 4),
               "out_of_fold_accuracy": round(float((probs.argmax(1) == y).mean()), 4),
               "left_out_classes": [classes[c] for c in range(len(classes)) if c not in used],
               "flagged": len(out), "seconds": round(time.perf_counter() - start, 2)}
    return LabelCheck(out, summary)
