"""Command line: `visionzoo ...`. Each module registers its commands on the shared typer app."""
from __future__ import annotations

from . import (  # noqa: F401  (register commands)  # noqa: F401  (task models)
    audit_cmds,  # noqa: F401  (audit)
    caption_cmds,
    classify_cmds,
    demo_cmd,
    detect_cmds,
    downstream_cmds,  # noqa: F401  (index, search, dedup, cluster, probe, map)
    extract_cmds,
    faces_cmds,
    segment_cmds,
    serve_cmds,  # noqa: F401  (serve)
    zoo_cmds,
)
from ._app import app, stop_on_sigterm


def main() -> None:
    stop_on_sigterm()
    app(prog_name="visionzoo")
