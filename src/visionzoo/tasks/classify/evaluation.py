"""`evaluate` (`visionzoo classify evaluate`): a saved run on labelled images -> report.json, report.md and pictures.

Inference goes through `tasks.classify`, so decoding, preprocessing and bad-file handling are
exactly those of `classify` / `predict`; failed files are listed in the report, not counted.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ...atomic import write_json, write_text
from ...errors import UsageError
from ...zoo import as_model
from ...zoo.rundir import task_config
from .data import Split, load_eval_split
from .predictor import classify

REPORT_JSON = "report.json"


def evaluate_split(module: nn.Module, split: Split, labels: list[str], *, batch_size: int = 32,
                   workers: int | None = None, device: str = "auto", progress: bool = False):
    """(y_true, probs (N, K), paths, failures [(path, reason)]) for the images that decoded."""
    results = {r.path: r for r in classify(split.paths, model=module, top_k=len(labels), batch_size=batch_size,
                                           workers=workers, device=device, progress=progress)}
    y_true, rows, paths, failures = [], [], [], []
    for path, target in zip(split.paths, split.targets):
        r = results[path]
        if r.error:
            failures.append((path, r.error))
            continue
        row = np.zeros(len(labels), dtype=np.float64)
        for p in r.predictions:
            row[p.index] = p.probability
        y_true.append(target)
        rows.append(row / max(row.sum(), 1e-12))
        paths.append(path)
    probs = np.stack(rows) if rows else np.zeros((0, len(labels)))
    return np.asarray(y_true, dtype=int), probs, paths, failures


def write_report(out: str | os.PathLike, y_true: np.ndarray, probs: np.ndarray, paths: list[str],
                 labels: list[str], failures: list[tuple[str, str]], *, title: str,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """report.json, report.md, confusion_matrix.png, misclassified.png and (2 classes) roc_pr.png."""
    from ...eval.metrics import classification_metrics
    from ...viz.train_plots import confusion_matrix_plot, misclassified_grid, roc_pr_curves

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"title": title, **(extra or {}), **classification_metrics(y_true, probs, labels)}
    pred = probs.argmax(1) if len(probs) else np.zeros(0, dtype=int)
    report["predictions"] = [
        {"path": p, "true": labels[t], "predicted": labels[k], "probability": round(float(probs[i, k]), 6)}
        for i, (p, t, k) in enumerate(zip(paths, y_true, pred))
    ]
    report["failures"] = [{"path": p, "error": e} for p, e in failures]
    write_json(out / REPORT_JSON, report)          # the results first: a picture that fails never costs them
    write_text(out / "report.md", report_markdown(report))
    confusion_matrix_plot(report["confusion_matrix"], labels, out / "confusion_matrix.png")
    misclassified_grid([r for r in report["predictions"] if r["true"] != r["predicted"]], out / "misclassified.png")
    if "roc_auc" in report:
        roc_pr_curves(y_true, probs[:, 1], labels[1], out / "roc_pr.png")
    return report


def report_markdown(report: dict[str, Any]) -> str:
    lines = [f"# {report['title']}", "",
             f"- images evaluated: {report['n_images']}" + (f" ({len(report['failures'])} failed to decode)"
                                                            if report["failures"] else ""),
             f"- accuracy: **{report['accuracy']:.4f}**", f"- macro F1: {report['macro_f1']:.4f}"]
    if "roc_auc" in report:
        lines += [f"- ROC AUC: {report['roc_auc']:.4f} (positive class: {report['labels'][1]})",
                  f"- PR AUC (average precision): {report['pr_auc']:.4f}"]
    lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, m in report["per_class"].items():
        lines.append(f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    lines += ["", "Confusion matrix (rows: true, columns: predicted): `confusion_matrix.png`; "
              "misclassified images: `misclassified.png`" + ("; ROC and PR curves: `roc_pr.png`." if "roc_auc" in report else ".")]
    if report["failures"]:
        lines += ["", "## Files that could not be read", ""]
        lines += [f"- `{f['path']}`: {f['error']}" for f in report["failures"]]
    return "\n".join(lines) + "\n"


def summary_line(report: dict[str, Any]) -> str:
    text = f"accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f} on {report['n_images']} images"
    if "roc_auc" in report:
        text += f", ROC AUC {report['roc_auc']:.4f}"
    return text


def evaluate(run_dir: str | os.PathLike, data: str | os.PathLike, *, out: str | os.PathLike | None = None,
             batch_size: int = 32, workers: int | None = None, device: str = "auto", encoding: str = "utf-8",
             progress: bool = False) -> dict[str, Any]:
    """Evaluate a saved run on DATA (its test/ folder if any, else val/, else every class folder,
    or a path,label CSV). Writes the report into `out` [default: RUN_DIR/eval] and returns it."""
    if task_config(run_dir, "classify") is None:
        raise UsageError(f"{run_dir} is not a saved run (needs model.safetensors and config.json)")
    module, spec = as_model(run_dir)
    labels = list(spec.labels or [])
    split, _ = load_eval_split(data, labels, encoding)
    y_true, probs, paths, failures = evaluate_split(module, split, labels, batch_size=batch_size,
                                                    workers=workers, device=device, progress=progress)
    if not paths:
        raise UsageError(f"none of the {len(split)} images in {data} could be read (e.g. {failures[0][0]}: {failures[0][1]})")
    out = Path(out) if out is not None else Path(run_dir) / "eval"
    return write_report(out, y_true, probs, paths, labels, failures,
                        title=f"Evaluation of {run_dir} on {data}", extra={"run": str(run_dir), "data": str(data)})
