"""Training images with their targets, augmented by torchvision.transforms.v2 (which moves boxes
and masks with the pixels): colour jitter, zoom-out / IoU crop, horizontal flip, then the
multi-scale resize: each image's size is drawn from its own seed, as the rest of its augmentation
is, so data-parallel ranks train on exactly the images one process would.
"""
from __future__ import annotations

import random
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ...data.decode import ImageDecodeError, load_rgb
from .datasets import Sample
from .detector import fit_size
from .masks import decode_segmentation


def train_transform(strength: str = "default") -> Callable:
    """v2 pipeline over (image, target). "none" only converts; "default" adds colour, flip and
    (half of the time) an SSD-style zoom-out or IoU crop; degenerate boxes are dropped after it."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    steps: list = [v2.ToImage()]
    if strength != "none":
        steps += [
            v2.RandomPhotometricDistort(p=0.5),
            v2.RandomChoice([
                v2.Identity(), v2.Identity(),
                v2.RandomZoomOut(fill={tv_tensors.Image: (124, 116, 104), "others": 0}, side_range=(1.0, 2.0)),
                v2.RandomIoUCrop(),
            ]),
            v2.RandomHorizontalFlip(0.5),
        ]
    steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=2), v2.ToDtype(torch.float32, scale=True)]
    return v2.Compose(steps)


def _masks(sample: Sample, keep: np.ndarray, w: int, h: int) -> np.ndarray:
    """(N, h, w) uint8 masks of the kept objects at the decoded image's size."""
    sx, sy = w / sample.size[0], h / sample.size[1]
    out = np.zeros((int(keep.sum()), h, w), dtype=np.uint8)
    for j, seg in enumerate(s for s, k in zip(sample.segmentations, keep) if k):
        if isinstance(seg, list):  # polygons: scale the points, rasterise at the target size
            scaled = [(np.asarray(p, dtype=np.float64).reshape(-1, 2) * [sx, sy]).ravel().tolist() for p in seg]
            out[j] = decode_segmentation(scaled, h, w)
        else:
            full = decode_segmentation(seg, sample.size[1], sample.size[0])
            out[j] = np.asarray(Image.fromarray(full).resize((w, h), Image.NEAREST))
    return out


class DetectionDataset(torch.utils.data.Dataset):
    """Sample -> (index, image tensor, target) or (index, None, reason) for an image that fails to decode.

    Images are decoded and shrunk (PIL, antialiased) to at most the largest training size, augmented,
    then resized to one of `sizes` (short side, long side <= size x `long_ratio`: the network's own
    resize at that scale; a square of `sizes[0]` when `fixed`), as the detector's own transform would
    resize them; crowd boxes are left out of training, as torchvision's references do.
    """

    def __init__(self, samples: list[Sample], transform: Callable, sizes: Sequence[int], long_ratio: float,
                 masks: bool, fixed: bool = False):
        self.samples, self.transform, self.masks = samples, transform, masks
        self.sizes, self.long_ratio, self.fixed = tuple(sizes), long_ratio, fixed
        self.short, self.long = max(self.sizes), max(self.sizes) * long_ratio

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        s = self.samples[i]
        try:
            img = load_rgb(s.path, target_size=self.short)
        except ImageDecodeError as exc:
            return i, None, exc.reason
        scale = fit_size(*img.size, self.short, self.long)
        if scale < 1:
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
        w, h = img.size
        keep = ~s.crowd
        boxes = s.boxes[keep] * np.array([w / s.size[0], h / s.size[1]] * 2, dtype=np.float32)
        target = {
            "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY", canvas_size=(h, w)),
            "labels": torch.from_numpy(s.labels[keep] + 1),
        }
        if self.masks:
            target["masks"] = tv_tensors.Mask(torch.from_numpy(_masks(s, keep, w, h)))
        size = random.choice(self.sizes)  # this image's own seed decides (training.batches)
        try:
            image, target = self.transform(img, target)
            h, w = image.shape[-2:]
            scale = fit_size(w, h, size, size * self.long_ratio)
            shape = (size, size) if self.fixed else (max(1, round(h * scale)), max(1, round(w * scale)))
            image, target = v2.Resize(shape)(image, target)
        except Exception as exc:  # a transform choking on a pathological image
            return i, None, f"augmentation failed ({type(exc).__name__}: {exc})"
        target = {k: v.as_subclass(torch.Tensor) for k, v in target.items()}
        target["seed"] = torch.randint(2**62, ())  # the detector's sampling of this image's anchors (training.py)
        return i, image.as_subclass(torch.Tensor), target


def collate(items):
    """Lists, since detection images differ in size; failures ride along as (index, reason)."""
    good = [(i, x, t) for i, x, t in items if x is not None]
    return [x for _, x, _ in good], [t for _, _, t in good], [(i, t) for i, x, t in items if x is None]
