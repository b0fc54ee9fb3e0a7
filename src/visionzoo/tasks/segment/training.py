"""`segment train`: image/mask pairs -> an smp decoder on a zoo encoder -> a run folder.

The fit loop is visionzoo.training's Trainer (epochs, seeding, callbacks: early stopping, best
checkpoint by val mIoU, CSV history, log line); only the step differs from classification:
Dice + cross-entropy on random crops (aligned image/mask augmentation), and validation mIoU on
whole images, computed exactly as `segment evaluate` computes it.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ...errors import UsageError
from ...training import callbacks as cb
from ...training.trainer import Trainer, seed_everything, warmup_cosine
from ...versions import package_versions
from ...zoo.rundir import is_run_dir, save_run_model
from ...zoo.spec import ModelSpec, Preprocessing
from .data import IGNORE, PairDataset, Sample, collate_pairs, load_seg_dataset, train_augment
from .evaluation import score_samples, write_report
from .model import DEFAULT_BACKBONE, SegConfig, Segmenter, backbone_spec, build_segmenter
from .predictor import Predictor

Log = Callable[[str], None]
HISTORY_COLUMNS = ("epoch", "phase", "loss", "val_miou", "val_acc", "lr", "seconds")


@dataclass
class SegTrainConfig:
    """Training arguments, recorded in the run's config.json."""

    arch: str = "unet"
    backbone: str = DEFAULT_BACKBONE
    epochs: int = 30
    img_size: int = 256               # side of the random training crops (multiple of 32)
    batch_size: int = 4
    lr: float = 1e-3                  # AdamW; the pretrained encoder learns at a tenth of it
    weight_decay: float = 1e-4
    val_split: float = 0.2
    patience: int = 10
    seed: int = 0
    workers: int | None = None
    device: str = "auto"

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError("--epochs and --batch-size must be at least 1")
        if self.img_size < 64 or self.img_size % 32:
            raise UsageError(f"--image-size must be a multiple of 32 and at least 64, got {self.img_size}")


