"""`visionzoo extract`, `visionzoo layers`, `visionzoo export`."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import QuietOpt, app, console, err_console, show_progress

LayerOpt = typer.Option("pre_logits", "--layer", "-l", help="pre_logits (pooled penultimate), logits, or a "
                        "stage name from `visionzoo layers MODEL`.")
PoolOpt = typer.Option(None, "--pool", help="Pooling of a feature map: avg (default), max, avgmax, gem, none.")
NormOpt = typer.Option(False, "--normalize", help="Scale each feature vector to unit length (L2).")
EngineOpt = typer.Option("local", "--engine", help="local, or ray: the same partitions as Ray tasks on a "
                         "cluster (pip install 'visionzoo\\[ray]'), same output.")
RayAddressOpt = typer.Option(None, "--ray-address", help="--engine ray: auto, HOST:6379 or ray://HOST:10001 "
                             "(default: $RAY_ADDRESS, else a local Ray for this run).")
NumWorkersOpt = typer.Option(None, "--num-workers", min=1, help="--engine ray: tasks at once (default: one per "
                             "GPU, else one per node).")


@app.command()
def extract(
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or globs."),
    out: str = typer.Option(..., "--out", "-o", help="Feature file: a Parquet folder (default), FILE.npy or "
                            "FILE.pkl, a local path or a URI (s3://bucket/feats.parquet, gs://, hdfs://). "
                            "With several models, a folder with one file per model."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Zoo name, timm/torchvision name or run "
                                        "folder; several as a,b (each image decoded once) [default: efficientnet_lite0]."),
    layer: str = LayerOpt,
    pool: Optional[str] = PoolOpt,
    normalize: bool = NormOpt,
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="parquet, npy or pkl [default: from OUT's "
                                      "suffix, else parquet]."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or float16."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Images per inference call [default: 8 per CPU pipeline, else 16]."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Decoding threads beside PyTorch inference "
                                          "(ONNX Runtime pipelines decode their own) [default: auto]."),
    backend: str = typer.Option("auto", "--backend", help="auto (ONNX Runtime on CPU, PyTorch on GPU), torch, onnx."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Inference threads; on CPU, ONNX Runtime "
                                          "pipelines that each decode and run their own batches [default: all cores]."),
    partition_size: int = typer.Option(1024, "--partition-size", min=1, help="Images per shard (resume unit)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run (or add nothing to a done one)."),
    engine: str = EngineOpt,
    ray_address: Optional[str] = RayAddressOpt,
    num_workers: Optional[int] = NumWorkersOpt,
    quiet: bool = QuietOpt,
):
    """Features of many images into a feature file, streamed in shards, resumable after a crash."""
    from ..batch import extract as run_extract

    result = run_extract(inputs, out, model, layer=layer, pool=pool, normalize=normalize, format=fmt, dtype=dtype,
                         batch_size=batch_size, workers=workers, backend=backend, device=device, threads=threads,
                         resume=resume, partition_size=partition_size, progress=show_progress(quiet),
                         engine=engine, ray_address=ray_address, num_workers=num_workers)
    for path, reason in result.failures:
        err_console.print(f"[red]failed[/red] {path}: {reason}", highlight=False)
    if result.skipped:
        err_console.print(f"skipped {len(result.skipped)} file(s) without an image extension under the input "
                          f"folders (e.g. {result.skipped[0]})", highlight=False)
    err_console.print(
        f"{result.count} of {result.total} image(s) in {', '.join(result.outputs)} "
        f"({result.computed} computed now in {result.seconds:.1f}s; backend {', '.join(result.backends)}); "
        f"{len(result.failures)} failed.", highlight=False)
    raise typer.Exit(result.exit_code)


@app.command()
def layers(model: Optional[str] = typer.Argument(None, help="Model name or run folder [default: efficientnet_lite0].")):
    """The layers `extract --layer` takes, with their channels and size reduction."""
    from rich.table import Table

    from ..tasks.embed import list_layers

    table = Table(title=f"layers of {model or 'efficientnet_lite0'}")
    for col in ("layer", "features", "reduction", "output shape"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for info in list_layers(model):
        table.add_row(info.name, str(info.channels), f"{info.reduction}x" if info.reduction else "-",
                      "x".join(map(str, info.shape)))
    console.print(table)


@app.command("export")
def export_cmd(
    model: str = typer.Argument(..., help="Model name or run folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file, e.g. model.onnx."),
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx."),
    layer: str = typer.Option("logits", "--layer", "-l", help="logits (default), pre_logits or a stage name."),
    pool: Optional[str] = PoolOpt,
    normalize: bool = NormOpt,
):
    """Export a model (or one layer of it) to ONNX for deployment, checked against PyTorch."""
    from ..deploy import export

    path = export(model, out, format=fmt, layer=layer, pool=pool, normalize=normalize)
    console.print(f"wrote {path} (its inputs, outputs, labels and preprocessing are in its 'visionzoo' metadata)",
                  highlight=False)
