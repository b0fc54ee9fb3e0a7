"""Test-time augmentation that travels with a model: the spec's `tta` field, applied by `load_model`.

A run trained on the mean features of each image and its mirror (`train --strategy auto`) must be
used the same way everywhere: predict, evaluate, serve, extract and the ONNX export. So the
averaging lives in the model's own `forward_features`, which every caller (and the exporter's
trace) goes through, instead of in each caller.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UsageError

TTA_MODES = ("hflip",)


class HFlipFeatures:
    """Mixin: the feature map is the mean of the image's and its mirror's (the mirror's map flipped
    back, so maps stay aligned); pooled features, logits and stage-free exports all see the mean.
    A stage taken by a forward hook is that of the first (unflipped) pass."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        plain = super().forward_features(x)  # type: ignore[misc]
        mirrored = super().forward_features(x.flip(-1))  # type: ignore[misc]
        if mirrored.ndim == 4:  # a spatial map: flip its width axis back
            width_axis = -2 if getattr(self, "output_fmt", "NCHW") == "NHWC" else -1
            mirrored = mirrored.flip(width_axis)
        return (plain + mirrored) * 0.5


_CLASSES: dict[type, type] = {}


def with_tta(model: nn.Module, mode: str | None) -> nn.Module:
    """Give `model` (in place) the test-time augmentation `mode` ("hflip" or None); returns it.

    The model keeps its class's every other behaviour, parameter names and state dict (it becomes
    an instance of a subclass whose `forward_features` averages), so run folders stay plain."""
    if mode is None:
        return model
    if mode not in TTA_MODES:
        raise UsageError(f"unknown test-time augmentation {mode!r}; known: {', '.join(TTA_MODES)}")
    cls = type(model)
    if not issubclass(cls, HFlipFeatures):
        if cls not in _CLASSES:
            _CLASSES[cls] = type(f"{cls.__name__}HFlip", (HFlipFeatures, cls), {"__module__": __name__})
        model.__class__ = _CLASSES[cls]
    return model