class SegTrainer(Trainer):
    """Batches are (uint8 images, int64 masks, failures); validation is whole-image mIoU."""

    def __init__(self, *args, segmenter: Segmenter, failures: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        import segmentation_models_pytorch as smp

        self.segmenter, self.failures = segmenter, failures
        self.ce = nn.CrossEntropyLoss(ignore_index=IGNORE)
        self.dice = smp.losses.DiceLoss("multiclass", ignore_index=IGNORE)
        self.mean = torch.tensor(segmenter.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(segmenter.std).view(1, 3, 1, 1)

    def train_epoch(self, batches, steps: int, desc: str) -> dict[str, float]:
        from tqdm.auto import tqdm

        self.module.train()
        loss_sum, seen = 0.0, 0
        for images, masks, failed in tqdm(batches, total=steps, desc=desc, unit="batch", leave=False,
                                          disable=not self.progress):
            self.failures.update(dict(failed))
            if images is None:
                continue
            x = ((images.float() / 255 - self.mean) / self.std).to(self.device)
            y = masks.to(self.device)
            with self._autocast():
                logits = self.module(x).float()
            loss = self.ce(logits, y) + self.dice(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            loss_sum += float(loss.detach()) * len(y)
            seen += len(y)
        return {"loss": loss_sum / max(seen, 1)}

    @torch.no_grad()
    def evaluate(self, samples: list[Sample]) -> dict[str, float]:
        predictor = Predictor(self.segmenter, device=str(self.device))
        report, _ = score_samples(predictor, samples)
        return {"miou": report["miou"], "acc": report["pixel_accuracy"]}


def _score(logs: dict[str, float]) -> tuple[float, ...]:
    """Best epoch: highest validation mIoU, then pixel accuracy (lowest training loss without val)."""
    if "val_miou" in logs:
        return (round(logs["val_miou"], 6), round(logs["val_acc"], 6))
    return (-logs["loss"],)


def _repeats(samples: list[Sample], size: int) -> list[int]:
    """Crops per image per epoch: about half as many as tile its area (at most 8), so an epoch sees
    much of every image and a small set still makes a few steps per epoch."""
    return [max(1, min(8, round(s.width * s.height / (2 * size * size)))) for s in samples]


def train(data: str | os.PathLike, out: str | os.PathLike, *, classes: list[str] | None = None,
          progress: bool = False, log: Log | None = print, **options: Any) -> dict[str, Any]:
    """Train a segmenter on DATA (images/ + masks/, see data.py) into the run folder OUT.

    Returns {"run_dir", "report" (validation metrics of the saved run), "config", "failures"}."""
    log = log or (lambda _m: None)
    cfg = SegTrainConfig(**options)
    cfg.check()
    run_dir = Path(out)
    if is_run_dir(run_dir):
        raise UsageError(f"{run_dir} already holds a run; choose another --out (nothing there is overwritten)")
    ds = load_seg_dataset(data, classes=classes, val_split=cfg.val_split, seed=cfg.seed)
    for path, reason in ds.failures:
        log(f"skipped {path}: {reason}")
    log(f"data: {ds.source}: {ds.describe()}")
    backbone_arch, spec = backbone_spec(cfg.backbone)
    seg_cfg = SegConfig(arch=cfg.arch, backbone=cfg.backbone, backbone_arch=backbone_arch,
                        num_classes=len(ds.labels), mean=tuple(spec.preprocessing.mean),
                        std=tuple(spec.preprocessing.std))
    seed_everything(cfg.seed)
    module = build_segmenter(seg_cfg, pretrained_backbone=True)
    segmenter = Segmenter(module, ds.labels, seg_cfg.mean, seg_cfg.std, str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)

    vflip = True  # microscopy, satellite and medical images have no "up"; photos rarely suffer from it
    dataset = PairDataset(ds.train, train_augment(cfg.img_size, vflip=vflip), repeats=_repeats(ds.train, cfg.img_size))
    workers = cfg.workers if cfg.workers is not None else min(2, os.cpu_count() or 1)
    steps = math.ceil(len(dataset) / cfg.batch_size)

    def batches(epoch: int):
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        return iter(torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=g,
                                                num_workers=workers, collate_fn=collate_pairs,
                                                persistent_workers=False))

    encoder = list(module.encoder.parameters())
    ids = {id(p) for p in encoder}
    rest = [p for p in module.parameters() if id(p) not in ids]
    optimizer = torch.optim.AdamW([{"params": encoder, "lr": cfg.lr / 10}, {"params": rest, "lr": cfg.lr}],
                                  weight_decay=cfg.weight_decay)
    total = cfg.epochs * steps
    scheduler = warmup_cosine(optimizer, total, warmup_steps=min(steps * 2, total // 10))
    best = cb.BestCheckpoint(run_dir, score_fn=_score)
    history = cb.CSVLogger(run_dir, columns=HISTORY_COLUMNS)
    callbacks = [cb.LogLine(cfg.epochs, log, keys=("loss", "miou", "acc")), best,
                 cb.EarlyStopping(cfg.patience, score_fn=_score), history]
    failures: dict[str, str] = {}
    trainer = SegTrainer(module, optimizer, scheduler, callbacks=callbacks, phase="train", device=cfg.device,
                         seed=cfg.seed, log=log, progress=progress, segmenter=segmenter, failures=failures)
    start = time.perf_counter()
    trainer.fit(batches, (lambda _epoch: ds.val) if ds.val else None, range(1, cfg.epochs + 1), steps, cfg.epochs)
    seconds = time.perf_counter() - start
    module.cpu()
    best.load_best(module)
    return _finish_run(module.eval(), cfg, seg_cfg, spec, ds, history.rows, best.best_epoch, failures, seconds,
                       run_dir, log)


def _finish_run(module: nn.Module, cfg: SegTrainConfig, seg_cfg: SegConfig, spec: ModelSpec, ds, history: list[dict],
                best_epoch: int | None, failures: dict[str, str], seconds: float, run_dir: Path, log: Log) -> dict:
    """Save the run, reload it as a user would, evaluate it on the validation pairs, record the metrics."""
    from ...viz.train_plots import learning_curves
    from .predictor import load_predictor

    module.zoo_spec = ModelSpec(
        name=str(run_dir), arch=seg_cfg.backbone_arch, library="timm", num_classes=len(ds.labels),
        labels=list(ds.labels), preprocessing=Preprocessing(input_size=(3, cfg.img_size, cfg.img_size),
                                                             interpolation="bilinear", mean=seg_cfg.mean,
                                                             std=seg_cfg.std, crop_pct=1.0),
        weights=spec.weights, weights_sha256=spec.weights_sha256,
        note=f"{seg_cfg.arch} segmenter trained by visionzoo segment train on a {seg_cfg.backbone} encoder")
    extra: dict[str, Any] = {
        "task": "segment", "arch": seg_cfg.arch, "backbone": seg_cfg.backbone, "classes": list(ds.labels),
        "preprocessing": {"input": "RGB, any size (padded to a multiple of 32; tiled past 1024 px)",
                          "mean": list(seg_cfg.mean), "std": list(seg_cfg.std)},
        "segmenter": seg_cfg.to_dict(),
        "training": {**asdict(cfg), "seconds": round(seconds, 1)},
        "dataset": {"source": ds.source, "layout": ds.layout, "train": len(ds.train), "val": len(ds.val),
                    "val_files": [s.image for s in ds.val],
                    "skipped": [{"path": p, "error": e} for p, e in ds.failures],
                    "failures": [{"path": p, "error": e} for p, e in sorted(failures.items())]},
        "epochs_run": len(history), "best_epoch": best_epoch, "versions": package_versions(),
    }
    save_run_model(module, run_dir, extra)
    if history:
        learning_curves(history, run_dir / "curves.png", keys=("loss", "miou", "acc"))
    report = {}
    if ds.val:
        predictor = load_predictor(run_dir, device=cfg.device)
        report, rows = score_samples(predictor, ds.val)
        report = write_report(run_dir, report, rows, ds.labels, title=f"{run_dir.name}: validation images")
        extra["metrics"] = {"val": {k: report[k] for k in ("miou", "pixel_accuracy", "per_class", "n_images")}}
        save_run_model(module, run_dir, extra)
        log(f"val: mIoU {report['miou']:.4f}, pixel accuracy {report['pixel_accuracy']:.4f} on {report['n_images']} images")
    (run_dir / cb.BEST_FILE).unlink(missing_ok=True)
    log(f"saved run: {run_dir} (training {seconds:.0f} s)")
    return {"run_dir": str(run_dir), "report": report, "config": extra,
            "failures": [*ds.failures, *sorted(failures.items())]}
