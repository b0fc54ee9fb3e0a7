"""`visionzoo detect ...`: thin commands over visionzoo.tasks.detect."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..tasks.detect.config import DEFAULT_ARCH
from . import results, videos
from ._app import (
    TASK_TRAIN_RENAMES,
    DeviceOpt,
    DrawOpt,
    EndOpt,
    EveryOpt,
    FpsOpt,
    PrecisionOpt,
    ProcessesHelp,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    StartOpt,
    TimeBudgetOpt,
    TrainThreadsOpt,
    ValSplitOpt,
    WeightsOpt,
    WorkersOpt,
    app,
    command,
    console,
    fail,
    folder_check,
    new_app,
    out_file,
    out_folder,
    say,
    show_progress,
)

detect_app = new_app("Object detection and instance segmentation: train on VOC / COCO / YOLO folders, predict, "
                     "evaluate (COCO mAP); torchvision's COCO detectors by name.")
app.add_typer(detect_app, name="detect")

AnnotationsOpt = typer.Option(None, "--annotations", help="COCO JSON (boxes, polygon / RLE masks) for DATA's images.")
BatchOpt = typer.Option(4, "--batch-size", min=1, help="Images per step / forward pass.")


@command(detect_app, "train", TASK_TRAIN_RENAMES)
def train_cmd(
    data: Path = typer.Argument(..., help="VOC (images/ + annotations/*.xml), YOLO (images/ + labels/ + data.yaml) "
                                "or the image folder of --annotations COCO JSON."),
    out: Path = typer.Option(..., "--out", "-o", callback=folder_check("--out"), help="Run folder to write (model, config, curves, report)."),
    annotations: Optional[Path] = AnnotationsOpt,
    val: Optional[Path] = typer.Option(None, "--val", help="Validation set [default: a seeded split of DATA]."),
    val_annotations: Optional[Path] = typer.Option(None, "--val-annotations", help="COCO JSON for --val."),
    arch: str = typer.Option(DEFAULT_ARCH, "--arch", help="fasterrcnn, retinanet, fcos, ssdlite or maskrcnn."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", help="Zoo / timm backbone name."),
    start_from: Optional[str] = typer.Option(None, "--from", help="Fine-tune a whole COCO-trained torchvision "
                                             "detector instead (e.g. fasterrcnn_resnet50_fpn_v2): its head is "
                                             "replaced for your classes."),
    weights: Optional[Path] = WeightsOpt,
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="At most this many epochs: training stops "
                                         "earlier when val mAP stops improving (--patience) [default: set by the "
                                         "data: about 320 steps, 4-30 epochs; maskrcnn 640, 4-60]."),
    time_budget: Optional[float] = TimeBudgetOpt,
    threads: Optional[int] = TrainThreadsOpt,
    image_size: Optional[int] = typer.Option(None, "--image-size", help="The network sees each photo fitted into a "
                                             "square of this side (its long side; a multiple of 32), as YOLO's "
                                             "letterbox does [default: 384]."),
    freeze: int = typer.Option(3, "--freeze", min=0, help="Leading backbone stages kept frozen (stem = 1)."),
    batch_size: int = BatchOpt,
    lr: float = typer.Option(0.01, "--lr", help="SGD learning rate."),
    val_split: float = ValSplitOpt,
    patience: int = typer.Option(4, "--patience", min=1, help="Early stopping patience in epochs."),
    resume: bool = ResumeOpt,
    seed: int = SeedOpt,
    workers: Optional[int] = WorkersOpt,
    processes: int = typer.Option(1, "--processes", min=1, help=ProcessesHelp),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Train a detector on a zoo backbone (bundled offline weights by default), or fine-tune a COCO-trained one
    (--from); best epoch by val mAP, then the operating point that predict uses is chosen on the val images.

    Example: visionzoo detect train raccoons/ --out runs/raccoon
    """
    from ..tasks.detect import train

    result = train(data, out, val=val, annotations=annotations, val_annotations=val_annotations, resume=resume,
                   progress=show_progress(quiet), log=say, arch=arch, backbone=backbone, epochs=epochs,
                   time_budget=time_budget, threads=threads, start_from=start_from, weights=str(weights) if weights else None,
                   **({} if image_size is None else {"image_size": image_size}), freeze=freeze, batch_size=batch_size, lr=lr, val_split=val_split,
                   patience=patience, seed=seed, workers=workers, num_workers=processes, device=device)
    raise typer.Exit(results.trained(result))


