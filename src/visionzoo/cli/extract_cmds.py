"""`visionzoo extract`."""
from __future__ import annotations

from typing import List, Optional

import typer

from ._app import (
    CalibrationOpt,
    DeviceOpt,
    EndOpt,
    EngineOpt,
    EveryOpt,
    FpsOpt,
    PrecisionOpt,
    ProcessesHelp,
    QuietOpt,
    RayAddressOpt,
    ResumeOpt,
    StartOpt,
    WorkersOpt,
    app,
    command,
    err_console,
    fail,
    show_progress,
)
from .zoo_cmds import NormOpt, PoolOpt


@command(app, "extract", {"--num-workers": "--processes"})
def extract(
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or globs; video files (a row "
                                       "per sampled frame, keyed PATH#t=SECONDS)."),
    out: str = typer.Option(..., "--out", "-o", help="Feature file: a Parquet folder (default), FILE.npy or "
                            "FILE.pkl, a local path or a URI (s3://bucket/feats.parquet, gs://, hdfs://). "
                            "With several models, a folder with one file per model."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Zoo name, timm/torchvision name or run "
                                        "folder; several as a,b (each image decoded once) [default: efficientnet_lite0]."),
    layer: str = typer.Option("pre_logits", "--layer", "-l", help="pre_logits (pooled penultimate), logits, or a "
                              "stage name from `visionzoo layers MODEL`."),
    pool: Optional[str] = PoolOpt,
    normalize: bool = NormOpt,
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="parquet, npy or pkl [default: from OUT's "
                                      "suffix, else parquet]."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or float16."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Images per forward pass [default: "
                                             "8 per CPU pipeline, else 16]."),
    workers: Optional[int] = WorkersOpt,
    backend: str = typer.Option("auto", "--backend", help="auto (ONNX Runtime on CPU, PyTorch on GPU), torch, onnx."),
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    calibration: Optional[str] = CalibrationOpt,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Inference threads; on CPU, ONNX Runtime "
                                          "pipelines that each decode and run their own batches [default: all cores]."),
    partition_size: int = typer.Option(1024, "--partition-size", min=1, help="Images per shard (resume unit)."),
    resume: bool = ResumeOpt,
    engine: str = EngineOpt,
    ray_address: Optional[str] = RayAddressOpt,
    processes: Optional[int] = typer.Option(None, "--processes", min=1, help=ProcessesHelp),
    fps: Optional[float] = FpsOpt,
    every: Optional[int] = EveryOpt,
    start: Optional[float] = StartOpt,
    end: Optional[float] = EndOpt,
    quiet: bool = QuietOpt,
):
    """Features of many images (and of video frames) into a feature file, streamed in shards, resumable
    after a crash.

    Example: visionzoo extract photos/ --out feats.parquet
    """
    from ..batch import extract as run_extract
    from .videos import sampling

    result = run_extract(inputs, out, model, layer=layer, pool=pool, normalize=normalize, format=fmt, dtype=dtype,
                         batch_size=batch_size, workers=workers, backend=backend, device=device, threads=threads,
                         resume=resume, partition_size=partition_size, progress=show_progress(quiet),
                         engine=engine, ray_address=ray_address, num_workers=processes,
                         sampling=sampling(fps, every, start, end), precision=precision, calibration=calibration)
    for path, reason in result.failures:
        fail(path, reason)
    if result.skipped:
        err_console.print(f"skipped {len(result.skipped)} file(s) without an image extension under the input "
                          f"folders (e.g. {result.skipped[0]})", highlight=False)
    err_console.print(f"{result.count} of {result.total} image(s) in {', '.join(result.outputs)} ({result.computed} computed now "
        f"in {result.seconds:.1f}s; backend {', '.join(result.backends)}); {len(result.failures)} failed.", highlight=False)
    raise typer.Exit(result.exit_code)
