"""`train`: dataset -> model with a new head -> phases of the fit loop -> saved run folder + report.

Strategies:
- linear: backbone features are computed once with `tasks.embed` (the extract machinery) and the
  new head is fitted on them; the full model (backbone + head) is saved.
- finetune: phase "head" trains the new head on the frozen backbone; phase "finetune" unfreezes
  all but the first `freeze` blocks, the backbone at `backbone_lr_scale` x the head's rate, with
  pretrained BatchNorm statistics kept.
- scratch: random weights, strong augmentation, everything trained.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..data import eval_transform, train_transform
from ..data.datasets import LabeledDataset, Split, kfold_splits, load_dataset
from ..errors import UsageError
from ..runtime import pick_device
from ..versions import package_versions
from ..zoo import load_model
from ..zoo.rundir import is_run_dir, read_config, save_run_model
from . import callbacks as cb
from . import distributed
from .batches import image_batches, steps_per_epoch, tensor_batches
from .config import AUTO, TrainConfig
from .freezing import head_parameters, set_trainable
from .trainer import Trainer, seed_everything, warmup_cosine

ARGS_FILE = "train_args.json"
Log = Callable[[str], None]


def build_model(cfg: TrainConfig, labels: list[str]) -> nn.Module:
    """The zoo model with a fresh head for `labels` and the run's input size in its spec."""
    module = load_model(cfg.model, pretrained=cfg.strategy != "scratch", num_classes=len(labels))
    spec = module.zoo_spec
    pre = spec.preprocessing if cfg.image_size is None else spec.preprocessing.with_size(cfg.image_size)
    if cfg.strategy == "scratch":
        spec = replace(spec, weights=None, weights_sha256=None, tag=None, top1=None)
    module.zoo_spec = replace(spec, labels=list(labels), preprocessing=pre, top1=None,
                              note=f"trained by visionzoo train --strategy {cfg.strategy} from {cfg.model}")
    return module


# --------------------------------------------------------------------------- phases
def _phases(cfg: TrainConfig) -> list[tuple[str, range]]:
    if cfg.strategy == "finetune":
        phases = [("head", range(1, cfg.head_epochs + 1)), ("finetune", range(cfg.head_epochs + 1, cfg.epochs + 1))]
        return [(name, r) for name, r in phases if len(r)]
    return [(cfg.strategy, range(1, cfg.epochs + 1))]


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


def _features(module: nn.Module, paths: list[str], cfg: TrainConfig, cache: dict, failures: dict, progress: bool):
    """Pre-logits features of `paths` via tasks.embed, cached by path across folds."""
    from ..tasks.embed import embed_images

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


def fit(cfg: TrainConfig, labels: list[str], train: Split, val: Split | None, run_dir: Path, *,
        checkpoint: dict | None = None, feature_cache: dict | None = None, progress: bool = False,
        log: Log = print) -> tuple[nn.Module, dict[str, Any]]:
    """Train one model on (train, val) in `run_dir` (resuming from `checkpoint`); returns the model
    with its best epoch's weights and a summary (history, best epoch, failures)."""
    seed_everything(cfg.seed)  # the new head (or every weight, for scratch) starts the same each time
    module = build_model(cfg, labels)
    pre = module.zoo_spec.preprocessing
    failures: dict[str, str] = {}
    if cfg.strategy == "linear":
        cache = feature_cache if feature_cache is not None else {}
        _features(module, train.paths + (val.paths if val else []), cfg, cache, failures, progress)
        target: nn.Module = module.get_classifier()
        x, y = _feature_split(train, cache)
        train_batches = tensor_batches(x, y, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)
        val_batches = None
        if val:
            vx, vy = _feature_split(val, cache)
            val_batches = tensor_batches(vx, vy, batch_size=256, shuffle=False, seed=cfg.seed)
        steps = steps_per_epoch(len(x), cfg.batch_size, drop_last=False)
    else:
        target = module
        rank, world = distributed.rank_and_world()  # each rank decodes its own slice of every batch
        workers = distributed.rank_workers(cfg.workers)
        train_batches = image_batches(train, train_transform(pre, strength=cfg.augment), batch_size=cfg.batch_size,
                                      shuffle=True, seed=cfg.seed, failures=failures, workers=workers,
                                      target_size=pre.resize_size, rank=rank, world=world)
        val_batches = image_batches(val, eval_transform(pre), batch_size=cfg.batch_size, shuffle=False,
                                    seed=cfg.seed, failures=failures, workers=workers,
                                    target_size=pre.resize_size, rank=rank, world=world) if val else None
        steps = steps_per_epoch(len(train), cfg.batch_size, drop_last=True)

    best = cb.BestCheckpoint(run_dir)
    early = cb.EarlyStopping(cfg.patience)
    history = cb.CSVLogger(run_dir)
    stateful = [best, early, history]
    callbacks = [cb.LogLine(cfg.epochs, log), *stateful, cb.ResumeCheckpoint(run_dir, stateful)]
    if not distributed.is_main():
        callbacks = [early]  # same logs on every rank, so the same stop; rank 0 alone writes
    phases = _phases(cfg)
    module.to(pick_device(cfg.device))  # before optimizers exist, so restored optimizer state lands there too
    start = 1
    if checkpoint is not None:
        for c in stateful:
            c.restore(checkpoint["callbacks"].get(type(c).__name__, {}))
        done = checkpoint["epoch"]
        start = done + 1
        if checkpoint["stopped"]:  # early stopping ended that phase: go on with the next one
            start = next((r.start for _, r in phases if r.start > done), cfg.epochs + 1)
        log(f"resuming after epoch {done} of {cfg.epochs}, with the run's original arguments")

    for phase, epochs in phases:
        todo = range(max(epochs.start, start), epochs.stop)
        if not len(todo):
            continue
        optimizer = _optimizer(cfg, module, phase, target)
        total = len(epochs) * steps
        scheduler = warmup_cosine(optimizer, total, warmup_steps=min(steps, int(cfg.warmup * total)))
        if checkpoint is not None and checkpoint["phase"] == phase and checkpoint["epoch"] + 1 == todo.start:
            target.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
        elif checkpoint is not None and todo.start == start:
            target.load_state_dict(checkpoint["model"])
        trainer = Trainer(target, optimizer, scheduler, callbacks=callbacks, phase=phase,
                          label_smoothing=cfg.label_smoothing, freeze_bn=cfg.strategy == "finetune",
                          device=cfg.device, seed=cfg.seed, log=log, progress=progress)
        if todo.start == epochs.start:
            early.wait = 0  # patience counts within a phase
        trainer.fit(train_batches, val_batches, todo, steps, cfg.epochs)

    module.cpu()
    if distributed.is_main():
        best.load_best(target)
    module.to(memory_format=torch.contiguous_format).eval()
    for p in module.parameters():
        p.requires_grad_(True)
    return module, {"history": history.rows, "best_epoch": best.best_epoch, "failures": failures}


