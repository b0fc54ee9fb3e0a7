"""`visionzoo demo`: the main job, offline, on bundled photos."""
from __future__ import annotations

from pathlib import Path

import typer

from ._app import QuietOpt, app, console, folder_check


@app.command()
def demo(out: Path = typer.Option(Path("visionzoo-demo"), "--out", "-o", callback=folder_check("--out"), help="Output folder."),
         quiet: bool = QuietOpt):
    """Run every feature once on bundled sample photos with the offline default model.

    Example: visionzoo demo --out visionzoo-demo
    """
    from ..demo import run_demo

    raise typer.Exit(run_demo(out, console=console))
