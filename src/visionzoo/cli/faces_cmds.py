"""`visionzoo faces ...`: thin commands over visionzoo.tasks.faces."""
from __future__ import annotations

import typer

from ._app import app

faces_app = typer.Typer(help="Faces: detect, landmarks, embed, verify, find people, 3D mesh (issue 11).", no_args_is_help=True)
app.add_typer(faces_app, name="faces")
