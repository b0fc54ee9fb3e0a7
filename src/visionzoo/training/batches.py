"""(x, y) batches for the fit loop: decoded images (bad files skipped and recorded) or cached features.

Both are functions of the epoch, seeded from (seed, epoch), so a resumed epoch repeats exactly.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch

from ..data.datasets import Split
from ..data.loader import ImageListDataset, collate, default_workers


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
) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """Images that fail to decode are left out of their batch and recorded in `failures` (path -> reason)."""
    dataset = ImageListDataset(split.paths, transform, target_size)
    targets = torch.as_tensor(split.targets, dtype=torch.long)
    workers = default_workers(len(split), batch_size) if workers is None else workers

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = _generator(seed, epoch)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=shuffle, generator=g, num_workers=workers,
            collate_fn=collate, drop_last=shuffle and len(dataset) > batch_size,
        )
        for batch in loader:
            for i, reason in batch.failures:
                failures[split.paths[i]] = reason
            if batch.tensor is not None:
                yield batch.tensor, targets[batch.indices]

    return batches


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
