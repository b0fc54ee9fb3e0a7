"""Caption metrics from the reference implementations: corpus BLEU-1..4 (NLTK's `corpus_bleu`,
each hypothesis against all references of its image) and CIDEr (the COCO caption evaluation's
`pycocoevalcap`, which also gives a per-image score used to pick the best and worst examples).

Sentences are compared as word lists from `vocab.words` (normalised, no punctuation).
"""
from __future__ import annotations

import warnings
from typing import Sequence

BLEU_WEIGHTS = ((1.0,), (0.5, 0.5), (1 / 3, 1 / 3, 1 / 3), (0.25, 0.25, 0.25, 0.25))


def bleu(references: Sequence[Sequence[Sequence[str]]], hypotheses: Sequence[Sequence[str]]) -> dict[str, float]:
    """{"bleu1".."bleu4"}: cumulative corpus BLEU-n, unsmoothed (the usual captioning numbers)."""
    from nltk.translate.bleu_score import corpus_bleu

    if not hypotheses:
        return {f"bleu{n}": 0.0 for n in range(1, 5)}
    with warnings.catch_warnings():  # "no 4-gram overlaps" warnings: the score is then simply 0
        warnings.simplefilter("ignore")
        scores = corpus_bleu([list(map(list, r)) for r in references], [list(h) for h in hypotheses],
                             weights=list(BLEU_WEIGHTS))
    return {f"bleu{n}": float(s) for n, s in enumerate(scores, 1)}


def cider(references: Sequence[Sequence[Sequence[str]]], hypotheses: Sequence[Sequence[str]]) -> tuple[float, list[float]]:
    """(corpus CIDEr, per-image CIDEr). Document frequencies come from the references, so the
    score needs several images to mean anything (one image scores 0)."""
    from pycocoevalcap.cider.cider import Cider

    if not hypotheses:
        return 0.0, []
    gts = {i: [" ".join(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(h)] for i, h in enumerate(hypotheses)}
    score, per_image = Cider().compute_score(gts, res)
    return float(score), [float(s) for s in per_image]


def caption_scores(references: Sequence[Sequence[Sequence[str]]], hypotheses: Sequence[Sequence[str]]) -> tuple[dict[str, float], list[float]]:
    """({"bleu1".."bleu4", "cider"}, per-image CIDEr)."""
    corpus, per_image = cider(references, hypotheses)
    return {**bleu(references, hypotheses), "cider": corpus}, per_image
