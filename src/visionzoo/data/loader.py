"""Batches of decoded, preprocessed images that never raise mid-run.

A bad file becomes a (index, reason) failure inside its batch; decoding runs in worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch

from ..cpus import default_workers
from .decode import ImageDecodeError, load_rgb


@dataclass
class Batch:
    indices: list[int]                 # positions in the input list of the decoded images
    tensor: torch.Tensor | None        # (len(indices), C, H, W), None when all failed
    failures: list[tuple[int, str]] = field(default_factory=list)  # (position, reason)


class ImageListDataset(torch.utils.data.Dataset):
    """Positions -> (position, tensor | None, error | None); decoding never raises."""

    def __init__(self, paths: Sequence[str], transform: Callable, target_size: int | None = None):
        self.paths = list(paths)
        self.transform = transform
        self.target_size = target_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return i, self.transform(load_rgb(self.paths[i], self.target_size)), None
        except ImageDecodeError as exc:
            return i, None, exc.reason
        except Exception as exc:  # a transform choking on a pathological image
            return i, None, f"preprocessing failed ({type(exc).__name__}: {exc})"


def collate(items) -> Batch:
    good = [(i, t) for i, t, err in items if err is None]
    return Batch(
        indices=[i for i, _ in good],
        tensor=torch.stack([t for _, t in good]) if good else None,
        failures=[(i, err) for i, _, err in items if err is not None],
    )


def iter_batches(
    paths: Sequence[str],
    transform: Callable,
    *,
    batch_size: int = 32,
    workers: int | None = None,
    target_size: int | None = None,
) -> Iterator[Batch]:
    """Yield Batches in input order; failures ride along in the batch they belong to."""
    workers = default_workers(len(paths), batch_size) if workers is None else workers
    dataset = ImageListDataset(paths, transform, target_size)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
        collate_fn=collate, prefetch_factor=4 if workers else None,
    )
    yield from loader
