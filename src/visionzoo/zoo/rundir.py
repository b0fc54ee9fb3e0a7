"""A saved run folder is itself a zoo entry: `model.safetensors` + `config.json` (spec + extras).

Anything that takes a model name takes a run folder, because the spec (architecture, labels,
preprocessing) is stored beside the weights.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from torch import nn

from ..atomic import atomic_path, write_json
from ..errors import UsageError
from .spec import ModelSpec

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
RUN_FORMAT = "visionzoo-run"


def is_run_dir(path: str | os.PathLike) -> bool:
    """A folder written by save_run_model (not, say, a Hugging Face model folder, which has the same file names)."""
    p = Path(path)
    if not (p.is_dir() and (p / CONFIG_FILE).is_file() and (p / WEIGHTS_FILE).is_file()):
        return False
    try:
        return read_config(p).get("format") == RUN_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(path) / CONFIG_FILE).read_text("utf-8"))


def task_config(path: str | os.PathLike, task: str) -> dict[str, Any] | None:
    """The config of the run folder `path` if it is one (else None); a run of another task is a usage error."""
    if not is_run_dir(path):
        return None
    config = read_config(path)
    found = config.get("task") or "classify"
    if found != task:
        raise UsageError(f"{path} is a {found} run, not a {task} run (one written by `visionzoo {task} train`)")
    return config


def read_spec(path: str | os.PathLike) -> ModelSpec:
    spec = ModelSpec.from_dict(read_config(path)["spec"])
    spec.name = str(path)
    spec.weights = str(Path(path) / WEIGHTS_FILE)
    return spec


def load_run_model(path: str | os.PathLike, builder: Callable[[ModelSpec, int], nn.Module]) -> nn.Module:
    from safetensors.torch import load_model

    from .torchvision_adapter import TorchvisionClassifier

    spec = read_spec(path)
    if spec.library == "torchvision":  # rebuilt as training built it: stock head, then a new one
        model = TorchvisionClassifier(builder(spec, 1000))
        if spec.num_classes != 1000:
            model.reset_classifier(spec.num_classes)
    else:
        model = builder(spec, spec.num_classes)
    load_model(model, str(Path(path) / WEIGHTS_FILE), strict=True, device="cpu")
    model.zoo_spec = spec
    return model


def save_run_model(model: nn.Module, run_dir: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write weights and config atomically enough for a reader: weights first, config last."""
    from safetensors.torch import save_model

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / WEIGHTS_FILE) as tmp:
        save_model(model, str(tmp))
    config = {"format": RUN_FORMAT, "version": 1, **(extra or {}), "spec": model.zoo_spec.to_dict()}
    write_json(run_dir / CONFIG_FILE, config)
    return run_dir
