"""(x, y) batches for the fit loop: decoded images (bad files skipped and recorded) or cached features.

Both are functions of the epoch, seeded from (seed, epoch), so a resumed epoch repeats exactly.
"""
from __future__ import annotations

import random
from typing import Callable, Iterator

import numpy as np
import torch

from ..data.datasets import Split
from ..data.loader import ImageListDataset, collate, default_workers
from .trainer import seed_everything


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def image_batches(
    split: Split,
    transform: Callable,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    failures: dict[str, str],
    workers: int | None = None,
    target_size: int | None = None,
    rank: int = 0,
    world: int = 1,
) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """Images that fail to decode are left out of their batch and recorded in `failures` (path -> reason).
    With `world` data-parallel ranks, rank `rank` gets its slice of each global batch of `batch_size`."""
    dataset = ImageListDataset(split.paths, transform, target_size)
    targets = torch.as_tensor(split.targets, dtype=torch.long)
    workers = default_workers(len(split), batch_size) if workers is None else workers

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = _rank_batches(len(dataset), batch_size, shuffle, _generator(seed, epoch), rank, world)
        loader = torch.utils.data.DataLoader(_PerImageSeed(dataset, seed, epoch), batch_sampler=order,
                                             num_workers=workers, collate_fn=collate)
        for batch in loader:
            for i, reason in batch.failures:
                failures[split.paths[i]] = reason
            if batch.tensor is not None:
                yield batch.tensor, targets[batch.indices]

    return batches


class _PerImageSeed(torch.utils.data.Dataset):
    """Each image's random augmentation drawn from (seed, epoch, image), whichever rank or decoding
    process handles it: N ranks then train on exactly the one-process batches. The caller's random
    streams are left as they were."""

    def __init__(self, dataset: ImageListDataset, seed: int, epoch: int):
        self.dataset, self.base = dataset, (seed * 1_000_003 + epoch) * 1_000_003

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        states = random.getstate(), np.random.get_state(), torch.get_rng_state()
        seed_everything((self.base + i) % 2**63)
        try:
            return self.dataset[i]
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])


def _rank_batches(n: int, batch_size: int, shuffle: bool, g: torch.Generator, rank: int, world: int) -> list[list[int]]:
    """The epoch's order (shuffled: the last partial batch dropped) cut into global batches, and each
    into `world` disjoint slices: together the ranks see exactly the one-process batches."""
    order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    stop = n - n % batch_size if shuffle and n > batch_size else n
    slices = (order[i:i + batch_size].tensor_split(world)[rank] for i in range(0, stop, batch_size))
    return [s.tolist() for s in slices if len(s)]


def tensor_batches(
    x: torch.Tensor, y: torch.Tensor, *, batch_size: int, shuffle: bool, seed: int
) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(x), generator=_generator(seed, epoch)) if shuffle else torch.arange(len(x))
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]

    return batches


def steps_per_epoch(n: int, batch_size: int, drop_last: bool) -> int:
    return max(1, n // batch_size if drop_last and n > batch_size else -(-n // batch_size))