@detect_app.command("predict")
def predict_cmd(
    model: str = typer.Argument(..., help="Detection run folder or COCO detector name (e.g. fasterrcnn_resnet50_fpn_v2)."),
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or globs; videos, image sequences "
                                       "(frames/%04d.png), rtsp:// or http(s):// streams, a webcam index."),
    out: Optional[Path] = out_file(videos.VIDEO_KINDS),
    conf: Optional[float] = typer.Option(None, "--conf", min=0.0, max=1.0, help="Keep detections scoring at least this [default: the "
                                         "run's operating point, chosen on its validation images; 0.25 for a "
                                         "detector by name]."),
    iou: Optional[float] = typer.Option(None, "--iou", min=0.0, max=1.0, help="Non-maximum suppression IoU [default: the run's]."),
    draw: Optional[Path] = DrawOpt,
    masks: Optional[Path] = out_folder("--masks", "Folder for one PNG per detected mask."),
    weights: Optional[Path] = WeightsOpt,
    track: bool = typer.Option(False, "--track", help="Videos: follow each object from frame to frame (ByteTrack): "
                               "a track_id per box, a summary per track, trails in the --draw video."),
    fps: Optional[float] = FpsOpt,
    every: Optional[int] = EveryOpt,
    start: Optional[float] = StartOpt,
    end: Optional[float] = EndOpt,
    batch_size: int = BatchOpt,
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="--precision int8: photos typical of "
                                               "your inputs to calibrate on (a folder or glob; up to 64 spread over "
                                               "it) [default: the photos the run was trained on]."),
    quiet: bool = QuietOpt,
):
    """Boxes (and masks) in each image's original pixels, EXIF rotation applied; per frame of videos
    and streams, tracked with --track (--draw writes an annotated mp4 per video).

    Example: visionzoo detect predict runs/raccoon photos/ clip.mp4 --track --draw drawn/ --out boxes.jsonl
    """
    from ..tasks.detect import predict

    listed = results.listed(inputs, videos=True)
    images, sources = videos.split(listed.files)
    rows = predict(model, images, conf=conf, iou=iou, weights=weights, draw=draw, masks_dir=masks,
                   batch_size=batch_size, workers=workers, device=device, precision=precision,
                   calibration=calibration, progress=show_progress(quiet)) if images else []
    sampling, frames = videos.sampling(fps, every, start, end), ()
    if sources:   # the video machinery is imported only for videos: photos start sooner
        from ..video import VideoOptions, predict_videos

        options = VideoOptions(sampling, batch_size=batch_size, track=track, draw=draw, progress=show_progress(quiet),
                               log=say)
        frames = predict_videos(model, sources, task="detect", options=options, conf=conf, iou=iou, weights=weights,
                                device=device, batch_size=batch_size, precision=precision, calibration=calibration)
    line = lambda r: f"{r['path']}: " + (", ".join(f"{d['label']} {d['score']:.2f}" for d in r["detections"])  # noqa: E731
                                          or "nothing")
    raise typer.Exit(videos.finish(rows, frames, out, listed.skipped, line=line))


@detect_app.command("evaluate")
def evaluate_cmd(
    model: str = typer.Argument(..., help="Detection run folder or COCO detector name."),
    data: Path = typer.Argument(..., help="An annotated set (as for train)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=folder_check("--out"), help="Report folder [default: RUN/eval]."),
    annotations: Optional[Path] = AnnotationsOpt,
    conf: Optional[float] = typer.Option(None, "--conf", min=0.0, max=1.0, help="Score threshold for precision / recall [default: the "
                                         "run's operating point]."),
    weights: Optional[Path] = WeightsOpt,
    batch_size: int = BatchOpt,
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """COCO mAP@0.5 and mAP@0.5:0.95, per-class AP, precision / recall, PR curve, worst images.

    Example: visionzoo detect evaluate runs/raccoon raccoons_test/
    """
    from ..tasks.detect import evaluate
    from ..tasks.detect.evaluation import summary_line

    report = evaluate(model, data, out=out, annotations=annotations, conf=conf, weights=weights,
                      batch_size=batch_size, workers=workers, device=device, progress=show_progress(quiet), log=say)
    console.print(summary_line(report), highlight=False)
    for f in report.get("failures", []):
        fail(f["path"], f["error"])
    say(f"wrote {out or Path(model) / 'eval'}/report.json")
    raise typer.Exit(1 if report.get("failures") or any(i["skipped"] for i in report.get("issues", [])) else 0)
