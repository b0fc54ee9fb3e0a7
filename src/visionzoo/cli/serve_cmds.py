"""`visionzoo serve`: thin command over visionzoo.serve."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import CalibrationOpt, DeviceOpt, PrecisionOpt, QuietOpt, app


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs a key "
                             "($VISIONZOO_API_KEY or --key-file), else it refuses to start."),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535),
    model: Optional[List[str]] = typer.Option(
        None, "--model", "-m", help="Repeatable. Zoo name or run folder (any task: its config.json decides), or "
        "TASK:NAME for task models by name (faces, faces:dlib, detect:NAME), with ,key=value options; "
        "default: efficientnet_lite0 (offline)."),
    index: Optional[Path] = typer.Option(None, "--index", help="Search index folder from `visionzoo index` "
                                         "(enables /v1/search and similar images on the page)."),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="Require the key in this file (X-API-Key "
                                            "header) on every /v1 call; or set $VISIONZOO_API_KEY."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="The key on the command line, where `ps` shows "
                                          "it (warns): prefer $VISIONZOO_API_KEY or --key-file."),
    insecure_no_key: bool = typer.Option(False, "--insecure-no-key", help="Serve a non-loopback --host without "
                                         "a key: anyone who reaches the port can use it."),
    allow_host: Optional[List[str]] = typer.Option(None, "--allow-host", help="Repeatable. A Host name (and "
                                                   "browser origin) to answer besides loopback and IP addresses; "
                                                   "'*' for any (behind a proxy that checks it)."),
    max_upload_mb: float = typer.Option(25.0, "--max-upload-mb", help="Largest request body (413 beyond)."),
    max_pixels: int = typer.Option(50_000_000, "--max-pixels", help="Largest image or video frame in pixels, from "
                                   "its header (413 beyond; stops decompression bombs); also the decoded pixels "
                                   "held at once across requests."),
    max_frames: int = typer.Option(200_000, "--max-frames", help="Most frames a video's header may declare "
                                   "(413 beyond)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Most images per forward pass, across requests."),
    batch_window_ms: float = typer.Option(5.0, "--batch-window-ms", min=0,
                                          help="How long a batch waits for more requests."),
    timeout: float = typer.Option(30.0, "--timeout", help="Per-request deadline in seconds, videos too (504 "
                                  "beyond; the work stops)."),
    video_jobs: Optional[int] = typer.Option(None, "--video-jobs", min=1, help="Videos decoded at once; others "
                                             "queue [default: half the cores]."),
    max_connections: int = typer.Option(256, "--max-connections", min=1, help="Open connections; past it the "
                                        "oldest idle one is closed (503 if none is idle)."),
    max_connections_per_client: int = typer.Option(32, "--max-connections-per-client", min=1,
                                                   help="The same, per client address."),
    header_timeout: float = typer.Option(10.0, "--header-timeout", help="Seconds a request's header may take "
                                         "to arrive (then the connection is closed)."),
    body_timeout: float = typer.Option(120.0, "--body-timeout", help="Seconds its body may take after the header."),
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
    import sys

    from ..serve.config import ServeConfig, resolve_key

    key, warning = resolve_key(api_key, key_file)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    config = ServeConfig(models=list(model or []), index=index, host=host, port=port, api_key=key,
                         insecure_no_key=insecure_no_key, allow_hosts=list(allow_host or []),
                         max_upload_mb=max_upload_mb, max_pixels=max_pixels, max_frames=max_frames,
                         max_batch=batch_size, batch_window_ms=batch_window_ms, timeout_s=timeout,
                         video_jobs=video_jobs, max_connections=max_connections,
                         max_connections_per_client=max_connections_per_client, header_timeout_s=header_timeout,
                         body_timeout_s=body_timeout, backend=backend, device=device, threads=threads,
                         precision=precision, calibration=calibration,
                         log_level="warning" if quiet else "info")
    config.check()      # before torch and the models load: an exposed bind without a key stops at once
    from ..serve import run

    run(config)
