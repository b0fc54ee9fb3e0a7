"""Callbacks steer the fit loop through a tiny protocol; logs are plain dicts of floats (Keras 3 style).

Each callback can also put its state into the resumable checkpoint (`state` / `restore`), so a
killed run continues exactly where its last completed epoch left it.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..atomic import atomic_path
from ..holds import hold_point

CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.safetensors"
HISTORY_FILE = "history.csv"


class Callback:
    """`trainer` is the engine's Trainer: its module, optimizer, scheduler, phase, log and stop_training."""

    def on_train_begin(self, trainer: Any) -> None: ...
    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None: ...
    def state(self) -> dict[str, Any]:
        return {}
    def restore(self, state: dict[str, Any]) -> None: ...


class EarlyStopping(Callback):
    """Stop when the validation score (`score_fn`, higher is better) has not improved for `patience` epochs."""

    def __init__(self, patience: int, score_fn: Callable[[dict[str, float]], tuple[float, ...]]):
        self.patience = patience
        self.score_fn = score_fn
        self.best: tuple[float, float] | None = None
        self.wait = 0

    def on_epoch_end(self, trainer, epoch, logs):
        key = self.score_fn(logs)
        if self.best is None or key > tuple(self.best):
            self.best, self.wait = key, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.stop_training = True
            trainer.log(f"early stopping: no improvement for {self.patience} epochs")

    def state(self):
        return {"best": list(self.best) if self.best else None, "wait": self.wait}

    def restore(self, state):
        self.best = tuple(state["best"]) if state.get("best") else None
        self.wait = int(state.get("wait", 0))


class BestCheckpoint(Callback):
    """Keep the weights of the best epoch (by validation score) in RUN_DIR/best.safetensors."""

    def __init__(self, run_dir: Path, score_fn: Callable[[dict[str, float]], tuple[float, ...]]):
        self.path = Path(run_dir) / BEST_FILE
        self.score_fn = score_fn
        self.best: tuple[float, float] | None = None
        self.best_epoch: int | None = None

    def on_epoch_end(self, trainer, epoch, logs):
        key = self.score_fn(logs)
        if self.best is None or key > tuple(self.best):
            from safetensors.torch import save_model

            self.best, self.best_epoch = key, epoch
            with atomic_path(self.path) as tmp:
                save_model(trainer.module, str(tmp), force_contiguous=True)

    def load_best(self, module: torch.nn.Module) -> None:
        if self.path.is_file():
            from safetensors.torch import load_model

            load_model(module, str(self.path), device="cpu")

    def state(self):
        return {"best": list(self.best) if self.best else None, "best_epoch": self.best_epoch}

    def restore(self, state):
        self.best = tuple(state["best"]) if state.get("best") else None
        self.best_epoch = state.get("best_epoch")


class CSVLogger(Callback):
    """history.csv: one row per epoch, rewritten whole each time (so a resumed run stays consistent);
    its columns are every figure the epochs logged, in the order they first appeared."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / HISTORY_FILE
        self.rows: list[dict[str, Any]] = []

    def on_epoch_end(self, trainer, epoch, logs):
        self.rows.append({"epoch": epoch, "phase": trainer.phase, **logs})
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        with atomic_path(self.path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    def state(self):
        return {"rows": self.rows}

    def restore(self, state):
        self.rows = [dict(r) for r in state.get("rows", [])]


class LogLine(Callback):
    """One line per epoch: the task's figures (`keys`), their validation values, learning rate, seconds."""

    def __init__(self, total_epochs: int, printer: Callable[[str], None], keys: Sequence[str] = ("loss",)):
        self.total = total_epochs
        self.printer = printer
        self.keys = tuple(keys)

    def on_epoch_end(self, trainer, epoch, logs):
        parts = [f"epoch {epoch}/{self.total} [{trainer.phase}]"]
        parts += [f"{k} {logs[k]:.4f}" for k in self.keys if k in logs]
        parts += [f"val_{k} {logs[f'val_{k}']:.4f}" for k in self.keys if f"val_{k}" in logs]
        parts += [f"lr {logs['lr']:.2e}", f"{logs['seconds']:.1f}s"]
        cut = getattr(getattr(trainer, "budget", None), "cut", None)
        if cut and cut["epoch"] == epoch:
            parts.append(f"stopped by the time budget after {cut['steps_done']}/{cut['steps']} steps")
        self.printer("  ".join(parts))


class ResumeCheckpoint(Callback):
    """RUN_DIR/checkpoint.pt after every epoch: model, optimizer, scheduler, epoch and every
    callback's state, as tensors and plain types only (loads with torch.load(weights_only=True)).
    Data order and augmentation are seeded per epoch, so no RNG stream needs saving."""

    def __init__(self, run_dir: Path, callbacks: list[Callback]):
        self.path = Path(run_dir) / CHECKPOINT_FILE
        self.callbacks = callbacks

    def on_epoch_end(self, trainer, epoch, logs):
        state = {
            "epoch": epoch,
            "phase": trainer.phase,
            "stopped": trainer.stop_training,
            "model": trainer.module.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
            "callbacks": {type(cb).__name__: cb.state() for cb in self.callbacks},
        }
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)
        hold_point("epoch")


def read_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
