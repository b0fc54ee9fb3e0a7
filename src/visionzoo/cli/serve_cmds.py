"""`visionzoo serve`: thin command over visionzoo.serve."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import CalibrationOpt, DeviceOpt, PrecisionOpt, QuietOpt, app


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs --api-key "
                             "(else a loud warning)."),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535),
    model: Optional[List[str]] = typer.Option(
        None, "--model", "-m", help="Repeatable. Zoo name or run folder (any task: its config.json decides), or "
        "TASK:NAME for task models by name (faces, faces:dlib, detect:NAME), with ,key=value options; "
        "default: efficientnet_lite0 (offline)."),
    index: Optional[Path] = typer.Option(None, "--index", help="Search index folder from `visionzoo index` "
                                         "(enables /v1/search and similar images on the page)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="VISIONZOO_API_KEY",
                                          help="Require this key (X-API-Key header) on every /v1 call."),
    max_upload_mb: float = typer.Option(25.0, "--max-upload-mb", help="Largest request body (413 beyond)."),
    max_pixels: int = typer.Option(50_000_000, "--max-pixels", help="Largest image in pixels (413 beyond; "
                                   "stops decompression bombs)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Most images per forward pass, across requests."),
    batch_window_ms: float = typer.Option(5.0, "--batch-window-ms", min=0,
                                          help="How long a batch waits for more requests."),
    timeout: float = typer.Option(30.0, "--timeout", help="Per-request deadline in seconds (504 beyond)."),
    backend: str = typer.Option("auto", "--backend", help="auto (ONNX Runtime on CPU, PyTorch on GPU), torch, onnx."),
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    calibration: Optional[str] = CalibrationOpt,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Inference threads [default: all cores]."),
    quiet: bool = QuietOpt,
):
    """HTTP API (/v1, docs at /docs) and a web page at / to try the models by dropping a photo.

    Example: visionzoo serve --model efficientnet_lite0 --model runs/raccoon --port 8000
    """
    from ..serve import ServeConfig, run

    run(ServeConfig(models=list(model or []), index=index, host=host, port=port, api_key=api_key,
                    max_upload_mb=max_upload_mb, max_pixels=max_pixels, max_batch=batch_size,
                    batch_window_ms=batch_window_ms, timeout_s=timeout, backend=backend, device=device,
                    threads=threads, precision=precision, calibration=calibration,
                    log_level="warning" if quiet else "info"))
