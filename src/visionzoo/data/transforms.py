"""Transforms built from a model's Preprocessing: the only place resize/crop/normalise happen."""
from __future__ import annotations

from typing import Callable

from ..zoo.spec import Preprocessing


def eval_transform(pre: Preprocessing) -> Callable:
    """PIL RGB image -> normalised CHW float tensor, exactly as the weights were evaluated."""
    from timm.data import create_transform

    return create_transform(**pre.as_timm(), is_training=False)


def train_transform(pre: Preprocessing, *, strength: str = "light") -> Callable:
    """Augmenting transform with the model's size, interpolation and mean/std.

    "light" (random resized crop with scale >= 0.35, flips, mild colour jitter) suits
    fine-tuning on a few hundred images; "strong" adds RandAugment for training from scratch.
    """
    from timm.data import create_transform

    cfg = pre.as_timm()
    cfg.pop("crop_pct")
    cfg.pop("crop_mode")
    kwargs = dict(scale=(0.35, 1.0), hflip=0.5, color_jitter=0.2)
    if strength == "strong":
        kwargs.update(scale=(0.08, 1.0), auto_augment="rand-m9-mstd0.5", re_prob=0.25)
    return create_transform(**cfg, is_training=True, **kwargs)
