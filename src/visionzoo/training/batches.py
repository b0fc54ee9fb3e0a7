"""Batches for the fit loop, as functions of the epoch: seeded from (seed, epoch), so a resumed epoch
repeats exactly, and cut into per-rank slices, so N data-parallel ranks together see exactly the
one-process batches (each image's random augmentation drawn from its own seed, whoever decodes it).
"""
from __future__ import annotations

import math
import random
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..cpus import default_workers
from . import distributed
from .engine import seed_everything


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Training batches per epoch: the last partial batch is dropped (when there is more than one batch)."""
    return max(1, n // batch_size if n > batch_size else 1)


def epochs_for(n: int, batch_size: int, *, steps: int, least: int, most: int) -> int:
    """A default schedule set by the data, not the clock: the whole epochs that make about `steps`
    training steps over `n` examples, within [least, most]."""
    return int(min(most, max(least, math.ceil(steps / steps_per_epoch(n, batch_size)))))


def _rank_batches(n: int, batch_size: int, shuffle: bool, g: torch.Generator, rank: int, world: int) -> list[list[int]]:
    """The epoch's order (shuffled: the last partial batch dropped) cut into global batches, and each
    into `world` disjoint slices: together the ranks see exactly the one-process batches."""
    order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    stop = n - n % batch_size if shuffle and n > batch_size else n
    slices = (order[i:i + batch_size].tensor_split(world)[rank] for i in range(0, stop, batch_size))
    return [s.tolist() for s in slices if len(s)]


class _PerImageSeed(torch.utils.data.Dataset):
    """Each item's random augmentation drawn from (seed, epoch, item), whichever rank or decoding
    process handles it. The caller's random streams are left as they were."""

    def __init__(self, dataset: Any, seed: int, epoch: int):
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


def loader_batches(dataset: Any, *, batch_size: int, seed: int, collate: Callable,
                   workers: int | None = None) -> Callable[[int], Iterator[Any]]:
    """Epoch -> this rank's shuffled, augmented batches of `dataset` (an indexable torch Dataset whose
    items never raise: a bad file rides along as a failure for `collate` to report)."""
    rank, world = distributed.rank_and_world()
    workers = distributed.rank_workers(workers)
    workers = default_workers(len(dataset), batch_size) if workers is None else workers

    def batches(epoch: int) -> Iterator[Any]:
        order = _rank_batches(len(dataset), batch_size, True, _generator(seed, epoch), rank, world)
        yield from torch.utils.data.DataLoader(_PerImageSeed(dataset, seed, epoch), batch_sampler=order,
                                               num_workers=workers, collate_fn=collate)

    return batches


def tensor_batches(*tensors: torch.Tensor, batch_size: int, seed: int,
                   shuffle: bool = True) -> Callable[[int], Iterator[tuple[torch.Tensor, ...]]]:
    """Epoch -> this rank's batches of rows of `tensors` (cached features and their targets)."""
    rank, world = distributed.rank_and_world() if shuffle else (0, 1)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        for idx in _rank_batches(len(tensors[0]), batch_size, shuffle, _generator(seed, epoch), rank, world):
            yield tuple(t[idx] for t in tensors)

    return batches