# --------------------------------------------------------------------------- the saved run
def _finish_run(module: nn.Module, cfg: TrainConfig, ds_info: dict, labels: list[str], held_out: tuple[str, Split],
                run_dir: Path, summary: dict, log: Log) -> dict[str, Any]:
    """Save the run folder, then evaluate the model reloaded from it (so the report is what the
    saved run predicts) and record the metrics in config.json."""
    from ..eval.report import evaluate_split, summary_line, write_report
    from ..viz.train_plots import learning_curves

    history = summary["history"]
    best_logs = next((r for r in history if r["epoch"] == summary["best_epoch"]), history[-1] if history else {})
    chosen_by = {k: summary[k] for k in ("auto",) if k in summary}  # strategy auto: what was chosen and why
    extra = {
        "status": "complete",
        "architecture": module.zoo_spec.full_arch,
        "labels": labels,
        "preprocessing": module.zoo_spec.to_dict()["preprocessing"],
        "training": cfg.to_dict(),
        "dataset": {**ds_info, "failures": [{"path": p, "error": e} for p, e in sorted(summary["failures"].items())]},
        "epochs_run": len(history),
        "best_epoch": summary["best_epoch"],
        "metrics": {"best_epoch": {k: v for k, v in best_logs.items() if isinstance(v, float)}},
        **chosen_by,
        "versions": package_versions(),
    }
    save_run_model(module, run_dir, extra)
    if history:
        learning_curves(history, run_dir / "curves.png")
    name, split = held_out
    saved = load_model(run_dir)
    y_true, probs, paths, failed = evaluate_split(saved, split, labels, batch_size=cfg.batch_size,
                                                  workers=cfg.workers, device=cfg.device)
    if not paths:
        raise UsageError(f"none of the {name} images could be read")
    report = write_report(run_dir, y_true, probs, paths, labels, failed,
                          title=f"{Path(run_dir).name}: {cfg.strategy} {cfg.model} on {name} images",
                          extra={"run": str(run_dir), "split": name, **chosen_by})
    extra["metrics"][name] = {k: report[k] for k in ("accuracy", "macro_f1", "log_loss", "roc_auc", "pr_auc", "n_images")
                              if k in report}
    save_run_model(module, run_dir, extra)  # config.json now carries the held-out metrics too
    for leftover in (cb.CHECKPOINT_FILE, cb.BEST_FILE):
        (run_dir / leftover).unlink(missing_ok=True)
    log(f"{name}: {summary_line(report)}")
    log(f"saved run: {run_dir}")
    return {"run_dir": str(run_dir), "report": report, "config": extra}


def _held_out(ds_train: Split, val: Split | None, test: Split | None) -> tuple[str, Split]:
    if test:
        return "test", test
    if val:
        return "val", val
    return "train", ds_train


def _ds_info(ds: LabeledDataset, train: Split, val: Split | None) -> dict[str, Any]:
    k = len(ds.labels)
    info = {"source": ds.source, "layout": ds.layout, "skipped_non_images": len(ds.skipped),
            "train": dict(zip(ds.labels, train.counts(k)))}
    if val:
        info["val"] = dict(zip(ds.labels, val.counts(k)))
    if ds.test:
        info["test"] = dict(zip(ds.labels, ds.test.counts(k)))
    return info


