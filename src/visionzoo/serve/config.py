"""What one server runs with, as one object, and the check that warns before exposing it."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


@dataclass
class ServeConfig:
    """Options of `visionzoo serve` (and of `create_app` / `run` in Python).

    `models` holds names, run folders (any task: the folder's config.json "task" decides),
    `TASK:NAME` for task models by name (e.g. `faces`, `faces:dlib`, `detect:fasterrcnn_resnet50_fpn_v2`),
    optionally followed by `,key=value` options for the task's `load_predictor`; an already loaded
    classification `nn.Module` or task Predictor (an object with `task` and `__call__`) works too. Empty: the offline default classifier.
    """

    models: list[Any] = field(default_factory=list)
    index: str | os.PathLike | None = None       # a `visionzoo index` folder (or a feature file)
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_upload_mb: float = 25.0                  # whole request body; larger -> 413
    max_pixels: int = 50_000_000                 # per image (decompression bombs); larger -> 413
    max_files: int = 32                          # images per request
    max_batch: int = 32                          # images per forward pass across requests
    batch_window_ms: float = 5.0                 # how long the first image of a batch waits for others
    max_queue: int = 512                         # images waiting per model before 503
    timeout_s: float = 30.0                      # per request; past it -> 504
    max_connections: int = 256                   # uvicorn answers 503 beyond this
    backend: str = "auto"                        # auto (ONNX Runtime on CPU), torch, onnx
    device: str = "auto"
    threads: int | None = None                   # inference threads [default: all cores]
    precision: str = "fp32"                      # int8: classifiers run their quantized ONNX export (CPU)
    calibration: str | os.PathLike | None = None  # int8: calibration photos [default: the bundled ones]
    log_level: str = "info"

    def check(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port {self.port} is not between 0 and 65535")
        for name in ("max_upload_mb", "max_pixels", "max_files", "max_batch", "max_queue", "timeout_s"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name.replace('_', '-')} must be positive")
        if self.batch_window_ms < 0:
            raise UsageError("batch-window-ms must be >= 0")
        if self.api_key is not None and len(self.api_key) < 8:
            raise UsageError("the API key is too short to protect anything (use at least 8 characters)")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """The loud warning for a server reachable from other machines with no key, else None."""
    if is_loopback(host) or api_key:
        return None
    bar = "!" * 78
    return (f"{bar}\n!! WARNING: serving on {host}, reachable from other machines, WITHOUT an API key.\n"
            f"!! Anyone who can reach this port can run the models and see the indexed images.\n"
            f"!! Pass --api-key KEY (or set VISIONZOO_API_KEY), or bind to 127.0.0.1.\n{bar}")
