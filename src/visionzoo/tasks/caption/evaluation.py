"""`caption evaluate`: caption a dataset's images with a predictor and score them against all
their references. The captions scored are exactly those `predict` gives (same predictor, same
decoding path); they are written to captions.json beside report.json.

OUT/report.json: bleu1..bleu4 (corpus BLEU), cider, counts, the best and worst examples
(by per-image CIDEr) and the images that failed; OUT/captions.json: every image's caption
and references; OUT/examples.png: the best and worst examples with their images.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from ...atomic import write_json
from ...errors import UsageError
from .data import SPLITS, read_captions
from .metrics import caption_scores
from .predictor import caption_files, is_caption_run, load_predictor
from .vocab import words

SPLITS_FILE = "splits.json"
N_EXAMPLES = 6


def score_captions(results: Sequence[dict[str, Any]], references: dict[str, list[str]],
                   n_examples: int = N_EXAMPLES) -> dict[str, Any]:
    """Metrics over the images that got a caption, with the best and worst examples."""
    done = [r for r in results if r["error"] is None]
    refs = [[words(c) for c in references[r["path"]]] for r in done]
    metrics, per_image = caption_scores(refs, [words(r["caption"]) for r in done])
    rows = [{"path": r["path"], "caption": r["caption"], "references": references[r["path"]], "cider": s}
            for r, s in zip(done, per_image)]
    ranked = sorted(rows, key=lambda x: (-x["cider"], x["path"]))
    k = min(n_examples, len(ranked) // 2) if len(ranked) > 1 else len(ranked)
    return {
        **{key: round(v, 6) for key, v in metrics.items()},
        "n_images": len(done),
        "n_failed": len(results) - len(done),
        "examples": {"best": ranked[:k], "worst": ranked[::-1][:k] if len(ranked) > 1 else []},
        "failures": [{"path": r["path"], "error": r["error"]} for r in results if r["error"] is not None],
    }


def write_evaluation(results: Sequence[dict[str, Any]], references: dict[str, list[str]], out: str | os.PathLike,
                     extra: dict[str, Any]) -> dict[str, Any]:
    """report.json, captions.json and examples.png in `out`; returns the report."""
    from .draw import examples_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {**extra, **score_captions(results, references)}
    write_json(out / "captions.json", [{**r, "references": references[r["path"]]} for r in results])
    write_json(out / "report.json", report)
    if report["n_images"]:
        examples_figure(report["examples"]["best"], report["examples"]["worst"], out / "examples.png")
    return report


def _split_images(run: str | os.PathLike, split: str, images: list[str]) -> list[str]:
    path = Path(run) / SPLITS_FILE
    if not is_caption_run(run) or not path.is_file():
        raise UsageError(f"--split {split} needs a caption run folder with {SPLITS_FILE}; use --split all")
    wanted = {os.path.realpath(p) for p in json.loads(path.read_text("utf-8"))[split]}
    chosen = [p for p in images if os.path.realpath(p) in wanted]
    if not chosen:
        raise UsageError(f"none of the run's {split} images are in this dataset")
    return chosen


def evaluate(run_or_name: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
             annotations: str | os.PathLike | None = None, split: str = "all", beam: int | None = None,
             batch_size: int = 16, workers: int | None = None, device: str = "auto", backend: str = "auto",
             encoding: str = "utf-8", progress: bool = False) -> dict[str, Any]:
    """Caption every image of the dataset DATA (or the run's train / val / test split of it) and
    score against all references. Bad rows of the dataset are listed in the report's `problems`."""
    if split not in ("all", *SPLITS):
        raise UsageError(f"unknown split {split!r}; use all, train, val or test")
    ds = read_captions(data, annotations, encoding)
    images = ds.images if split == "all" else _split_images(run_or_name, split, ds.images)
    predictor = load_predictor(run_or_name, beam=beam, device=device, backend=backend)
    results = caption_files(predictor, images, batch_size=batch_size, workers=workers, progress=progress)
    extra = {"run": str(run_or_name), "data": ds.source, "split": split, "beam": getattr(predictor, "beam", beam),
             "problems": [{"where": w, "error": e} for w, e in ds.problems]}
    return write_evaluation(results, ds.captions, out, extra)
