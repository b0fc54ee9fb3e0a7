"""`classify` on either engine: here (`local`), or slices of the files as Ray tasks on a cluster."""
from __future__ import annotations

import os
from typing import Sequence

from ..data.video import Sampling
from ..tasks.classify import ImageResult, ModelArg
from ..tasks.classify import classify as classify_here
from .config import check_engine
from .reader import frame_items


def classify(inputs: str | os.PathLike | Sequence[str | os.PathLike], model: ModelArg = None, *, top_k: int = 5,
             weights: str | os.PathLike | None = None, batch_size: int = 32, workers: int | None = None,
             device: str = "auto", progress: bool = False, engine: str = "local", ray_address: str | None = None,
             num_workers: int | None = None, sampling: Sampling | None = None, precision: str = "fp32",
             calibration: str | os.PathLike | None = None) -> list[ImageResult]:
    """Classify files, folders (recursive) or globs; one ImageResult per file, in sorted order, and
    one per sampled frame of each video (`PATH#t=SECONDS`, in time order).
    `engine="ray"` classifies slices of the files as Ray tasks (`ray_address`, `num_workers` at once).
    `precision="int8"`: the quantized ONNX export on the CPU (local engine)."""
    from ..data import expand_inputs
    from ..errors import UsageError
    from ..runtime.quantize import check_precision

    check_engine(engine)
    if check_precision(precision) != "fp32" and engine != "local":
        raise UsageError("--precision int8 runs with --engine local only (for now)")
    files = frame_items(expand_inputs(inputs, videos=True).files, (sampling or Sampling()).check())
    if engine == "local":
        return classify_here(files, model, top_k=top_k, weights=weights, batch_size=batch_size, workers=workers,
                             device=device, progress=progress, precision=precision, calibration=calibration)
    from .ray_engine import classify_on_ray

    return classify_on_ray(files, model, top_k=top_k, weights=weights, batch_size=batch_size,
                           workers=workers, device=device, ray_address=ray_address, num_workers=num_workers,
                           progress=progress)
