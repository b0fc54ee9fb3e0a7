"""`visionzoo detect ...`: thin commands over visionzoo.tasks.detect."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import QuietOpt, app, console, err_console, report_failures, show_progress

detect_app = typer.Typer(help="Object detection and instance segmentation: train on VOC / COCO / YOLO folders, "
                         "predict, evaluate (COCO mAP); torchvision's COCO detectors by name.", no_args_is_help=True)
app.add_typer(detect_app, name="detect")

AnnotationsOpt = typer.Option(None, "--annotations", help="COCO JSON (boxes, polygon / RLE masks) for DATA's images.")
WeightsOpt = typer.Option(None, "--weights", help="Local weights file for a pretrained detector name.")
BatchOpt = typer.Option(4, "--batch-size", min=1)
WorkersOpt = typer.Option(None, "--workers", min=0, help="Decoding processes [default: auto].")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps.")


def _say(msg: str) -> None:
    err_console.print(msg, highlight=False, markup=False)


@detect_app.command("train")
def train_cmd(
    data: Path = typer.Argument(..., help="VOC (images/ + annotations/*.xml), YOLO (images/ + labels/ + data.yaml) "
                                "or the image folder of --annotations COCO JSON."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (model, config, curves, report)."),
    annotations: Optional[Path] = AnnotationsOpt,
    val: Optional[Path] = typer.Option(None, "--val", help="Validation set [default: a seeded split of DATA]."),
    val_annotations: Optional[Path] = typer.Option(None, "--val-annotations", help="COCO JSON for --val."),
    arch: str = typer.Option("fasterrcnn", "--arch", help="fasterrcnn, retinanet, fcos, ssdlite or maskrcnn."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-m", help="Zoo / timm backbone name."),
    epochs: int = typer.Option(4, "--epochs", min=1),
    img_size: int = typer.Option(384, "--image-size", help="Short side of the network input (multiple of 32)."),
    freeze: int = typer.Option(3, "--freeze", min=0, help="Leading backbone stages kept frozen (stem = 1)."),
    batch_size: int = BatchOpt,
    lr: float = typer.Option(0.01, "--lr", help="SGD learning rate."),
    val_split: float = typer.Option(0.2, "--val-split", help="Held-out fraction when no --val is given."),
    patience: int = typer.Option(5, "--patience", min=1, help="Early stopping patience in epochs."),
    seed: int = typer.Option(0, "--seed"),
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Train a detector on a zoo backbone (bundled offline weights by default); best epoch by val mAP."""
    from ..tasks.detect import train

    result = train(data, out, val=val, annotations=annotations, val_annotations=val_annotations,
                   progress=show_progress(quiet), log=_say, arch=arch, backbone=backbone, epochs=epochs,
                   img_size=img_size, freeze=freeze, batch_size=batch_size, lr=lr, val_split=val_split,
                   patience=patience, seed=seed, workers=workers, device=device)
    raise typer.Exit(1 if result["config"]["dataset"]["failures"] else 0)


@detect_app.command("predict")
def predict_cmd(
    model: str = typer.Argument(..., help="Detection run folder or COCO detector name (e.g. fasterrcnn_resnet50_fpn_v2)."),
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write [{path, detections, error}] to FILE.json."),
    conf: float = typer.Option(0.25, "--conf", help="Keep detections scoring at least this."),
    iou: float = typer.Option(0.5, "--iou", help="Non-maximum suppression IoU."),
    draw: Optional[Path] = typer.Option(None, "--draw", help="Write each picture with its boxes here."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Write one PNG per detected mask here."),
    weights: Optional[Path] = WeightsOpt,
    batch_size: int = BatchOpt,
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Boxes (and masks) in each image's original pixels, EXIF rotation applied."""
    from ..atomic import write_json
    from ..data import expand_inputs
    from ..tasks.detect import predict

    listed = expand_inputs(inputs)
    results = predict(model, listed.files, conf=conf, iou=iou, weights=weights, draw=draw, masks_dir=masks,
                      batch_size=batch_size, workers=workers, device=device, progress=show_progress(quiet))
    for r in results:
        if r["error"] is None:
            found = ", ".join(f"{d['label']} {d['score']:.2f}" for d in r["detections"]) or "nothing"
            console.print(f"{r['path']}: {found}", highlight=False, markup=False)
    if out is not None:
        write_json(out, results)
        _say(f"wrote {out}")
    raise typer.Exit(report_failures(results, listed.skipped))


@detect_app.command("evaluate")
def evaluate_cmd(
    model: str = typer.Argument(..., help="Detection run folder or COCO detector name."),
    data: Path = typer.Argument(..., help="An annotated set (as for train)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder [default: RUN/eval]."),
    annotations: Optional[Path] = AnnotationsOpt,
    conf: Optional[float] = typer.Option(None, "--conf", help="Threshold for precision / recall [default: the run's]."),
    weights: Optional[Path] = WeightsOpt,
    batch_size: int = BatchOpt,
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """COCO mAP@0.5 and mAP@0.5:0.95, per-class AP, precision / recall, PR curve, worst images."""
    from ..tasks.detect import evaluate
    from ..tasks.detect.evaluation import summary_line

    report = evaluate(model, data, out=out, annotations=annotations, conf=conf, weights=weights,
                      batch_size=batch_size, workers=workers, device=device, progress=show_progress(quiet), log=_say)
    console.print(summary_line(report), highlight=False)
    for f in report.get("failures", []):
        _say(f"failed {f['path']}: {f['error']}")
    _say(f"wrote {out or Path(model) / 'eval'}/report.json")
    raise typer.Exit(1 if report.get("failures") else 0)
