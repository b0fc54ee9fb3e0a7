"""`visionzoo models` and `visionzoo classify`."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import (ModelOpt, QuietOpt, WeightsOpt, app, console, print_predictions, report_failures,
                   show_progress, write_results)
from .extract_cmds import EngineOpt, NumWorkersOpt, RayAddressOpt


@app.command()
def models(
    pattern: Optional[str] = typer.Argument(None, help="Wildcard or substring, e.g. 'resnet*' or 'lite'."),
    offline: bool = typer.Option(False, "--offline", help="Only models usable right now without network."),
):
    """List models: name, aliases, parameters, input size, offline availability, ImageNet top-1."""
    from rich.table import Table

    from .. import list_models

    rows = [r for r in list_models(pattern) if r.offline or not offline]
    table = Table(title=f"{len(rows)} model(s)")
    for col in ("name", "weights", "aliases", "params (M)", "input", "offline", "top-1"):
        table.add_column(col, justify="right" if col in ("params (M)", "input", "top-1") else "left")
    for r in rows:
        table.add_row(
            r.name, r.target, ", ".join(r.aliases), f"{r.params_m:.1f}" if r.params_m else "-",
            str(r.input_size), "yes" if r.offline else "no", f"{r.top1:.2f}" if r.top1 else "-",
        )
    console.print(table)


@app.command()
def classify(
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    model: Optional[str] = ModelOpt,
    weights: Optional[Path] = WeightsOpt,
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Labels per image."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results to FILE.json or FILE.csv."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Draw images with top-k bar charts to FILE.png."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Decoding processes [default: auto]."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    engine: str = EngineOpt,
    ray_address: Optional[str] = RayAddressOpt,
    num_workers: Optional[int] = NumWorkersOpt,
    quiet: bool = QuietOpt,
):
    """Top-k ImageNet labels (or a saved run's labels) with probabilities."""
    from .. import classify as run_classify
    from ..data import expand_inputs

    listed = expand_inputs(inputs)
    results = run_classify(listed.files, model=model, weights=weights, top_k=top_k, batch_size=batch_size,
                           workers=workers, device=device, progress=show_progress(quiet), engine=engine,
                           ray_address=ray_address, num_workers=num_workers)
    print_predictions(results, title=f"{model or 'efficientnet_lite0'}: top-{top_k}")
    write_results(results, out)
    if grid:
        from ..viz.grid import topk_grid

        console.print(f"wrote {topk_grid(results, grid)}")
    raise typer.Exit(report_failures(results, listed.skipped))
