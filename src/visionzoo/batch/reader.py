"""The reader: decode each image once, in worker processes, for every model of the run.

Batches never straddle partitions, so the runner can write a partition's shard as soon as its
last batch is back. Models that share preprocessing share the decoded tensor too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch

from ..data import eval_transform
from ..data.loader import ImageListDataset
from ..zoo import Preprocessing


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(n_images: int, batch_size: int) -> int:
    """Decoding processes: none for a single batch; else about a third of the cores (at least one).

    Decoding and resizing a draft-mode JPEG costs a third to a half of a light CNN's forward
    pass on ONNX Runtime (less for bigger models), so a third of the cores keeps the model fed
    while inference keeps every core's spare cycles: its threads sleep instead of spinning.
    On 2 cores: 1 decoding process beside 2 inference threads.
    """
    if n_images <= batch_size:
        return 0
    return max(1, min(16, (usable_cpus() + 1) // 3))


class _Each:
    """Apply several transforms to one decoded image (one per distinct preprocessing)."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, img):
        return tuple(t(img) for t in self.transforms)


@dataclass
class MultiBatch:
    indices: list[int]                        # positions in the input list of the decoded images
    tensors: list[torch.Tensor] | None        # one (len(indices), C, H, W) per preprocessing
    failures: list[tuple[int, str]] = field(default_factory=list)


def _collate(items) -> MultiBatch:
    good = [(i, ts) for i, ts, err in items if err is None]
    tensors = [torch.stack([ts[k] for _, ts in good]) for k in range(len(good[0][1]))] if good else None
    return MultiBatch([i for i, _ in good], tensors, [(i, err) for i, _, err in items if err is not None])


def iter_multi_batches(
    paths: Sequence[str],
    preprocessings: Sequence[Preprocessing],
    batches: Sequence[list[int]],
    workers: int,
) -> Iterator[MultiBatch]:
    """Yield one MultiBatch per entry of `batches` (lists of positions), in that order."""
    target = max(p.resize_size for p in preprocessings)
    dataset = ImageListDataset(paths, _Each([eval_transform(p) for p in preprocessings]), target)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=batches, num_workers=workers, collate_fn=_collate,
        prefetch_factor=4 if workers else None,
    )
    yield from loader
