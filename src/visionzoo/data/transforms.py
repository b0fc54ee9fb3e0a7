"""Transforms built from a model's Preprocessing: the only place resize/crop/normalise happen."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..zoo.spec import Preprocessing

_PIL_FILTERS = {"nearest": 0, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5, "lanczos": 1}


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


def eval_array_transform(pre: Preprocessing) -> Callable[[object], np.ndarray]:
    """PIL RGB image -> normalised CHW float32 array, equal to `eval_transform` (a test checks it)
    but with PIL and NumPy alone: the batch reader needs no torch, and it is ~2x faster.

    Center-crop configs with a square input (nearly every classifier) take this path; any other
    (squash, border, non-square) uses timm's transform.
    """
    channels, height, width = pre.input_size
    if pre.crop_mode not in (None, "center") or height != width or pre.interpolation not in _PIL_FILTERS:
        timm_transform = eval_transform(pre)
        return lambda img: timm_transform(img).numpy()
    short, size, resample = pre.resize_size, width, _PIL_FILTERS[pre.interpolation]
    mean = np.asarray(pre.mean, np.float32)
    std = np.asarray(pre.std, np.float32)

    def transform(img) -> np.ndarray:
        w, h = img.size
        if w <= h:  # torchvision's Resize(int): the short side to `short`, the long side truncated
            new = (short, int(short * h / w))
        else:
            new = (int(short * w / h), short)
        if new != (w, h):
            img = img.resize(new, resample)
        w, h = img.size
        if w < size or h < size:  # only when crop_pct > 1: torchvision pads with black
            from PIL import Image

            padded = Image.new("RGB", (max(w, size), max(h, size)))
            padded.paste(img, ((max(w, size) - w) // 2, (max(h, size) - h) // 2))
            img, (w, h) = padded, padded.size
        top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
        arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float32)
        arr /= 255.0
        arr -= mean
        arr /= std
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    return transform
