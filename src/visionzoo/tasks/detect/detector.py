"""A detector as the prediction path needs it: label names, the run's config, and the network, built only
when something asks for it (PyTorch, or an ONNX export not cached yet). So `predict` from a cached ONNX
export starts without importing torch (runtime.py), and a run's network size comes from its config.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any, Callable

from ...errors import UsageError
from .config import DetectorConfig

BACKGROUND = "__background__"
MODEL_NMS = 0.5    # the model's own class-aware NMS; the operating point's (operating.py) may suppress more


def fit_size(w: int, h: int, short: int, long: int) -> float:
    """The scale torchvision's detection transform applies: short side to `short`, long side <= `long`."""
    return min(short / min(w, h), long / max(w, h))


class Detector:
    """A detector ready to run: label names by label id (0 = background), where it came from, its run config,
    and the network (`module`): given, or built by `build` the first time it is asked for."""

    def __init__(self, module: Any, names: list[str], source: str, config: dict[str, Any] | None = None, *,
                 build: Callable[[], Any] | None = None):
        self._module, self._build = module, build
        self.names, self.source, self.config = names, source, config or {}

    @property
    def module(self) -> Any:
        if self._module is None:
            self._module = self._build().eval()
        return self._module

    @property
    def built(self) -> bool:
        return self._module is not None

    @property
    def run_config(self) -> DetectorConfig | None:
        """A trained run's network config (None for a torchvision detector by name)."""
        return DetectorConfig.from_dict(self.config["detector"]) if "detector" in self.config else None

    @property
    def has_masks(self) -> bool:
        if not self.built and self.run_config is not None:
            return self.run_config.arch == "maskrcnn"
        heads = getattr(self.module, "roi_heads", None)
        return getattr(heads, "mask_predictor", None) is not None

    @property
    def classes(self) -> list[str]:
        """Object class names (label ids 1..K), as a trained run records them."""
        return self.names[1:]

    def network_size(self) -> tuple[int, int, tuple[int, int] | None]:
        """(short side, long-side cap, fixed size or None) the detector's transform resizes to: from a run's
        config without building it, else from the network's transform."""
        cfg = self.run_config
        if not self.built and cfg is not None and not cfg.source:
            fixed = (cfg.image_size, cfg.image_size) if cfg.arch == "ssdlite" else None
            return cfg.image_size, cfg.max_size, fixed
        from .model import network_size

        return network_size(self.module)


def _build_run(run_dir: str | os.PathLike, cfg: DetectorConfig) -> Any:
    from safetensors.torch import load_model

    from ...zoo.rundir import WEIGHTS_FILE
    from .model import build_detector

    module = build_detector(cfg, pretrained_backbone=False)
    load_model(module, str(Path(run_dir) / WEIGHTS_FILE), strict=True, device="cpu")
    return module


def load_detector(run_or_name: str | os.PathLike, weights: str | os.PathLike | None = None) -> Detector:
    """A detection run folder (its network built when first needed), or a torchvision COCO detector name."""
    from ...zoo.rundir import task_config

    config = task_config(run_or_name, "detect")
    if config is not None:
        cfg = DetectorConfig.from_dict(config["detector"])
        return Detector(None, [BACKGROUND, *config["classes"]], str(run_or_name), config,
                        build=partial(_build_run, run_or_name, cfg))
    from .model import build_pretrained, pretrained_names

    name = os.fspath(run_or_name)
    if name in pretrained_names():
        module, names, source = build_pretrained(name, weights)
        return Detector(module, names, source, {"task": "detect", "arch": name, "classes": names[1:]})
    if Path(name).exists():
        raise UsageError(f"{name} is not a run folder (needs model.safetensors and config.json)")
    raise UsageError(f"unknown detector {name!r}: pass a run folder written by `visionzoo detect train` or one of "
                     f"{', '.join(pretrained_names())}")
