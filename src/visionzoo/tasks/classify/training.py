"""`classify train` (also `visionzoo train`): labelled images -> a zoo model with a new head -> run folder.

Strategies:
- auto (default): backbone and head chosen by cross-validation on cached features (auto.py).
- linear: backbone features are computed once with `tasks.embed` and the new head is fitted on
  them for `epochs`; the full model (backbone + head) is saved.
- finetune: phase "head" trains the new head on the frozen backbone; phase "finetune" unfreezes
  all but the first `freeze` blocks, the backbone at `backbone_lr_scale` x the head's rate, with
  pretrained BatchNorm statistics kept.
- scratch: random weights, strong augmentation, everything trained.
The fit loop, resume, data-parallel ranks and the run folder are the training engine's.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from ...data import eval_transform, iter_batches, train_transform
from ...data.loader import ImageListDataset, collate
from ...errors import UsageError
from ...training import distributed
from ...training.batches import loader_batches, steps_per_epoch, tensor_batches
from ...training.engine import Fit, Phase, Step, TaskHooks, seed_everything
from ...training.freezing import freeze_batchnorm_stats, head_parameters, set_trainable
from ...training.leaks import check_leaks
from ...training.run import Recipe, train_run
from ...zoo.rundir import is_run_dir, read_config
from .auto import train_auto
from .config import AUTO, FEATURE_STRATEGIES, TrainConfig
from .data import Split, kfold_splits, load_dataset
from .model import build_model
from .runfolder import CURVE_KEYS, finish, held_out

Log = Callable[[str], None]


class ClassifyHooks(TaskHooks):
    """Batches are (images or cached features, class indices); the figures are loss and accuracy."""

    log_keys = curve_keys = CURVE_KEYS

    def __init__(self, train: Callable[[int], Iterator], steps: int, val: Callable[[], Iterator] | None, *,
                 label_smoothing: float, freeze_bn: bool):
        self.train, self.n_steps, self.val, self.freeze_bn = train, steps, val, freeze_bn
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.eval_loss_fn = nn.CrossEntropyLoss()

    def batches(self, epoch: int) -> Iterator:
        return self.train(epoch)

    def steps(self) -> int:
        return self.n_steps

    def step(self, net: nn.Module, batch) -> Step:
        x, y = (t.to(next(net.parameters()).device, non_blocking=True) for t in batch)
        logits = net(x).float()
        loss = self.loss_fn(logits, y)
        n = float(len(y))
        return Step(loss, {"loss": (loss.item() * n, n), "acc": (float((logits.argmax(1) == y).sum()), n)})

    def validate(self, module: nn.Module) -> dict[str, float]:
        if self.val is None:
            return {}
        device = next(module.parameters()).device
        loss_sum, correct, seen = 0.0, 0, 0
        for x, y in self.val():
            x, y = x.to(device), y.to(device)
            logits = module(x).float()
            loss_sum += float(self.eval_loss_fn(logits, y)) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        return {"loss": loss_sum / max(seen, 1), "acc": correct / max(seen, 1)}

    def score(self, logs: dict[str, float]) -> tuple[float, float]:
        """Validation accuracy first, then (lower) loss to break ties; training figures without val."""
        if "val_acc" in logs:
            return (round(logs["val_acc"], 6), -logs["val_loss"])
        return (round(logs["acc"], 6), -logs["loss"])

    def train_mode(self, module: nn.Module):
        module.train()
        if self.freeze_bn:  # a few hundred images in small batches: keep the pretrained statistics
            freeze_batchnorm_stats(module)
        return contextlib.nullcontext()


def image_batches(split: Split, transform, *, batch_size: int, seed: int, failures: dict[str, str],
                  workers: int | None = None, target_size: int | None = None):
    """Epoch -> (images, targets) of this rank's slice of each shuffled batch; images that fail to
    decode are recorded in `failures` (path -> reason) and left out of their batch."""
    targets = torch.as_tensor(split.targets, dtype=torch.long)
    batches = loader_batches(ImageListDataset(split.paths, transform, target_size), batch_size=batch_size,
                             seed=seed, collate=collate, workers=workers)

    def pairs(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in batches(epoch):
            failures.update({split.paths[i]: reason for i, reason in batch.failures})
            if batch.tensor is not None:
                yield batch.tensor, targets[batch.indices]

    return pairs


def _eval_pairs(split: Split, transform, *, cfg: TrainConfig, failures: dict[str, str], size: int):
    targets = torch.as_tensor(split.targets, dtype=torch.long)

    def pairs() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in iter_batches(split.paths, transform, batch_size=cfg.batch_size, workers=cfg.workers,
                                  target_size=size):
            failures.update({split.paths[i]: reason for i, reason in batch.failures})
            if batch.tensor is not None:
                yield batch.tensor, targets[batch.indices]

    return pairs


def _features(module: nn.Module, paths: list[str], cfg: TrainConfig, cache: dict, failures: dict, progress: bool):
    """Pre-logits features of `paths` via tasks.embed, cached by path across folds."""
    from ..embed import embed_images

    todo = sorted(set(paths) - set(cache))
    if todo:
        emb = embed_images(todo, module, layer="pre_logits", batch_size=cfg.batch_size, workers=cfg.workers,
                           device=cfg.device, progress=progress)
        cache.update({p: torch.from_numpy(row) for p, row in zip(emb.paths, emb.matrix)})
        failures.update(dict(emb.failures))


def _feature_split(split: Split, cache: dict) -> tuple[torch.Tensor, torch.Tensor]:
    keep = [(p, t) for p, t in zip(split.paths, split.targets) if p in cache]
    if not keep:
        raise UsageError("none of the images in a split could be read")
    return torch.stack([cache[p] for p, _ in keep]), torch.tensor([t for _, t in keep], dtype=torch.long)


def _optimizer(cfg: TrainConfig, module: nn.Module, phase: str, target: nn.Module) -> torch.optim.Optimizer:
    """Set what trains in this phase and return its AdamW optimizer (param groups per rate)."""
    if phase == "linear":
        groups = [{"params": list(target.parameters()), "lr": cfg.lr}]
    elif phase == "head":
        set_trainable(module, head=True, frozen_blocks=None)
        groups = [{"params": head_parameters(module), "lr": cfg.lr}]
    elif phase == "finetune":
        backbone = set_trainable(module, head=True, frozen_blocks=cfg.freeze)
        groups = [{"params": head_parameters(module), "lr": cfg.lr}]
        if backbone:
            groups.append({"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale})
    else:  # scratch
        for p in module.parameters():
            p.requires_grad_(True)
        groups = [{"params": list(module.parameters()), "lr": cfg.lr}]
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def _phase_names(cfg: TrainConfig) -> list[tuple[str, range]]:
    if cfg.strategy == "finetune":
        phases = [("head", range(1, cfg.head_epochs + 1)), ("finetune", range(cfg.head_epochs + 1, cfg.epochs + 1))]
        return [(name, r) for name, r in phases if len(r)]
    return [(cfg.strategy, range(1, cfg.epochs + 1))]


class ClassifyRecipe(Recipe):
    task = "classify"

    def __init__(self, config: TrainConfig, inputs: dict[str, str | None]):
        super().__init__(config, inputs)
        self.feature_cache: dict = {}

    @property
    def parallel(self) -> bool:
        return self.config.strategy not in FEATURE_STRATEGIES

    @property
    def why_not_parallel(self) -> str:
        return f"{self.config.strategy}: heads are fitted on features computed once"

    @property
    def sync_bn(self) -> bool:
        return self.config.strategy != "finetune"  # fine-tuning keeps the pretrained statistics

    def setup(self, run_dir: Path, log: Log, progress: bool) -> None:
        cfg = self.config
        self.ds = load_dataset(self.inputs["data"], val_split=cfg.val_split, seed=cfg.seed,
                               encoding=self.inputs.get("encoding") or "utf-8")
        log(f"data: {self.ds.describe()}")
        self.leaks = check_leaks(self.ds.train.paths, {"val": self.ds.val.paths if self.ds.val else []}, log)
        if not cfg.cv and cfg.strategy != AUTO:
            self.prepare(self.ds.train, self.ds.val, held_out(self.ds, self.ds.train, self.ds.val), progress)

    def prepare(self, train: Split, val: Split | None, report_on: tuple[str, Split], progress: bool) -> None:
        """Model, hooks and phases for training on (train, val), reported on `report_on`."""
        cfg = self.config
        seed_everything(cfg.seed)  # the new head (or every weight, for scratch) starts the same each time
        self.full = build_model(cfg, self.ds.labels)
        self.train_split, self.val_split, self.report_on, self.failures = train, val, report_on, {}
        pre = self.full.zoo_spec.preprocessing
        if cfg.strategy == "linear":
            _features(self.full, train.paths + (val.paths if val else []), cfg, self.feature_cache, self.failures,
                      progress)
            self.module = self.full.get_classifier()
            x, y = _feature_split(train, self.feature_cache)
            val_pairs = None
            if val:
                vx, vy = _feature_split(val, self.feature_cache)
                val_pairs = tensor_batches(vx, vy, batch_size=256, seed=cfg.seed, shuffle=False)
            self.hooks = ClassifyHooks(tensor_batches(x, y, batch_size=cfg.batch_size, seed=cfg.seed),
                                       steps_per_epoch(len(x), cfg.batch_size),
                                       (lambda: val_pairs(0)) if val_pairs else None,
                                       label_smoothing=cfg.label_smoothing, freeze_bn=False)
        else:
            self.module = self.full
            train_pairs = image_batches(train, train_transform(pre, strength=cfg.augment), batch_size=cfg.batch_size,
                                        seed=cfg.seed, failures=self.failures, workers=cfg.workers,
                                        target_size=pre.resize_size)
            val_pairs = _eval_pairs(val, eval_transform(pre), cfg=cfg, failures=self.failures,
                                    size=pre.resize_size) if val else None
            self.hooks = ClassifyHooks(train_pairs, steps_per_epoch(len(train), cfg.batch_size), val_pairs,
                                       label_smoothing=cfg.label_smoothing, freeze_bn=cfg.strategy == "finetune")
        self.phases = [Phase(name, epochs, (lambda name=name: _optimizer(cfg, self.full, name, self.module)),
                             warmup=cfg.warmup) for name, epochs in _phase_names(cfg)]

    def run(self, run_dir: Path, checkpoint: dict | None, log: Log, progress: bool) -> dict[str, Any] | None:
        if self.config.cv:
            return self.cross_validate(run_dir, log, progress)
        if self.config.strategy == AUTO:
            return train_auto(self.config, self.ds, run_dir, progress=progress, log=log)
        return super().run(run_dir, checkpoint, log, progress)

    def finish(self, run_dir: Path, fit: Fit, log: Log) -> dict[str, Any]:
        self.full.cpu().eval()
        for p in self.full.parameters():
            p.requires_grad_(True)
        return finish(self.full, self.config, self.ds, self.train_split, self.val_split, self.report_on, run_dir, fit,
                      self.failures, log, extra={"leakage": self.leaks} if getattr(self, "leaks", None) else None)

    def cross_validate(self, run_dir: Path, log: Log, progress: bool) -> dict[str, Any]:
        """K stratified folds over train (+ val) images; each fold is a full run in RUN_DIR/fold_i;
        cv.json holds every fold's held-out metrics and their mean and standard deviation."""
        from ...training.callbacks import read_checkpoint

        cfg, ds = self.config, self.ds
        pool = Split(ds.train.paths + (ds.val.paths if ds.val else []),
                     ds.train.targets + (ds.val.targets if ds.val else []))
        folds = []
        for i, (train, val) in enumerate(kfold_splits(pool, cfg.cv, cfg.seed), 1):
            log(f"fold {i}/{cfg.cv}: train {len(train)}, val {len(val)}")
            fold_dir = run_dir / f"fold_{i}"
            fold_dir.mkdir(parents=True, exist_ok=True)
            checkpoint = read_checkpoint(fold_dir)
            if checkpoint is None and is_run_dir(fold_dir) and read_config(fold_dir).get("status") == "complete":
                folds.append(read_config(fold_dir)["metrics"]["val"])
                continue
            self.prepare(train, val, ("val", val), progress)
            result = Recipe.run(self, fold_dir, checkpoint, log, progress)
            if result is not None:
                folds.append(result["config"]["metrics"]["val"])
        if not distributed.is_main():
            return {"run_dir": str(run_dir)}
        keys = [k for k in folds[0] if k != "n_images"]
        stats = {k: {"mean": float(np.mean([f[k] for f in folds])), "std": float(np.std([f[k] for f in folds]))}
                 for k in keys}
        result = {"k": cfg.cv, "folds": folds, **stats, "training": cfg.to_dict()}
        (run_dir / "cv.json").write_text(json.dumps(result, indent=2), "utf-8")
        log("cross-validation: " + ", ".join(f"{k} {v['mean']:.4f} ± {v['std']:.4f}" for k, v in stats.items()))
        return {"run_dir": str(run_dir), "cv": result}


def train(data: str | os.PathLike, out: str | os.PathLike, *, encoding: str = "utf-8", resume: bool = False,
          progress: bool = False, log: Log | None = print, **options: Any) -> dict[str, Any]:
    """Train a classifier on DATA (class folders with or without train/val/test, or a path,label
    CSV) and save the run in `out`. Options are TrainConfig fields (model, strategy, epochs,
    head_epochs, freeze, lr, batch_size, image_size, val_split, patience, cv, seed, ...).
    Returns {"run_dir", "report", "config"} (with cv: {"run_dir", "cv": per-fold and mean/std})."""
    recipe = ClassifyRecipe(TrainConfig(**options), {"data": os.fspath(data), "encoding": encoding})
    return train_run(train, recipe, out, resume=resume, progress=progress, log=log,
                     call={"data": data, "out": out, "encoding": encoding, **options})
