"""`segment evaluate`: mIoU, pixel accuracy, per-class IoU and Dice from one confusion matrix over
every labelled pixel (255 = ignore), with a confusion-matrix picture and the worst images shown
as image / truth / prediction.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...atomic import write_json
from ...errors import UsageError
from ...outputs import check_folder
from .data import IGNORE, Sample, read_mask, to_classes

REPORT_JSON = "report.json"


def confusion(truth: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """k x k counts (rows: truth, columns: prediction) over the pixels that are not ignored."""
    keep = truth != IGNORE
    return np.bincount(truth[keep].astype(np.int64) * k + pred[keep], minlength=k * k).reshape(k, k)


def scores(matrix: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """mIoU over the classes that occur (in truth or prediction), pixel accuracy, per-class IoU / Dice."""
    tp = np.diag(matrix).astype(float)
    fp, fn = matrix.sum(0) - tp, matrix.sum(1) - tp
    present = (tp + fp + fn) > 0
    iou = np.divide(tp, tp + fp + fn, out=np.zeros_like(tp), where=present)
    dice = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=present)
    return {"miou": round(float(iou[present].mean()) if present.any() else 0.0, 6),
            "pixel_accuracy": round(float(tp.sum() / max(matrix.sum(), 1)), 6),
            "per_class": {c: {"iou": round(float(iou[i]), 6), "dice": round(float(dice[i]), 6),
                              "pixels": int(matrix[i].sum())} for i, c in enumerate(classes)}}


def score_samples(predictor, samples: Sequence[Sample], *, progress: bool = False) -> tuple[dict[str, Any], list[dict]]:
    """(report, per-image rows) of `predictor` on checked image/mask pairs."""
    from ...progress import progress_bar
    from .predictor import iter_masks

    k = len(predictor.classes)
    total = np.zeros((k, k), dtype=np.int64)
    rows, failures = [], []
    by_image = {s.image: s for s in samples}
    for path, _img, pred, error in progress_bar(iter_masks(predictor, [s.image for s in samples]),
                                                total=len(samples), unit="img", disable=not progress):
        if error is not None:
            failures.append({"path": path, "error": error})
            continue
        sample = by_image[path]
        truth = to_classes(read_mask(sample.mask)[0], sample.binary)
        if truth.shape != pred.shape:
            failures.append({"path": sample.mask, "error": f"mask is {truth.shape[1]}x{truth.shape[0]}, image "
                                                          f"{pred.shape[1]}x{pred.shape[0]}"})
            continue
        m = confusion(truth, pred, k)
        total += m
        rows.append({"path": path, "mask": sample.mask, "binary": sample.binary, "miou": scores(m, predictor.classes)["miou"], "pred": pred})
    report = {**scores(total, predictor.classes), "confusion_matrix": total.tolist(), "n_images": len(rows),
              "failures": failures}
    return report, rows


def write_report(out: str | os.PathLike, report: dict[str, Any], rows: list[dict], classes: Sequence[str], *,
                 title: str, worst: int = 6) -> dict[str, Any]:
    """report.json, confusion_matrix.png and worst.png (image / truth / prediction, lowest mIoU first)."""
    from ...viz.train_plots import confusion_matrix_plot

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bad = sorted(rows, key=lambda r: r["miou"])[:worst]
    report = {"title": title, **report, "per_image": [{"path": r["path"], "miou": r["miou"]} for r in rows],
              "worst_images": [r["path"] for r in bad]}
    write_json(out / REPORT_JSON, report)   # the results first: a picture that fails never costs them
    confusion_matrix_plot(report["confusion_matrix"], list(classes), out / "confusion_matrix.png")
    if bad:
        _worst_grid(bad, len(classes), out / "worst.png")
    return report


def _worst_grid(rows: list[dict], k: int, out: Path) -> Path:
    from PIL import Image

    from ...data.decode import load_rgb
    from ...viz.figure import figure, save
    from .predictor import mask_image

    plt, fig, axes = figure(len(rows), 3, (3.0, 3.0))
    for r, row in enumerate(rows):
        truth = to_classes(read_mask(row["mask"])[0], row["binary"])
        panels = [(load_rgb(row["path"]), Path(row["path"]).name),
                  (mask_image(np.where(truth == IGNORE, 0, truth), k).convert("RGB"), "truth"),
                  (mask_image(row["pred"], k).convert("RGB"), f"prediction (mIoU {row['miou']:.3f})")]
        for ax, (img, caption) in zip(axes[r], panels):
            img = img.copy()
            img.thumbnail((256, 256), Image.NEAREST)
            ax.imshow(img)
            ax.set_title(caption, fontsize=8)
            ax.axis("off")
    return save(plt, fig, out)


def evaluate(run_or_name: str | os.PathLike, data: str | os.PathLike, *, out: str | os.PathLike | None = None,
             weights: str | os.PathLike | None = None, tile: int | None = None, conf: float | None = None,
             device: str = "auto", progress: bool = False) -> dict[str, Any]:
    """mIoU and friends of a segmentation run (or pretrained name) on DATA (its test/ or val/ part if it
    has one, else every pair); the report goes to `out` [default: RUN/eval]."""
    from .data import load_seg_dataset
    from .predictor import DEFAULT_TILE, load_predictor

    if out is None:   # before any work: where the report goes
        if not Path(run_or_name).is_dir():
            raise UsageError("pass --out DIR for the report when evaluating a pretrained segmenter by name")
        out = Path(run_or_name) / "eval"
    check_folder(Path(out), "--out")
    predictor = load_predictor(run_or_name, weights=weights, tile=tile or DEFAULT_TILE, device=device, conf=conf)
    ds = load_seg_dataset(data, labels_required=predictor.classes, eval_only=True)
    report, rows = score_samples(predictor, ds.train, progress=progress)
    report["problems"] = [{"path": p, "error": e} for p, e in ds.failures]
    return write_report(out, report, rows, predictor.classes, title=f"{Path(str(run_or_name)).name} on {data}")
