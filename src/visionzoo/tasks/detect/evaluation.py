"""`visionzoo detect evaluate`: a detector on an annotated set -> report.json, predictions.json,
pr_curve.png and worst.png. Boxes come from the Predictor (the `predict` path) at a near-zero
threshold; `predictions.json` holds exactly the boxes the AP was computed on."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from ...atomic import write_json
from ...errors import UsageError
from ...outputs import check_folder
from .datasets import Sample, load_detection_data
from .metrics import evaluate_predictions
from .operating import EVAL_CONF, OperatingPoint, threshold_curves
from .predictor import Predictor, iter_predict_files

REPORT_JSON = "report.json"


def predict_samples(predictor: Predictor, samples: Sequence[Sample], *, workers: int | None = None,
                    progress: bool = False) -> list[dict[str, Any]]:
    """Predictor outputs for the samples' images, in their order (an unreadable image gets an error)."""
    return list(iter_predict_files(predictor, [s.path for s in samples], workers=workers, progress=progress))


def score_samples(samples: Sequence[Sample], predictions: Sequence[dict[str, Any]], classes: Sequence[str], *,
                  point: OperatingPoint, masks: bool = False) -> dict[str, Any]:
    """Metrics of what `predict` gives with the operating point `point` at a near-zero threshold
    (`predictions`, one per sample): COCO mAP over all of those boxes, and precision, recall, boxes per
    image and each image's errors for those the point's thresholds keep (what `predict` draws). Images
    that failed to decode are left out and listed."""
    keep = [i for i, p in enumerate(predictions) if not p.get("error")]
    kept_samples, kept_preds = [samples[i] for i in keep], [predictions[i] for i in keep]
    if not kept_samples:
        raise UsageError("none of the images could be read")
    shown = [{**p, "detections": point.keep(p["detections"])} for p in kept_preds]
    report = evaluate_predictions(kept_samples, kept_preds, classes, conf=EVAL_CONF)
    at_point = evaluate_predictions(kept_samples, shown, classes, conf=0.0)
    report.update({k: at_point[k] for k in ("precision", "recall", "per_image")}, conf=point.conf,
                  operating_point=point.to_dict(), curves=threshold_curves(kept_samples, kept_preds, classes),
                  boxes_per_image=round(sum(len(p["detections"]) for p in shown) / len(shown), 3),
                  true_boxes_per_image=round(sum(int((~s.crowd).sum()) for s in kept_samples) / len(shown), 3))
    for entry, i in zip(report["per_image"], keep):
        entry["path"] = samples[i].path
    if masks:
        segm = evaluate_predictions(kept_samples, shown, classes, conf=0.0, iou_type="segm")
        report["mask"] = {k: segm[k] for k in ("map50", "map", "precision", "recall")}
        report["mask"]["per_class"] = segm["per_class"]
    report["failures"] = [{"path": p["path"], "error": p["error"]} for p in predictions if p.get("error")]
    return report


def write_report(out: str | os.PathLike, samples: Sequence[Sample], predictions: Sequence[dict[str, Any]],
                 report: dict[str, Any], classes: Sequence[str], *, point: OperatingPoint, title: str,
                 worst: int = 12) -> dict[str, Any]:
    """report.json, predictions.json (the boxes mAP scored: `predict`'s at a near-zero threshold), pr_curve.png,
    threshold_curves.png
    (F1, precision and recall against the score threshold) and worst.png (the images with the most
    errors at the operating point, drawn as `predict` draws them)."""
    from .draw import pr_curve_plot, threshold_curves_plot, worst_grid

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"title": title, **report}
    write_json(out / "predictions.json", list(predictions))
    by_path = {s.path: s for s in samples}
    preds = {p["path"]: p for p in predictions}
    bad = sorted((e for e in report["per_image"] if e["false_positives"] + e["false_negatives"]),
                 key=lambda e: -(e["false_positives"] + e["false_negatives"]))[:worst]
    report["worst_images"] = [e["path"] for e in bad]
    write_json(out / REPORT_JSON, report)   # the results first: a picture that fails never costs them
    pr_curve_plot({"all classes": report["pr_curve"]}, out / "pr_curve.png",
                  f"PR at IoU 0.5 (mAP50 {report['map50']:.3f})")
    threshold_curves_plot(report["curves"], point, out / "threshold_curves.png")
    items = []
    for e in bad:
        s = by_path[e["path"]]
        truth = [{"box": b.tolist()} for b in s.boxes]
        dets = point.keep(preds[e["path"]]["detections"])
        items.append({**e, "truth": truth, "detections": [{k: v for k, v in d.items() if k != "mask"} for d in dets]})
    worst_grid(items, out / "worst.png")
    return report


def summary_line(report: dict[str, Any]) -> str:
    text = (f"mAP50 {report['map50']:.4f}, mAP50-95 {report['map']:.4f}; at the operating point (score >= "
            f"{report['conf']:.2f}): precision {report['precision']:.3f}, recall {report['recall']:.3f}, "
            f"{report['boxes_per_image']:.2f} boxes per image ({report['true_boxes_per_image']:.2f} true), on "
            f"{report['n_images']} images")
    if "mask" in report:
        text += f"; masks: mAP50 {report['mask']['map50']:.4f}, mAP50-95 {report['mask']['map']:.4f}"
    return text


def evaluate(run_or_name: str | os.PathLike, data: str | os.PathLike, *, out: str | os.PathLike | None = None,
             annotations: str | os.PathLike | None = None, conf: float | None = None,
             weights: str | os.PathLike | None = None, batch_size: int = 4, workers: int | None = None,
             device: str = "auto", progress: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """mAP of a detection run (or COCO detector name) on an annotated set; the report goes to `out`
    [default: RUN/eval]. Boxes of classes the model does not know are reported and ignored."""
    from .detector import load_detector

    if out is None:   # before any work: where the report goes
        if not Path(run_or_name).is_dir():
            raise UsageError("pass --out DIR for the report when evaluating a pretrained detector by name")
        out = Path(run_or_name) / "eval"
    check_folder(Path(out), "--out")
    detector = load_detector(run_or_name, weights)
    data_set = load_detection_data(data, annotations, classes=detector.classes)
    for issue in data_set.issues:
        (log or (lambda _m: None))(f"{'skipped' if issue.skipped else 'note'} {issue.file}: {issue.reason}")
    point = OperatingPoint.from_config(detector.config)
    if conf is not None:
        point = point.with_conf(conf)
    predictor = Predictor(detector, point=point.with_conf(EVAL_CONF), device=device, batch_size=batch_size)
    predictions = predict_samples(predictor, data_set.samples, workers=workers, progress=progress)
    report = score_samples(data_set.samples, predictions, detector.classes, point=point, masks=predictor.has_masks)
    report["issues"] = [{"file": i.file, "reason": i.reason, "skipped": i.skipped} for i in data_set.issues]
    return write_report(out, data_set.samples, predictions, report, detector.classes, point=point,
                        title=f"{Path(str(run_or_name)).name} on {data}")
