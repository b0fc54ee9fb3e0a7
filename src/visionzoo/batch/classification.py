"""`classify` on either engine: here (`local`), or slices of the files as Ray tasks on a cluster."""
from __future__ import annotations

import os
from typing import Sequence

from ..tasks.classify import ImageResult, ModelArg
from ..tasks.classify import classify as classify_here
from .config import check_engine


def classify(inputs: str | os.PathLike | Sequence[str | os.PathLike], model: ModelArg = None, *, top_k: int = 5,
             weights: str | os.PathLike | None = None, batch_size: int = 32, workers: int | None = None,
             device: str = "auto", progress: bool = False, engine: str = "local", ray_address: str | None = None,
             num_workers: int | None = None) -> list[ImageResult]:
    """Classify files, folders (recursive) or globs; one ImageResult per file, in sorted order.
    `engine="ray"` classifies slices of the files as Ray tasks (`ray_address`, `num_workers` at once)."""
    check_engine(engine)
    if engine == "local":
        return classify_here(inputs, model, top_k=top_k, weights=weights, batch_size=batch_size, workers=workers,
                             device=device, progress=progress)
    from ..data import expand_inputs
    from .ray_engine import classify_on_ray

    return classify_on_ray(expand_inputs(inputs).files, model, top_k=top_k, weights=weights, batch_size=batch_size,
                           workers=workers, device=device, ray_address=ray_address, num_workers=num_workers,
                           progress=progress)
