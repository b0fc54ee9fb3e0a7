"""`predict`: what a saved run (of any task) or a feature probe says about new images."""
from __future__ import annotations

import os
from typing import Any, Sequence

from .errors import UsageError
from .tasks.classify import ImageResult, classify
from .tasks.registry import predict as predict_task
from .tasks.registry import run_task
from .zoo.rundir import is_run_dir

Inputs = str | os.PathLike | Sequence[str | os.PathLike]


def check_precision(run_dir: str | os.PathLike, precision: str) -> None:
    """int8 runs classification models only: a probe embeds new images as its feature file was made
    (its precision included), and the other tasks' networks are not quantized (yet)."""
    from .downstream import probe
    from .runtime.quantize import check_precision as known

    if known(precision) == "fp32":
        return
    if probe.is_probe_dir(run_dir):
        raise UsageError(f"--precision int8 applies to classification runs and zoo models; {run_dir} is a probe, "
                         f"which embeds new images as its feature file was made (its precision included): drop "
                         f"--precision")
    if is_run_dir(run_dir) and run_task(run_dir) != "classify":
        raise UsageError(f"--precision int8 applies to classification runs and zoo models; {run_dir} is a "
                         f"{run_task(run_dir)} run")


def predict(run_dir: str | os.PathLike, inputs: Inputs, top_k: int = 5, *, batch_size: int = 32,
            workers: int | None = None, device: str = "auto", progress: bool = False, precision: str = "fp32",
            calibration: str | os.PathLike | None = None) -> list[ImageResult]:
    """Top-k of the run's own labels for files, folders or globs; one ImageResult per file.

    A folder written by `train` runs its saved model (through `classify`, so decoding and bad
    files are handled identically; `precision="int8"` quantized on `calibration`); a probe folder
    fitted on stored features runs that probe."""
    from .downstream import probe

    check_precision(run_dir, precision)
    if probe.is_probe_dir(run_dir):
        return probe.predict_probe(run_dir, inputs, top_k=top_k, batch_size=batch_size, workers=workers,
                                   device=device, progress=progress)
    if not is_run_dir(run_dir):
        raise UsageError(f"{run_dir} is not a saved run (a folder written by `visionzoo train`)")
    task = run_task(run_dir)
    if task != "classify":
        raise UsageError(f"{run_dir} is a {task} run: use predict_any, or `visionzoo predict`")
    return classify(inputs, model=run_dir, top_k=top_k, batch_size=batch_size, workers=workers, device=device,
                    progress=progress, precision=precision, calibration=calibration)


def predict_any(run_dir: str | os.PathLike, inputs: Inputs, *, top_k: int = 5, batch_size: int | None = None,
                workers: int | None = None, device: str = "auto", progress: bool = False, precision: str = "fp32",
                calibration: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Any saved run (classification, detection, segmentation, captioning...) or probe on files,
    folders or globs: one JSON-able dict per file with "path" and "error", shaped as that task's own
    command writes it. The run's config.json "task" picks the package (tasks/registry.py)."""
    check_precision(run_dir, precision)
    if is_run_dir(run_dir) and run_task(run_dir) != "classify":
        options: dict[str, Any] = {"workers": workers, "device": device, "progress": progress}
        if batch_size is not None:
            options["batch_size"] = batch_size
        return predict_task(run_dir, inputs, **options)
    results = predict(run_dir, inputs, top_k=top_k, batch_size=batch_size or 32, workers=workers, device=device,
                      progress=progress, precision=precision, calibration=calibration)
    return [r.to_dict() for r in results]
