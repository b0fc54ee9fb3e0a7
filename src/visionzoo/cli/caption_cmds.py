"""`visionzoo caption ...`: thin commands over visionzoo.tasks.caption."""
from __future__ import annotations

import typer

from ._app import app

caption_app = typer.Typer(help="Image captioning (CNN encoder + LSTM decoder): train, predict, evaluate (issue 12).", no_args_is_help=True)
app.add_typer(caption_app, name="caption")
