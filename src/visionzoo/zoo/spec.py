"""ModelSpec: what travels with a model (weights, preprocessing, labels), as plain data.

A spec is JSON-serialisable so that feature files, saved runs and reports can record exactly
which model, weights and preprocessing produced them.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

DEFAULT_LAYER = "pre_logits"  # the features a model name stands for: its pooled penultimate vector
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Eval preprocessing, in timm's data-config terms (resize by crop_pct, then center crop)."""

    input_size: tuple[int, int, int] = (3, 224, 224)
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875
    crop_mode: str = "center"

    @property
    def image_size(self) -> int:
        return int(self.input_size[-1])

    @property
    def resize_size(self) -> int:
        """Short side before the center crop (timm: floor(image_size / crop_pct))."""
        return int(math.floor(self.image_size / self.crop_pct))

    def as_timm(self) -> dict[str, Any]:
        """The dict `timm.data.create_transform` takes."""
        return {
            "input_size": tuple(self.input_size),
            "interpolation": self.interpolation,
            "mean": tuple(self.mean),
            "std": tuple(self.std),
            "crop_pct": self.crop_pct,
            "crop_mode": self.crop_mode,
        }

    def with_size(self, size: int) -> "Preprocessing":
        return Preprocessing(**{**asdict(self), "input_size": (3, size, size)})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for key in ("input_size", "mean", "std"):
            if key in d and d[key] is not None:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass
class ModelSpec:
    """Architecture + weights + preprocessing + labels of one zoo entry."""

    name: str                      # the name the user asked for (alias, timm name, run dir)
    arch: str                      # e.g. "tf_efficientnet_lite0", "torchvision:alexnet"
    library: str = "timm"          # "timm" | "torchvision"
    tag: str | None = None         # pretrained tag, e.g. "in1k", "tv_in1k"
    num_classes: int = 1000
    label_offset: int = 0          # 1 for TF-slim style heads with a background class at 0
    labels: list[str] | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    weights: str | None = None     # where the weights came from: file path, "package:NAME", "hub:ID"
    weights_sha256: str | None = None
    top1: float | None = None
    note: str | None = None
    tta: str | None = None         # test-time augmentation in the model's forward ("hflip"; zoo/tta.py)

    @property
    def full_arch(self) -> str:
        return f"{self.arch}.{self.tag}" if self.tag and self.library == "timm" else self.arch

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preprocessing"] = asdict(self.preprocessing)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["preprocessing"] = Preprocessing.from_dict(d.get("preprocessing") or {})
        return cls(**d)
