"""The fit loop: reads top to bottom; callbacks steer it; the model stays a plain nn.Module.

One Trainer runs one phase (its own optimizer and schedule) over a range of epochs; a finetune
run is two phases sharing the callbacks. Each epoch reseeds every RNG from (seed, epoch), so an
epoch redone after a crash sees the same data order and augmentations.
"""
from __future__ import annotations

import math
import random
import time
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..runtime import pick_device
from . import distributed
from .callbacks import Callback

Batches = Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # epoch -> (x, y) batches


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int):
    """Linear warmup to the base rate, then cosine decay to zero."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    def __init__(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        *,
        callbacks: Iterable[Callback] = (),
        phase: str = "train",
        label_smoothing: float = 0.0,
        freeze_bn: bool = False,
        device: str = "auto",
        seed: int = 0,
        log: Callable[[str], None] = print,
        progress: bool = False,
    ):
        self.device = pick_device(device)
        self.cuda = self.device.type == "cuda"
        self.module = module.to(self.device)
        if self.cuda:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.net = distributed.wrap(self.module, self.device, sync_bn=not freeze_bn)  # DDP across ranks
        self.optimizer, self.scheduler = optimizer, scheduler
        self.callbacks = list(callbacks)
        self.phase, self.freeze_bn, self.seed = phase, freeze_bn, seed
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.eval_loss_fn = nn.CrossEntropyLoss()
        self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if self.cuda else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.log, self.progress = log, progress
        self.stop_training = False

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.device, non_blocking=True)
        if self.cuda and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=True)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def fit(self, train: Batches, val: Batches | None, epochs: range, steps_per_epoch: int, total: int) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(self)
        for epoch in epochs:
            rank, world = distributed.rank_and_world()
            seed_everything((self.seed * 100_003 + epoch) * world + rank)  # each rank its own dropout draws
            start = time.perf_counter()
            logs = self.train_epoch(train(epoch), steps_per_epoch, f"epoch {epoch}/{total}")
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(val(epoch)).items()})
            logs["lr"] = self.optimizer.param_groups[0]["lr"]
            logs["seconds"] = time.perf_counter() - start
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch, logs)
            if self.stop_training:
                break

    def train_epoch(self, batches: Iterator, steps: int, desc: str) -> dict[str, float]:
        self.module.train()
        if self.freeze_bn:
            from .freezing import freeze_batchnorm_stats

            freeze_batchnorm_stats(self.module)
        loss_sum, correct, seen = 0.0, 0, 0
        with distributed.uneven(self.net):
            for x, y in tqdm(batches, total=steps, desc=desc, unit="batch", leave=False, disable=not self.progress):
                x, y = self._to_device(x, y)
                with self._autocast():
                    logits = self.net(x)
                    loss = self.loss_fn(logits.float(), y)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                loss_sum += loss.item() * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
        loss_sum, correct, seen = distributed.all_sum([loss_sum, correct, seen], self.device)  # over every rank
        return {"loss": loss_sum / max(seen, 1), "acc": correct / max(seen, 1)}

    @torch.no_grad()
    def evaluate(self, batches: Iterator) -> dict[str, float]:
        self.module.eval()
        loss_sum, correct, seen = 0.0, 0, 0
        for x, y in batches:
            x, y = self._to_device(x, y)
            with self._autocast():
                logits = self.module(x).float()
            loss_sum += float(self.eval_loss_fn(logits, y)) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        loss_sum, correct, seen = distributed.all_sum([loss_sum, correct, seen], self.device)
        return {"loss": loss_sum / max(seen, 1), "acc": correct / max(seen, 1)}
