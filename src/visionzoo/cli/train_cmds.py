"""`visionzoo train`, `visionzoo evaluate`, `visionzoo predict`: thin wrappers over the API."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import (QuietOpt, app, console, err_console, print_predictions, report_failures, show_progress,
                   write_results)


def _say(msg: str) -> None:
    err_console.print(msg, highlight=False, markup=False)


def _print_report(report: dict) -> None:
    from rich.table import Table

    from ..eval.report import summary_line

    table = Table(title=summary_line(report))
    for col in ("class", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for label, m in report["per_class"].items():
        table.add_row(label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    console.print(table)


@app.command()
def train(
    data: Path = typer.Argument(..., help="Class folders (with or without train/ val/ test/), or a CSV of path,label."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (model, config, history, report)."),
    model: str = typer.Option("auto", "--model", "-m",
                              help="Zoo name, timm/torchvision name or run folder; auto: the bundled backbones, "
                                   "chosen by cross-validation (or a comma list of candidates)."),
    strategy: str = typer.Option("auto", "--strategy", "-s",
                                 help="auto | linear | finetune | scratch. auto: a linear head with flip TTA, backbone "
                                      "and regularisation chosen by k-fold CV on the training images."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1,
                                         help="Total epochs, head phase included [default: linear 100, finetune 12, scratch 60]."),
    head_epochs: int = typer.Option(2, "--head-epochs", min=0, help="finetune: epochs training only the new head."),
    freeze: int = typer.Option(2, "--freeze", min=0, help="finetune: leading blocks (stem first) kept frozen."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate of the head [default: 1e-3]."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input size [default: the model's own]."),
    val_split: float = typer.Option(0.2, "--val-split", help="Held-out fraction when DATA has no val/ (0 = none)."),
    patience: Optional[int] = typer.Option(None, "--patience", min=1, help="Early stopping patience in epochs."),
    cv: Optional[int] = typer.Option(None, "--cv", min=2, help="K-fold cross-validation (runs in OUT/fold_i)."),
    time_budget: float = typer.Option(240.0, "--time-budget",
                                      help="auto: seconds for the run; backbones that would not fit are skipped."),
    resume: bool = typer.Option(False, "--resume", help="Continue a stopped run from its last completed epoch."),
    seed: int = typer.Option(0, "--seed"),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Decoding processes [default: auto]."),
    num_workers: int = typer.Option(1, "--num-workers", min=1,
                                    help="Data-parallel training processes (DDP), each on a slice of every batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    quiet: bool = QuietOpt,
):
    """Train a classifier on your labelled images (transfer learning or from scratch)."""
    from ..training import train as run_train

    result = run_train(data, out, resume=resume, progress=show_progress(quiet), log=_say, model=model,
                       strategy=strategy, epochs=epochs, head_epochs=head_epochs, freeze=freeze, lr=lr,
                       batch_size=batch_size, image_size=image_size, val_split=val_split, patience=patience,
                       cv=cv, time_budget=time_budget, seed=seed, workers=workers, num_workers=num_workers,
                       device=device)
    if "report" in result:
        _print_report(result["report"])
        failed = result["config"]["dataset"]["failures"]
        raise typer.Exit(1 if failed else 0)
    raise typer.Exit(0)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder written by `visionzoo train`."),
    data: Path = typer.Argument(..., help="Class folders (test/ or val/ used if present) or a CSV of path,label."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder [default: RUN_DIR/eval]."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    workers: Optional[int] = typer.Option(None, "--workers", min=0),
    device: str = typer.Option("auto", "--device"),
    quiet: bool = QuietOpt,
):
    """Accuracy, macro F1, per-class precision/recall/F1, confusion matrix, misclassified images."""
    from ..eval import evaluate as run_evaluate

    report = run_evaluate(run_dir, data, out=out, batch_size=batch_size, workers=workers, device=device,
                          progress=show_progress(quiet))
    _print_report(report)
    for f in report["failures"]:
        _say(f"failed {f['path']}: {f['error']}")
    _say(f"wrote {out or run_dir / 'eval'}/report.json, report.md and plots")
    raise typer.Exit(1 if report["failures"] else 0)


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A run folder written by `visionzoo train` (or a feature probe)."),
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Labels per image."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results to FILE.json or FILE.csv."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    workers: Optional[int] = typer.Option(None, "--workers", min=0),
    device: str = typer.Option("auto", "--device"),
    quiet: bool = QuietOpt,
):
    """Run any saved run on images: labels (same output as `classify`), or the JSON of its task's own
    `predict` command for detection, segmentation and captioning runs."""
    from ..data import expand_inputs
    from ..prediction import predict as run_predict, predict_any
    from ..tasks.registry import task_of

    listed = expand_inputs(inputs)
    if task_of(run_dir) != "classify":
        rows = predict_any(run_dir, listed.files, workers=workers, device=device, progress=show_progress(quiet))
        if out is not None:
            from ..atomic import write_json

            write_json(out, rows)
            _say(f"wrote {out}")
        else:
            console.print_json(data=rows)
        raise typer.Exit(report_failures(rows, listed.skipped))
    results = run_predict(run_dir, listed.files, top_k=top_k, batch_size=batch_size, workers=workers, device=device,
                          progress=show_progress(quiet))
    print_predictions(results, title=f"{run_dir}: top-{top_k}")
    write_results(results, out)
    raise typer.Exit(report_failures(results, listed.skipped))
