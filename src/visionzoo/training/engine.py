"""The one fit loop every task trains with; it reads top to bottom, and the task plugs in through hooks.

A task says what a batch is and how the model scores it (`TaskHooks`); the Trainer does the rest,
the same for classification, detection, segmentation and captioning: phases (each with its own
optimizer and warmup-cosine schedule), mixed precision on CUDA, gradient clipping, skipping the odd
non-finite loss, data-parallel ranks (DDP, rank 0 validates and writes), callbacks (log line, CSV
history, best checkpoint, early stopping, resumable checkpoint), `--resume` from the last finished
epoch and Ctrl-C, which keeps the best epoch so far. Every epoch reseeds every RNG from (seed,
epoch), so an epoch redone after a crash sees the same data order and augmentations.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UsageError
from ..progress import progress_bar
from ..runtime import pick_device
from . import callbacks as cb
from . import distributed

Log = Callable[[str], None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int | Callable[[], int], warmup_steps: int):
    """Linear warmup to the base rate, then cosine decay to zero at `total_steps` (a number, or a function
    giving the current plan: a time budget can shorten the run, and the decay then ends sooner)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        total = total_steps() if callable(total_steps) else total_steps
        progress = (step - warmup_steps) / max(1, total - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class Step:
    """One training batch's outcome: the loss to minimise, and figures to average over the epoch as
    name -> (sum, count) (loss per image, accuracy per word...), summed over every rank."""

    loss: torch.Tensor
    stats: dict[str, tuple[float, float]]


class TaskHooks:
    """What a task tells the Trainer. `batches`, `steps` and `step` are required."""

    clip_norm: float | None = None
    log_keys: Sequence[str] = ("loss",)        # figures shown on the epoch's log line (and their val_ values)
    curve_keys: Sequence[str] = ("loss",)      # figures drawn in curves.png

    def batches(self, epoch: int) -> Iterable[Any]:
        """This rank's batches of `epoch` (its slice of every global batch)."""
        raise NotImplementedError

    def steps(self) -> int:
        """Batches per epoch (for the progress bar and the schedule)."""
        raise NotImplementedError

    def step(self, net: nn.Module, batch: Any) -> Step | None:
        """Forward `batch` through `net` (the module, or its DDP wrapper); None skips the batch."""
        raise NotImplementedError

    def validate(self, module: nn.Module) -> dict[str, float]:
        """The task's validation figures (unprefixed) of the current weights; {} without validation."""
        return {}

    def score(self, logs: dict[str, float]) -> tuple[float, ...]:
        """How good an epoch was, higher is better: picks the best epoch and drives early stopping."""
        if "val_loss" in logs:
            return (-logs["val_loss"],)
        return (-logs["loss"],)

    def train_mode(self, module: nn.Module) -> ContextManager:
        """Put `module` in training mode for an epoch (and undo any task-specific switch after)."""
        module.train()
        return contextlib.nullcontext()


@dataclass
class Phase:
    """A stretch of epochs with its own optimizer: `optimizer()` chooses what trains and returns it."""

    name: str
    epochs: range
    optimizer: Callable[[], torch.optim.Optimizer]
    warmup: float = 0.1          # warmup steps as a fraction of the phase's steps ...
    max_warmup_epochs: float = 1  # ... at most this many epochs of them


@dataclass
class Fit:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    seconds: float = 0.0
    interrupted: bool = False
    stopped_by: str = "epochs"     # "epochs" | "plateau" (early stopping) | "time budget" | "interrupted"
    epochs_planned: int = 0        # what the run would have done without a stop (its last epoch)
    cut: dict[str, int] | None = None  # the time budget ended it inside an epoch: {epoch, steps_done, steps}

    def summary(self) -> str:
        """Why training ended, in words: for the log, config.json and the report."""
        done = len(self.history)
        text = f"stopped by {self.stopped_by} after {done} of {self.epochs_planned} planned epochs"
        if self.cut:
            text += f" (epoch {self.cut['epoch']} cut after {self.cut['steps_done']} of {self.cut['steps']} steps)"
        return text + (f"; best epoch {self.best_epoch}" if self.best_epoch is not None else "")


class Budget(cb.Callback):
    """`--time-budget`, the user's explicit limit (off by default, so a run never depends on how busy
    the machine is): checked after every training step, so one slow epoch cannot overrun it, and after
    each epoch the phase is cut to the epochs that still fit at that pace, so the learning-rate
    schedule still ends low. Its plan and the seconds used travel in the checkpoint."""

    def __init__(self, seconds: float | None):
        self.seconds, self.stop, self.used = seconds, None, 0.0
        self.began = time.perf_counter()
        self.cut: dict[str, int] | None = None   # where a step check ended the run: epoch, steps done, steps

    def start_epoch(self) -> None:
        self.began = time.perf_counter()

    def spent(self) -> bool:
        """Whether the budget is used up now (rank 0's clock decides, so every rank stops at the same step)."""
        if self.seconds is None:
            return False
        return distributed.from_rank0(lambda: self.used + time.perf_counter() - self.began >= self.seconds)

    def on_epoch_end(self, trainer, epoch, logs):
        self.used += logs["seconds"]
        if self.seconds is None:
            return
        if self.cut is not None:
            self.stop = epoch + 1
            return
        left = self.seconds - self.used
        fits = int(left // max(logs["seconds"], 1e-6))
        stop = distributed.from_rank0(lambda: epoch + 1 + fits)
        if stop < (self.stop or trainer.phase_stop):
            self.stop = stop
            if stop <= epoch + 1:
                trainer.log(f"time budget ({self.seconds:g} s) used up after epoch {epoch} of {trainer.total}")
            else:
                trainer.log(f"time budget: {stop - epoch - 1} more epoch(s) fit in the {self.seconds:g} s budget")

    def state(self):
        return {"stop": self.stop, "used": self.used, "cut": self.cut}

    def restore(self, state):
        self.stop, self.used, self.cut = state.get("stop"), float(state.get("used", 0.0)), state.get("cut")


class Trainer:
    """Fits `module` through `phases` with `hooks`, writing checkpoints and history into `run_dir`."""

    def __init__(self, module: nn.Module, hooks: TaskHooks, phases: Sequence[Phase], *, run_dir: str | Path,
                 patience: int, device: str = "auto", seed: int = 0, log: Log = print, progress: bool = False,
                 sync_bn: bool = True, find_unused: bool = False, time_budget: float | None = None,
                 callbacks: Sequence[cb.Callback] = ()):
        self.device = pick_device(device)
        self.cuda = self.device.type == "cuda"
        self.module, self.hooks, self.phases = module, hooks, list(phases)
        self.run_dir, self.seed, self.log, self.progress = Path(run_dir), seed, log, progress
        self.sync_bn, self.find_unused = sync_bn, find_unused
        self.total = max(p.epochs.stop - 1 for p in self.phases)
        self.best = cb.BestCheckpoint(self.run_dir, hooks.score)
        self.early = cb.EarlyStopping(patience, hooks.score)
        self.history = cb.CSVLogger(self.run_dir)
        self.budget = Budget(time_budget)
        stateful = [self.best, self.early, self.history, self.budget]
        self.callbacks: list[cb.Callback] = [cb.LogLine(self.total, log, hooks.log_keys), *stateful,
                                             cb.ResumeCheckpoint(self.run_dir, stateful), *callbacks]
        if not distributed.is_main():  # every rank sees the same logs, so stops together; rank 0 alone writes
            self.callbacks = [self.early, self.budget]
        self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if self.cuda else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.phase, self.phase_stop = "", 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.stop_training = False

    # ------------------------------------------------------------------ the loop
    def fit(self, checkpoint: dict[str, Any] | None = None) -> Fit:
        """Train every phase (from `checkpoint` when resuming); the module ends with its best epoch's weights."""
        start_time = time.perf_counter()
        self.module.to(self.device)  # before optimizers exist, so restored optimizer state lands there too
        if self.cuda:
            self.module.to(memory_format=torch.channels_last)
        start = self._restore(checkpoint)
        interrupted, self.stopped_by = False, "epochs"
        try:
            for phase in self.phases:
                if self.budget.stop is not None and phase.epochs.start >= self.budget.stop:
                    break
                todo = range(max(phase.epochs.start, start), phase.epochs.stop)
                if len(todo):
                    self._run_phase(phase, todo, checkpoint, start)
        except KeyboardInterrupt:
            if self.best.best_epoch is None or not distributed.is_main():
                raise
            interrupted, self.stopped_by = True, "interrupted"
            self.log(f"interrupted: keeping the best epoch so far ({self.best.best_epoch})")
        self.module.cpu()
        if distributed.is_main():
            self.best.load_best(self.module)
        self.module.to(memory_format=torch.contiguous_format).eval()
        return Fit(self.history.rows, self.best.best_epoch, self.budget.used or time.perf_counter() - start_time,
                   interrupted, self.stopped_by, self.total, self.budget.cut)

    def _restore(self, checkpoint: dict[str, Any] | None) -> int:
        """Callback states from `checkpoint`; returns the first epoch still to train."""
        if checkpoint is None:
            return 1
        for c in (self.best, self.early, self.history, self.budget):
            c.restore(checkpoint["callbacks"].get(type(c).__name__, {}))
        done = checkpoint["epoch"]
        self.log(f"resuming after epoch {done} of {self.total}, with the run's original arguments")
        if checkpoint["stopped"]:  # early stopping ended that phase: go on with the next one
            return next((p.epochs.start for p in self.phases if p.epochs.start > done), self.total + 1)
        return done + 1

    def _run_phase(self, phase: Phase, todo: range, checkpoint: dict[str, Any] | None, start: int) -> None:
        self.phase, self.phase_stop, self.stop_training = phase.name, phase.epochs.stop, False
        self.optimizer = phase.optimizer()
        steps = self.hooks.steps()
        total = len(phase.epochs) * steps
        warmup = min(int(phase.max_warmup_epochs * steps), int(phase.warmup * total))
        planned = lambda: (min(self.budget.stop or phase.epochs.stop, phase.epochs.stop)  # noqa: E731
                           - phase.epochs.start) * steps
        self.scheduler = warmup_cosine(self.optimizer, planned, warmup)
        if checkpoint is not None and todo.start == start:  # this phase continues the checkpoint
            self.module.load_state_dict(checkpoint["model"])
            if checkpoint["phase"] == phase.name and checkpoint["epoch"] + 1 == todo.start:
                self.optimizer.load_state_dict(checkpoint["optimizer"])
                self.scheduler.load_state_dict(checkpoint["scheduler"])
        if todo.start == phase.epochs.start:
            self.early.wait = 0  # patience counts within a phase
        net = distributed.wrap(self.module, self.device, sync_bn=self.sync_bn, find_unused=self.find_unused)
        rank, world = distributed.rank_and_world()
        for c in self.callbacks:
            c.on_train_begin(self)
        for epoch in todo:
            seed_everything((self.seed * 100_003 + epoch) * world + rank)  # each rank its own dropout draws
            began = time.perf_counter()
            self.budget.start_epoch()
            logs = self._train_epoch(net, epoch, steps)
            logs.update({f"val_{k}": v for k, v in self._validate().items()})
            logs["lr"] = self.optimizer.param_groups[0]["lr"]
            logs["seconds"] = time.perf_counter() - began
            for c in self.callbacks:
                c.on_epoch_end(self, epoch, logs)
            if self.stop_training:
                self.stopped_by = "plateau"
                break
            if self.budget.cut is not None or (self.budget.stop is not None and epoch + 1 >= self.budget.stop):
                self.stopped_by = "time budget"
                break

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _train_epoch(self, net: nn.Module, epoch: int, steps: int) -> dict[str, float]:
        sums: dict[str, list[float]] = {}
        skipped = 0
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        world = distributed.rank_and_world()[1]
        net.train()
        with self.hooks.train_mode(self.module), distributed.uneven(net):
            for done, batch in enumerate(progress_bar(self.hooks.batches(epoch), total=steps,
                                                      desc=f"epoch {epoch}/{self.total}", unit="batch", leave=False,
                                                      disable=not self.progress), 1):
                if done > 1 and self.budget.spent():  # before each step but the first: every epoch trains
                    self.budget.cut = {"epoch": epoch, "steps_done": done - 1, "steps": steps}
                    self.log(f"time budget ({self.budget.seconds:g} s) used up after {done - 1} of {steps} "
                             f"steps of epoch {epoch}; stopping ({self.total} epochs were planned)")
                    break
                with self._autocast():
                    out = self.hooks.step(net, batch)
                if out is None:
                    continue
                loss = out.loss
                if not bool(torch.isfinite(loss.detach()).all()):
                    skipped += 1
                    if skipped > max(2, steps // 4):
                        raise UsageError("training diverged (the loss is not finite); try a lower --lr")
                    if world == 1:
                        continue
                    # The other ranks are reducing gradients: join them with zeros from this one.
                    loss, out.stats = sum(p.sum() for p in params if p.requires_grad) * 0.0, {}
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if self.hooks.clip_norm:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(params, self.hooks.clip_norm)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                for key, (total, count) in out.stats.items():
                    acc = sums.setdefault(key, [0.0, 0.0])
                    acc[0] += total
                    acc[1] += count
        return distributed.mean_over_ranks(sums, self.device)

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        """The task's validation figures, computed by rank 0 on the unwrapped module and shared."""
        def run() -> dict[str, float]:
            was_training = self.module.training
            self.module.eval()
            try:
                with self._autocast():
                    return {k: float(v) for k, v in self.hooks.validate(self.module).items()}
            finally:
                self.module.train(was_training)

        return distributed.from_rank0(run)
