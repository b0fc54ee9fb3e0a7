"""`visionzoo segment ...`: thin commands over visionzoo.tasks.segment."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import QuietOpt, app, console, err_console, report_failures, show_progress

segment_app = typer.Typer(help="Semantic segmentation (U-Net, DeepLabV3+, FPN): train on images + masks, predict "
                          "masks at any size, evaluate mIoU; torchvision's VOC segmenters by name.", no_args_is_help=True)
app.add_typer(segment_app, name="segment")

WeightsOpt = typer.Option(None, "--weights", help="Local weights file for a pretrained segmenter name.")
TileOpt = typer.Option(1024, "--tile", min=64, help="Images larger than this run as overlapping tiles of this size.")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps.")


def _say(msg: str) -> None:
    err_console.print(msg, highlight=False, markup=False)


def _scores(report: dict) -> str:
    return f"mIoU {report['miou']:.4f}, pixel accuracy {report['pixel_accuracy']:.4f} on {report['n_images']} images"


@segment_app.command("train")
def train_cmd(
    data: Path = typer.Argument(..., help="Folder with images/ (or image/) and masks/ (or label/, labels/), "
                                "or train/ val/ test/ folders holding those."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (model, config, curves, report)."),
    arch: str = typer.Option("unet", "--arch", help="unet, deeplabv3plus or fpn."),
    backbone: str = typer.Option("efficientnet_lite0", "--backbone", "-m", help="Zoo / timm encoder name."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Class names in index order, comma-separated "
                                          "[default: DATA/classes.txt, else from the masks]."),
    epochs: int = typer.Option(30, "--epochs", min=1),
    img_size: int = typer.Option(256, "--image-size", help="Side of the random training crops (multiple of 32)."),
    batch_size: int = typer.Option(4, "--batch-size", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    val_split: float = typer.Option(0.2, "--val-split", help="Held-out fraction when DATA has no val/."),
    patience: int = typer.Option(10, "--patience", min=1, help="Early stopping patience in epochs."),
    seed: int = typer.Option(0, "--seed"),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Decoding processes [default: auto]."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Train a segmenter on an encoder from the zoo (bundled offline weights by default); best epoch by val mIoU."""
    from ..tasks.segment import train

    result = train(data, out, classes=classes.split(",") if classes else None, progress=show_progress(quiet),
                   log=_say, arch=arch, backbone=backbone, epochs=epochs, img_size=img_size, batch_size=batch_size,
                   lr=lr, val_split=val_split, patience=patience, seed=seed, workers=workers, device=device)
    if result["report"]:
        console.print(f"val: {_scores(result['report'])}", highlight=False)
    raise typer.Exit(1 if result["failures"] else 0)


@segment_app.command("predict")
def predict_cmd(
    model: str = typer.Argument(..., help="Segmentation run folder or torchvision name (e.g. deeplabv3_resnet50)."),
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for STEM.mask.png, STEM.overlay.png and predictions.json."),
    tile: int = TileOpt,
    weights: Optional[Path] = WeightsOpt,
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """A class-index mask PNG per image at its original size, a colour overlay, and per-class pixel shares."""
    from ..atomic import write_json
    from ..data import expand_inputs
    from ..tasks.segment import predict

    listed = expand_inputs(inputs)
    results = predict(model, listed.files, out=out, weights=weights, tile=tile, device=device,
                      progress=show_progress(quiet))
    for r in results:
        if r["error"] is None:
            top = sorted(r["shares"].items(), key=lambda kv: -kv[1])[:3]
            console.print(f"{r['path']}: " + ", ".join(f"{k} {v:.1%}" for k, v in top), highlight=False, markup=False)
    write_json(out / "predictions.json", results)
    _say(f"wrote {out}/predictions.json and the masks")
    raise typer.Exit(report_failures(results, listed.skipped))


@segment_app.command("evaluate")
def evaluate_cmd(
    model: str = typer.Argument(..., help="Segmentation run folder or torchvision name."),
    data: Path = typer.Argument(..., help="Images + masks (its test/ or val/ part if it has one)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder [default: RUN/eval]."),
    tile: int = TileOpt,
    weights: Optional[Path] = WeightsOpt,
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """mIoU, pixel accuracy, per-class IoU and Dice, confusion matrix, worst images."""
    from ..tasks.segment import evaluate

    report = evaluate(model, data, out=out, weights=weights, tile=tile, device=device, progress=show_progress(quiet))
    console.print(_scores(report), highlight=False)
    for f in report["problems"] + report["failures"]:
        _say(f"skipped {f['path']}: {f['error']}")
    _say(f"wrote {out or Path(model) / 'eval'}/report.json")
    raise typer.Exit(1 if report["problems"] or report["failures"] else 0)
