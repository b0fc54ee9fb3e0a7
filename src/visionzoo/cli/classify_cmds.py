"""`visionzoo classify [IMAGES | train | predict | evaluate]`, and the top-level `train`,
`evaluate` and `predict`, which are the same commands."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import results
from ._app import (
    TRAIN_RENAMES,
    CalibrationOpt,
    DeviceOpt,
    EncodingOpt,
    EndOpt,
    EngineOpt,
    EveryOpt,
    FpsOpt,
    ModelOpt,
    PrecisionOpt,
    ProcessesHelp,
    QuietOpt,
    RayAddressOpt,
    ResumeOpt,
    SeedOpt,
    StartOpt,
    TopKOpt,
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
    picture_file,
    say,
    show_progress,
)
from .videos import VIDEO_KINDS
from .videos import sampling as video_sampling

classify_app = new_app("Image classification: top-k labels of images (`visionzoo classify IMAGES...`), and "
                       "train / predict / evaluate a classifier on your labelled images.", default=True)
app.add_typer(classify_app, name="classify")


def _line(r: dict) -> str:
    return f"{r['path']}: " + ", ".join(f"{p['label']} {p['probability']:.1%}" for p in r["predictions"])


def _print_table(rows: list[dict], title: str) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    table.add_column("image", overflow="fold")
    table.add_column("top predictions")
    for r in rows:
        if r["error"]:
            table.add_row(r["path"], f"[red]error: {r['error']}[/red]")
        else:
            table.add_row(r["path"], "\n".join(f"{p['probability']:6.1%}  {p['label']}  [dim]({p['index']})[/dim]"
                                                for p in r["predictions"]))
    console.print(table)


@command(classify_app, "images", renames={"--num-workers": "--processes"}, hidden=True)
def images_cmd(
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or globs; video files (each "
                                       "sampled frame classified)."),
    model: Optional[str] = ModelOpt,
    weights: Optional[Path] = WeightsOpt,
    top_k: int = TopKOpt,
    out: Optional[Path] = out_file(VIDEO_KINDS),
    grid: Optional[Path] = picture_file("--grid", "Draw images with top-k bar charts to FILE.png (or .pdf, .svg, ...)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per forward pass."),
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    calibration: Optional[str] = CalibrationOpt,
    engine: str = EngineOpt,
    ray_address: Optional[str] = RayAddressOpt,
    processes: Optional[int] = typer.Option(None, "--processes", min=1, help=ProcessesHelp),
    fps: Optional[float] = FpsOpt,
    every: Optional[int] = EveryOpt,
    start: Optional[float] = StartOpt,
    end: Optional[float] = EndOpt,
    quiet: bool = QuietOpt,
):
    """Top-k ImageNet labels (or a saved run's labels) with probabilities, per image and per sampled
    frame of videos (PATH#t=SECONDS).

    Example: visionzoo classify photos/ clip.mp4 --fps 1 --top-k 3 --out labels.csv
    """
    from ..batch import classify
    from ..data.video import frame_fields

    results.plan(files={"--out": (out, VIDEO_KINDS)}, pictures={"--grid": grid})
    listed = results.listed(inputs, videos=True)
    found = classify(listed.files, model=model, weights=weights, top_k=top_k, batch_size=batch_size, workers=workers,
                     device=device, progress=show_progress(quiet), engine=engine, ray_address=ray_address,
                     num_workers=processes, sampling=video_sampling(fps, every, start, end), precision=precision,
                     calibration=calibration)
    rows = [{"path": r.path, **frame_fields(r.path), **r.to_dict()} for r in found]
    _print_table(rows, f"{model or 'efficientnet_lite0'}: top-{top_k}")
    code = results.finish(rows, out, listed.skipped)
    if grid:
        from ..viz.grid import topk_grid

        code = max(code, results.picture("--grid", grid, lambda: topk_grid(found, grid)))
    raise typer.Exit(code)


def _print_report(report: dict) -> None:
    from rich.table import Table

    from ..tasks.classify.evaluation import summary_line

    table = Table(title=summary_line(report))
    for col in ("class", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for label, m in report["per_class"].items():
        table.add_row(label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    console.print(table)


def train_cmd(
    data: Path = typer.Argument(..., help="Class folders (with or without train/ val/ test/), or a CSV of path,label."),
    out: Path = typer.Option(..., "--out", "-o", callback=folder_check("--out"), help="Run folder to write (model, config, history, report)."),
    encoding: str = EncodingOpt,
    model: str = typer.Option("auto", "--model", "-m",
                              help="Zoo name, timm/torchvision name or run folder; auto: the bundled backbones, "
                                   "chosen by cross-validation (or a comma list of candidates)."),
    strategy: str = typer.Option("auto", "--strategy", "-s",
                                 help="auto | linear | finetune | scratch. auto: a linear head with flip TTA, backbone "
                                      "and regularisation chosen by k-fold CV on the training images."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1,
                                         help="Total epochs, head phase included [default: linear 100, finetune 12, "
                                              "scratch 60]."),
    head_epochs: int = typer.Option(2, "--head-epochs", min=0, help="finetune: epochs training only the new head."),
    freeze: int = typer.Option(2, "--freeze", min=0, help="finetune: leading blocks (stem first) kept frozen."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate of the head [default: 1e-3]."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per training step (over all processes)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Side of the square network input "
                                             "[default: the model's own]."),
    val_split: float = ValSplitOpt,
    patience: Optional[int] = typer.Option(None, "--patience", min=1, help="Early stopping patience in epochs."),
    cv: Optional[int] = typer.Option(None, "--cv", min=2, help="K-fold cross-validation (runs in OUT/fold_i)."),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", min=0.001,
                                                help="Seconds, only when given: auto skips the backbones that would "
                                                     "not fit; the other strategies stop at the step that spends it "
                                                     "(config.json and the report say so) [default: no limit]."),
    threads: Optional[int] = TrainThreadsOpt,
    resume: bool = ResumeOpt,
    seed: int = SeedOpt,
    workers: Optional[int] = WorkersOpt,
    processes: int = typer.Option(1, "--processes", min=1, help=ProcessesHelp),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Train a classifier on your labelled images (transfer learning or from scratch).

    Example: visionzoo classify train flowers/ --out runs/flowers
    """
    from ..tasks.classify import train

    result = train(data, out, encoding=encoding, resume=resume, progress=show_progress(quiet), log=say, model=model,
                   strategy=strategy, epochs=epochs, head_epochs=head_epochs, freeze=freeze, lr=lr, batch_size=batch_size,
                   image_size=image_size, val_split=val_split, patience=patience, cv=cv, time_budget=time_budget,
                   threads=threads, seed=seed, workers=workers, num_workers=processes, device=device)
    if result.get("report"):
        _print_report(result["report"])
    raise typer.Exit(results.trained(result))


def evaluate_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder written by `visionzoo classify train`."),
    data: Path = typer.Argument(..., help="Class folders (test/ or val/ used if present) or a CSV of path,label."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=folder_check("--out"), help="Report folder [default: RUN_DIR/eval]."),
    encoding: str = EncodingOpt,
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per forward pass."),
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Accuracy, macro F1, per-class precision/recall/F1, confusion matrix, misclassified images.

    Example: visionzoo classify evaluate runs/flowers flowers/test
    """
    from ..tasks.classify import evaluate

    report = evaluate(run_dir, data, out=out, batch_size=batch_size, workers=workers, device=device,
                      encoding=encoding, progress=show_progress(quiet))
    _print_report(report)
    for f in report["failures"]:
        fail(f["path"], f["error"])
    say(f"wrote {out or run_dir / 'eval'}/report.json, report.md and plots")
    raise typer.Exit(1 if report["failures"] else 0)


def predict_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder of any task (or a feature probe)."),
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or globs; videos (and, for "
                                       "detection, segmentation or captioning runs, streams and image sequences)."),
    top_k: int = TopKOpt,
    out: Optional[Path] = out_file(VIDEO_KINDS),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                             help="Images per forward pass [default: the task's own]."),
    fps: Optional[float] = FpsOpt,
    every: Optional[int] = EveryOpt,
    start: Optional[float] = StartOpt,
    end: Optional[float] = EndOpt,
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    calibration: Optional[str] = CalibrationOpt,
    quiet: bool = QuietOpt,
):
    """Run a saved run on images: labels (as `classify` prints them), or for a detection,
    segmentation or captioning run the JSON of its task's own `predict`; videos frame by frame.

    Example: visionzoo predict runs/flowers new_photos/ --out predictions.csv
    """
    from ..batch.reader import frame_items
    from ..data.video import frame_fields
    from ..prediction import check_precision, predict_any
    from ..tasks.registry import task_of
    from ..video import VideoOptions, predict_videos
    from .videos import finish, split

    check_precision(run_dir, precision)
    listed = results.listed(inputs, videos=True)
    sampling = video_sampling(fps, every, start, end)
    if task_of(run_dir) == "classify":     # frames of video files, as `classify` takes them
        rows = predict_any(run_dir, frame_items(listed.files, sampling), top_k=top_k, batch_size=batch_size,
                           workers=workers, device=device, progress=show_progress(quiet), precision=precision,
                           calibration=calibration)
        rows = [{"path": r["path"], **frame_fields(r["path"]), **r} for r in rows]
        _print_table(rows, f"{run_dir}: top-{top_k}")
        raise typer.Exit(results.finish(rows, out, listed.skipped))
    images, sources = split(listed.files)
    rows = predict_any(run_dir, images, top_k=top_k, batch_size=batch_size, workers=workers, device=device,
                       progress=show_progress(quiet), precision=precision, calibration=calibration) if images else []
    options = VideoOptions(sampling, batch_size=batch_size or 4, progress=show_progress(quiet), log=say)
    frames = predict_videos(run_dir, sources, options=options, device=device) if sources else ()
    raise typer.Exit(finish(rows, frames, out, listed.skipped, stdout_json=True))


for target in (classify_app, app):
    command(target, "train", TRAIN_RENAMES)(train_cmd)
    command(target, "evaluate")(evaluate_cmd)
    command(target, "predict")(predict_cmd)
