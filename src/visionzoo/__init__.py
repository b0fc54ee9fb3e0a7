"""visionzoo: pretrained vision models made easy and fast.

Public API (imported lazily so `import visionzoo` stays light): the zoo (list_models, load_model,
resolve), classify, extract and feature files, search / dedup / cluster / probes / maps on stored
features, classifier training (train, evaluate, predict) and export; each task's package is
`visionzoo.tasks.<task>` (classify, detect, segment, faces, caption).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "list_models": "visionzoo.zoo",
    "load_model": "visionzoo.zoo",
    "resolve": "visionzoo.zoo",
    "ModelSpec": "visionzoo.zoo",
    "classify": "visionzoo.batch",
    "extract": "visionzoo.batch",
    "load_features": "visionzoo.store",
    "read_manifest": "visionzoo.store",
    "export": "visionzoo.tasks.registry",
    "build_index": "visionzoo.downstream",
    "search": "visionzoo.downstream",
    "find_duplicates": "visionzoo.downstream",
    "cluster": "visionzoo.downstream",
    "train_probe": "visionzoo.downstream",
    "feature_map": "visionzoo.downstream",
    "train": "visionzoo.tasks.classify",
    "evaluate": "visionzoo.tasks.classify",
    "predict": "visionzoo.prediction",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'visionzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))


__all__ = list(_API)
