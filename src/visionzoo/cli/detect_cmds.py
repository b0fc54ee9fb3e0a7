"""`visionzoo detect ...`: thin commands over visionzoo.tasks.detect."""
from __future__ import annotations

import typer

from ._app import app

detect_app = typer.Typer(help="Object detection and instance segmentation: train, predict, evaluate (issue 9).", no_args_is_help=True)
app.add_typer(detect_app, name="detect")
