"""Command line: `visionzoo ...`. Each module registers its commands on the shared typer app."""
from __future__ import annotations

import sys

from ..errors import VisionZooError
from . import demo_cmd, zoo_cmds  # noqa: F401  (register commands)
from . import extract_cmds  # noqa: F401  (extract, layers, export)
from . import train_cmds  # noqa: F401  (train, evaluate, predict)
from . import downstream_cmds  # noqa: F401  (index, search, dedup, cluster, probe, map)
from . import detect_cmds, segment_cmds, faces_cmds, caption_cmds  # noqa: F401  (task models)
from . import serve_cmds  # noqa: F401  (serve)
from ._app import app, err_console


def main() -> None:
    try:
        app(standalone_mode=True)
    except VisionZooError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
