"""Embeddings: the pooled penultimate features (pre-logits) or the class scores of any zoo model.

`feature_fn` is the one definition of "what a layer is" shared by extract, train (linear probe),
search queries and classify's backbone, so every path computes the same vector.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import eval_transform, expand_inputs, iter_batches
from ..runtime import TorchRunner
from .common import ModelArg, as_model

DEFAULT_LAYER = "pre_logits"


def feature_fn(layer: str = DEFAULT_LAYER) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """(model, batch) -> (N, D) features for `layer`: "pre_logits" (default) or "logits"."""
    if layer in (DEFAULT_LAYER, "default", "features"):
        return lambda m, x: m.forward_head(m.forward_features(x), pre_logits=True).flatten(1)
    if layer == "logits":
        return lambda m, x: m(x)
    raise ValueError(f"unknown layer {layer!r}; use 'pre_logits' or 'logits'")


@dataclass
class Embeddings:
    paths: list[str]
    matrix: np.ndarray                       # (len(paths), D) float32, rows follow `paths`
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def embed_images(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    model: ModelArg = None,
    *,
    layer: str = DEFAULT_LAYER,
    normalize: bool = False,
    batch_size: int = 32,
    workers: int | None = None,
    device: str = "auto",
    progress: bool = False,
) -> Embeddings:
    """In-memory embeddings for a modest number of images (extract streams to disk for more)."""
    files = expand_inputs(inputs).files
    module, spec = as_model(model)
    runner = TorchRunner(module, feature_fn(layer), device=device)
    rows: list[np.ndarray] = []
    paths: list[str] = []
    failures: list[tuple[str, str]] = []
    with tqdm(total=len(files), unit="img", disable=not progress, desc="embed") as bar:
        for batch in iter_batches(files, eval_transform(spec.preprocessing), batch_size=batch_size,
                                  workers=workers, target_size=spec.preprocessing.image_size):
            failures += [(files[i], reason) for i, reason in batch.failures]
            if batch.tensor is not None:
                rows.append(runner(batch.tensor).numpy())
                paths += [files[i] for i in batch.indices]
            bar.update(len(batch.indices) + len(batch.failures))
    matrix = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    if normalize and len(matrix):
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True).clip(min=1e-12)
    return Embeddings(paths, matrix, failures)
