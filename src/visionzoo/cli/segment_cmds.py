"""`visionzoo segment ...`: thin commands over visionzoo.tasks.segment."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import results, videos
from ._app import (
    TASK_TRAIN_RENAMES,
    DeviceOpt,
    EndOpt,
    EveryOpt,
    FpsOpt,
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
    err_console,
    fail,
    folder_check,
    new_app,
    out_folder,
    say,
    show_progress,
)

segment_app = new_app("Semantic segmentation (U-Net, DeepLabV3+, FPN): train on images + masks, predict masks at "
                      "any size, evaluate mIoU; torchvision's VOC segmenters by name.")
app.add_typer(segment_app, name="segment")

TileOpt = typer.Option(1024, "--tile", min=64, help="Images larger than this run as overlapping tiles of this size.")
ConfOpt = typer.Option(None, "--conf", min=0.0, max=1.0, help="Two-class masks: a pixel is the second class where "
                       "its probability reaches this [default: the run's operating point, chosen on its validation "
                       "images]. Ignored for more classes.")


def _scores(report: dict) -> str:
    return f"mIoU {report['miou']:.4f}, pixel accuracy {report['pixel_accuracy']:.4f} on {report['n_images']} images"


@command(segment_app, "train", {**TASK_TRAIN_RENAMES, "--image-size": "--crop-size"})
def train_cmd(
    data: Path = typer.Argument(..., help="Folder with images/ (or image/) and masks/ (or label/, labels/), "
                                "or train/ val/ test/ folders holding those."),
    out: Path = typer.Option(..., "--out", "-o", callback=folder_check("--out"), help="Run folder to write (model, config, curves, report)."),
    arch: str = typer.Option("unet", "--arch", help="unet, deeplabv3plus or fpn."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", help="Zoo / timm encoder name."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Class names in index order, comma-separated "
                                          "[default: DATA/classes.txt, else from the masks]."),
    epochs: int = typer.Option(30, "--epochs", min=1),
    crop_size: int = typer.Option(256, "--crop-size", help="Side of the random training crops (multiple of 32)."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Crops per training step (over all processes)."),
    lr: float = typer.Option(1e-3, "--lr"),
    val_split: float = ValSplitOpt,
    patience: int = typer.Option(10, "--patience", min=1, help="Early stopping patience in epochs."),
    time_budget: Optional[float] = TimeBudgetOpt,
    threads: Optional[int] = TrainThreadsOpt,
    resume: bool = ResumeOpt,
    seed: int = SeedOpt,
    workers: Optional[int] = WorkersOpt,
    processes: int = typer.Option(1, "--processes", min=1, help=ProcessesHelp),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Train a segmenter on an encoder from the zoo (bundled offline weights by default); best epoch by val mIoU.

    Example: visionzoo segment train membrane/ --out runs/membrane
    """
    from ..tasks.segment import train

    result = train(data, out, classes=classes.split(",") if classes else None, resume=resume,
                   progress=show_progress(quiet), log=say, arch=arch, backbone=backbone, epochs=epochs,
                   crop_size=crop_size, batch_size=batch_size, lr=lr, val_split=val_split, patience=patience, seed=seed,
                   time_budget=time_budget, threads=threads, workers=workers, num_workers=processes, device=device)
    if result.get("report"):
        console.print(f"val: {_scores(result['report'])}", highlight=False)
    raise typer.Exit(results.trained(result))


@segment_app.command("predict")
def predict_cmd(
    model: str = typer.Argument(..., help="Segmentation run folder or torchvision name (e.g. deeplabv3_resnet50)."),
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or globs; videos, image sequences "
                                       "(frames/%04d.png), rtsp:// or http(s):// streams, a webcam index."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Results file (JSON, CSV or JSONL, by its extension)."),
    masks: Optional[Path] = out_folder("--masks", "Folder for STEM.mask.png (class indices) and STEM.overlay.png "
                                       "per image; for a video, its overlay video STEM.mp4."),
    tile: int = TileOpt,
    conf: Optional[float] = ConfOpt,
    weights: Optional[Path] = WeightsOpt,
    fps: Optional[float] = FpsOpt,
    every: Optional[int] = EveryOpt,
    start: Optional[float] = StartOpt,
    end: Optional[float] = EndOpt,
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """A class-index mask PNG per image at its original size, a colour overlay, and per-class pixel shares;
    per frame of videos and streams (shares per frame, an overlay video in --masks).

    Example: visionzoo segment predict runs/membrane cells/ --masks masks/ --out shares.csv
    """
    from ..tasks.segment import predict
    from ..video import VideoOptions, predict_videos

    if out is not None and (out.is_dir() or not out.suffix) and masks is None:  # the old meaning of --out: a folder
        err_console.print(f"warning: --out {out} is a folder: masks now go to --masks DIR and the results to --out "
                          f"FILE.json; writing {out}/predictions.json and the masks there, as before", highlight=False)
        masks, out = out, out / "predictions.json"
    results.plan(files={"--out": (out, videos.VIDEO_KINDS)}, folders={"--masks": masks})
    listed = results.listed(inputs, videos=True)
    images, sources = videos.split(listed.files)
    rows = predict(model, images, masks_dir=masks, weights=weights, tile=tile, device=device, workers=workers,
                   conf=conf, progress=show_progress(quiet)) if images else []
    options = VideoOptions(videos.sampling(fps, every, start, end), batch_size=1, draw=masks, progress=show_progress(quiet),
                           log=say)
    frames = predict_videos(model, sources, task="segment", options=options, weights=weights, tile=tile,
                            conf=conf, device=device) if sources else ()

    def line(r: dict) -> str:
        top = sorted(r["shares"].items(), key=lambda kv: -kv[1])[:3]
        return f"{r['path']}: " + ", ".join(f"{k} {v:.1%}" for k, v in top)

    raise typer.Exit(videos.finish(rows, frames, out, listed.skipped, line=line))


@segment_app.command("evaluate")
def evaluate_cmd(
    model: str = typer.Argument(..., help="Segmentation run folder or torchvision name."),
    data: Path = typer.Argument(..., help="Images + masks (its test/ or val/ part if it has one)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=folder_check("--out"), help="Report folder [default: RUN/eval]."),
    tile: int = TileOpt,
    conf: Optional[float] = ConfOpt,
    weights: Optional[Path] = WeightsOpt,
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """mIoU, pixel accuracy, per-class IoU and Dice, confusion matrix, worst images.

    Example: visionzoo segment evaluate runs/membrane membrane_test/
    """
    from ..tasks.segment import evaluate

    report = evaluate(model, data, out=out, weights=weights, tile=tile, conf=conf, device=device,
                      progress=show_progress(quiet))
    console.print(_scores(report), highlight=False)
    for f in report["problems"] + report["failures"]:
        fail(f["path"], f["error"], "skipped")
    say(f"wrote {out or Path(model) / 'eval'}/report.json")
    raise typer.Exit(1 if report["problems"] or report["failures"] else 0)
