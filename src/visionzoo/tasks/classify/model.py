"""The network a classification run trains: a zoo model with a fresh head for the run's classes."""
from __future__ import annotations

from dataclasses import replace

from torch import nn

from ...zoo import load_model
from .config import TrainConfig


def build_model(cfg: TrainConfig, labels: list[str]) -> nn.Module:
    """The zoo model with a fresh head for `labels` and the run's input size in its spec."""
    module = load_model(cfg.model, pretrained=cfg.strategy != "scratch", num_classes=len(labels))
    spec = module.zoo_spec
    pre = spec.preprocessing if cfg.image_size is None else spec.preprocessing.with_size(cfg.image_size)
    if cfg.strategy == "scratch":
        spec = replace(spec, weights=None, weights_sha256=None, tag=None, top1=None)
    module.zoo_spec = replace(spec, labels=list(labels), preprocessing=pre, top1=None,
                              note=f"trained by visionzoo train --strategy {cfg.strategy} from {cfg.model}")
    return module
