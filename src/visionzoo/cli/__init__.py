"""Command line: `visionzoo ...`. Each command's module registers it on the shared typer app, imported
only when that command runs (_app.COMMAND_MODULES): a command starts without the code of the others."""
from __future__ import annotations

from typing import Any

from . import _app


def main() -> None:
    _app.stop_on_sigterm()
    _app.app(prog_name="visionzoo")


def __getattr__(name: str) -> Any:
    """`from visionzoo.cli import app`: the app with every command registered (for CliRunner, scripts, the docs)."""
    if name == "app":
        _app.load_commands()
        return _app.app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
