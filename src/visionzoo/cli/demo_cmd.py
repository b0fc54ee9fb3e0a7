"""`visionzoo demo`: the main job, offline, on bundled photos."""
from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, console


@app.command()
def demo(out: Path = typer.Option(Path("visionzoo-demo"), "--out", "-o", help="Output folder.")):
    """Run every feature once on bundled sample photos with the offline default model."""
    from ..demo import run_demo

    status = run_demo(out, console=console)
    raise typer.Exit(status)
