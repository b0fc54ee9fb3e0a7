"""`visionzoo segment ...`: thin commands over visionzoo.tasks.segment."""
from __future__ import annotations

import typer

from ._app import app

segment_app = typer.Typer(help="Semantic segmentation (U-Net, DeepLabV3+, FPN): train, predict, evaluate (issue 10).", no_args_is_help=True)
app.add_typer(segment_app, name="segment")
