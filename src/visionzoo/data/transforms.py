"""Transforms built from a model's Preprocessing: the only place resize/crop/normalise happen."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..zoo.spec import Preprocessing

_PIL_FILTERS = {"nearest": 0, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5, "lanczos": 1}


def eval_transform(pre: Preprocessing) -> Callable:
    """PIL RGB image -> normalised CHW float tensor, as the weights were evaluated: `eval_array_transform`
    as a tensor, so that classify, embed and extract see the same numbers."""
    arrays = _center_crop_arrays(pre)
    if arrays is None:
        return timm_eval_transform(pre)
    import torch

    return lambda img: torch.from_numpy(arrays(img))


def timm_eval_transform(pre: Preprocessing) -> Callable:
    """timm's own evaluation transform (resize, centre crop, normalise in torch): the reference."""
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
    """PIL RGB image -> normalised CHW float32 array: timm's evaluation transform (`timm_eval_transform`)
    with PIL and NumPy alone, so the batch reader needs no torch, at about a third of its cost.

    Center-crop configs with a square input (nearly every classifier) take this path, equal to timm's
    to resampling rounding (a test checks it); any other (squash, border, non-square) uses timm's.
    """
    arrays = _center_crop_arrays(pre)
    if arrays is None:
        timm_transform = timm_eval_transform(pre)
        return lambda img: timm_transform(img).numpy()
    return arrays


def _center_crop_arrays(pre: Preprocessing) -> Callable[[object], np.ndarray] | None:
    """timm's centre-crop evaluation transform in PIL and NumPy, or None for a config it does not cover."""
    channels, height, width = pre.input_size
    if channels != 3 or pre.crop_mode not in (None, "center") or height != width or pre.interpolation not in _PIL_FILTERS:
        return None
    short, size, resample = pre.resize_size, width, _PIL_FILTERS[pre.interpolation]
    # (uint8 -> float) / 255, - mean, / std as one table lookup per channel: the same float32
    # operations on the 256 possible values, so the same numbers, at a third of the cost.
    table = ((np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0)) - np.asarray(pre.mean, np.float32)[:, None]) \
        / np.asarray(pre.std, np.float32)[:, None]

    def transform(img) -> np.ndarray:
        w, h = img.size
        if w <= h:  # torchvision's Resize(int): the short side to `short`, the long side truncated
            new = (short, int(short * h / w))
        else:
            new = (int(short * w / h), short)
        top, left = int(round((new[1] - size) / 2.0)), int(round((new[0] - size) / 2.0))
        if new != (w, h) and min(new) >= size:
            # Resize only the centre crop's box of the source, straight to size x size: the pixels
            # resize-then-crop keeps, computed from the same source window (they differ by rounding
            # only), without resizing the ~40 % that the crop throws away.
            sx, sy = w / new[0], h / new[1]
            img = img.resize((size, size), resample, box=(left * sx, top * sy, (left + size) * sx, (top + size) * sy))
        else:
            if new != (w, h):
                img = img.resize(new, resample)
            w, h = img.size
            if w < size or h < size:  # only when crop_pct > 1: torchvision pads with black
                from PIL import Image

                padded = Image.new("RGB", (max(w, size), max(h, size)))
                padded.paste(img, ((max(w, size) - w) // 2, (max(h, size) - h) // 2))
                img, (w, h) = padded, padded.size
            top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
            img = img.crop((left, top, left + size, top + size))
        pixels = np.asarray(img)
        out = np.empty((channels, size, size), np.float32)
        for c in range(channels):
            np.take(table[c], pixels[:, :, c], out=out[c])
        return out

    return transform
