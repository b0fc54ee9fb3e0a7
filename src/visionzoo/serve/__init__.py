"""HTTP service and browser page: `visionzoo serve`. Imports tasks, never the reverse.

    from visionzoo.serve import create_app, run
    app = create_app(models=["efficientnet_lite0"], index="feats.index")   # an ASGI app, models loaded
    run(models=["runs/flowers"], port=8000)                                # serve until Ctrl-C
"""
from __future__ import annotations

from typing import Any

__all__ = ["ServeConfig", "create_app", "run"]


def __getattr__(name: str) -> Any:  # FastAPI and torch load only when the server is wanted
    if name in ("create_app", "run"):
        from . import app

        return getattr(app, name)
    if name == "ServeConfig":
        from .config import ServeConfig

        return ServeConfig
    raise AttributeError(f"module 'visionzoo.serve' has no attribute {name!r}")
