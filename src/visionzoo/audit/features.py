"""Image features for every check, from the extract runner: a Parquet feature file in OUT written
shard by shard, so `--resume` finishes an interrupted audit without embedding any image twice,
and one decode per image serves every model named."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

FEATURES_DIR = "features"
DEFAULT_MODEL = "efficientnet_lite0"
PARTITION = 256          # images per shard: what an interruption can lose at most


@dataclass
class ModelFeatures:
    model: str
    image_size: int
    paths: list[str]
    matrix: np.ndarray           # (len(paths), D) float32, rows follow paths


@dataclass
class Features:
    models: list[ModelFeatures]
    failures: dict[str, str] = field(default_factory=dict)    # path -> why it could not be decoded
    computed: int = 0                                          # images embedded by this call
    seconds: float = 0.0

    @property
    def first(self) -> ModelFeatures:
        return self.models[0]


def extract(paths: Sequence[str], out: Path, models: list[str], *, resume: bool, workers: int | None, device: str,
            progress: bool) -> Features:
    """Features of `paths` for each model (the pooled pre-logits layer), via the extract runner. The
    runner sees absolute paths, so `--resume` works however DATA is written; rows come back under the
    paths as given."""
    from ..batch.config import ExtractConfig
    from ..batch.runner import run
    from ..store import load_features, read_manifest

    given = {os.path.abspath(p): p for p in paths}
    cfg = ExtractConfig(model=",".join(models), resume=resume, workers=workers, device=device, progress=progress,
                        partition_size=PARTITION)
    result = run(list(given), out / FEATURES_DIR, cfg)
    found = []
    for model, where in zip(models, result.outputs):
        stored, matrix = load_features(where)
        size = int(read_manifest(where)["preprocessing"]["input_size"][-1])
        found.append(ModelFeatures(model, size, [given[p] for p in stored], np.asarray(matrix, dtype=np.float32)))
    return Features(found, {given[p]: why for p, why in result.failures}, result.computed, result.seconds)
