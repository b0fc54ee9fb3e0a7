"""`visionzoo models`, `visionzoo layers`, `visionzoo export`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import QuietOpt, app, console, wrote

PoolOpt = typer.Option(None, "--pool", help="Pooling of a feature map: avg (default), max, avgmax, gem, none.")
NormOpt = typer.Option(False, "--normalize", help="Scale each feature vector to unit length (L2).")


@app.command()
def models(
    pattern: Optional[str] = typer.Argument(None, help="Wildcard or substring, e.g. 'resnet*' or 'lite'."),
    offline: bool = typer.Option(False, "--offline", help="Only models usable right now without network."),
    quiet: bool = QuietOpt,
):
    """List models: name, aliases, parameters, input size, offline availability, ImageNet top-1.

    Example: visionzoo models 'resnet*'
    """
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
def layers(model: Optional[str] = typer.Argument(None, help="Model name or run folder [default: efficientnet_lite0]."),
           quiet: bool = QuietOpt):
    """The layers `extract --layer` takes, with their channels and size reduction.

    Example: visionzoo layers resnet_v1_50
    """
    from rich.table import Table

    from ..tasks.embed import list_layers

    table = Table(title=f"layers of {model or 'efficientnet_lite0'}")
    for col in ("layer", "features", "reduction", "output shape"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for info in list_layers(model):
        table.add_row(info.name, str(info.channels), f"{info.reduction}x" if info.reduction else "-",
                      "x".join(map(str, info.shape)))
    console.print(table)


@app.command("export")
def export_cmd(
    model: str = typer.Argument(..., help="Model name or run folder (of any task)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file, e.g. model.onnx."),
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx."),
    layer: str = typer.Option("logits", "--layer", "-l", help="Classifiers: logits (default), pre_logits or a stage name."),
    pool: Optional[str] = PoolOpt,
    normalize: bool = NormOpt,
    quiet: bool = QuietOpt,
):
    """Export a model (or one layer of it) to ONNX for deployment, checked against PyTorch.

    Example: visionzoo export efficientnet_lite0 --out lite0.onnx
    """
    from ..tasks.registry import export

    wrote(f"{export(model, out, format=fmt, layer=layer, pool=pool, normalize=normalize)} (its inputs, outputs, "
          f"labels and preprocessing are in its 'visionzoo' metadata)")