def _resume_state(run_dir: Path, cfg: TrainConfig, data: str) -> tuple[TrainConfig, dict | None]:
    """The stored arguments of the run in `run_dir` and its last epoch's checkpoint (if any)."""
    args_file = run_dir / ARGS_FILE
    if not args_file.is_file():
        raise UsageError(f"nothing to resume in {run_dir} (no {ARGS_FILE}); start without --resume")
    stored = json.loads(args_file.read_text("utf-8"))
    if Path(stored["data"]).resolve() != Path(data).resolve():
        raise UsageError(f"{run_dir} was trained on {stored['data']}, not {data}")
    how = {"device": cfg.device, "workers": cfg.workers, "num_workers": cfg.num_workers}  # not what is learnt
    return TrainConfig(**{**stored["config"], **how}), cb.read_checkpoint(run_dir)


def _start_run_dir(run_dir: Path, cfg: TrainConfig, data: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ARGS_FILE).write_text(json.dumps({"data": str(data), "config": cfg.to_dict()}, indent=2), "utf-8")


def train(data: str | os.PathLike, out: str | os.PathLike, *, resume: bool = False, progress: bool = False,
          log: Log | None = print, **options: Any) -> dict[str, Any]:
    """Train a classifier on DATA (class folders with or without train/val/test, or a path,label
    CSV) and save the run in `out`. Options are TrainConfig fields (model, strategy, epochs,
    head_epochs, freeze, lr, batch_size, image_size, val_split, patience, cv, seed, ...).
    Returns {"run_dir", "report", "config"} (with cv: {"run_dir", "cv": per-fold and mean/std})."""
    log = log or (lambda _msg: None)
    cfg = TrainConfig(**options)
    run_dir = Path(out)
    checkpoint = None
    if resume:
        cfg, checkpoint = _resume_state(run_dir, cfg, str(data))
        if checkpoint is None and is_run_dir(run_dir) and read_config(run_dir).get("status") == "complete":
            log(f"{run_dir} is already complete; nothing to resume")
            return {"run_dir": str(run_dir), "config": read_config(run_dir),
                    "report": json.loads((run_dir / "report.json").read_text("utf-8"))}
    elif is_run_dir(run_dir) or (run_dir / ARGS_FILE).exists():
        raise UsageError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if cfg.num_workers > 1 and cfg.strategy not in distributed.FEATURE_STRATEGIES and not distributed.launched():
        return distributed.launch(train, cfg.num_workers, data, out, resume=resume, progress=progress, log=log,
                                  **options)  # every rank comes back here, as under torchrun
    cfg = distributed.join(cfg, log)
    if cfg is None or not distributed.is_main():
        log, progress = (lambda _msg: None), False
    if cfg is None:
        return {"run_dir": str(run_dir)}
    ds = load_dataset(data, val_split=cfg.val_split, seed=cfg.seed)
    if not resume and distributed.is_main():
        _start_run_dir(run_dir, cfg, str(data))
    log(f"data: {ds.describe()}")
    if cfg.cv:
        return _cross_validate(cfg, ds, run_dir, progress, log)
    if cfg.strategy == AUTO:
        from .auto import train_auto

        return train_auto(cfg, ds, run_dir, progress=progress, log=log)
    module, summary = fit(cfg, ds.labels, ds.train, ds.val, run_dir, checkpoint=checkpoint, progress=progress, log=log)
    if not distributed.is_main():
        return {"run_dir": str(run_dir)}
    for path, reason in sorted(summary["failures"].items()):
        log(f"skipped {path}: {reason}")
    return _finish_run(module, cfg, _ds_info(ds, ds.train, ds.val), ds.labels, _held_out(ds.train, ds.val, ds.test),
                       run_dir, summary, log)


def _cross_validate(cfg: TrainConfig, ds: LabeledDataset, run_dir: Path, progress: bool, log: Log) -> dict[str, Any]:
    """K stratified folds over train (+ val) images; each fold is a full run in RUN_DIR/fold_i;
    cv.json holds every fold's held-out metrics and their mean and standard deviation."""
    pool = Split(ds.train.paths + (ds.val.paths if ds.val else []), ds.train.targets + (ds.val.targets if ds.val else []))
    cache: dict = {}
    folds = []
    for i, (train, val) in enumerate(kfold_splits(pool, cfg.cv, cfg.seed), 1):
        log(f"fold {i}/{cfg.cv}: train {len(train)}, val {len(val)}")
        fold_dir = run_dir / f"fold_{i}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = cb.read_checkpoint(fold_dir)
        if checkpoint is None and is_run_dir(fold_dir) and read_config(fold_dir).get("status") == "complete":
            folds.append(read_config(fold_dir)["metrics"]["val"])
            continue
        module, summary = fit(cfg, ds.labels, train, val, fold_dir, checkpoint=checkpoint, feature_cache=cache,
                              progress=progress, log=log)
        if not distributed.is_main():
            continue
        result = _finish_run(module, cfg, _ds_info(ds, train, val), ds.labels, ("val", val), fold_dir, summary, log)
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
