"""`segment train`: image/mask pairs -> an smp decoder on a zoo encoder -> a run folder.

The fit loop is the training engine's; only the step differs from classification: Dice +
cross-entropy on random crops (image and mask augmented together), and validation mIoU on whole
images, computed exactly as `segment evaluate` computes it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ...deprecation import renamed
from ...errors import UsageError
from ...training.batches import loader_batches, steps_per_epoch
from ...training.engine import Fit, Phase, Step, TaskHooks, seed_everything
from ...training.run import Evaluated, Recipe, RunConfig, finish_run, train_run
from ...zoo.spec import ModelSpec, Preprocessing
from .data import IGNORE, PairDataset, Sample, SegDataset, collate_pairs, load_seg_dataset, train_augment
from .evaluation import score_samples, write_report
from .model import DEFAULT_BACKBONE, SegConfig, Segmenter, backbone_spec, build_segmenter
from .operating import choose_threshold
from .predictor import Predictor

Log = Callable[[str], None]
RENAMED = {"img_size": "crop_size", "image_size": "crop_size"}


@dataclass
class SegTrainConfig(RunConfig):
    """Training arguments, recorded in the run's config.json."""

    arch: str = "unet"
    backbone: str = DEFAULT_BACKBONE
    epochs: int = 30
    crop_size: int = 256              # side of the random training crops (multiple of 32)
    batch_size: int = 4
    lr: float = 1e-3                  # AdamW; the pretrained encoder learns at a tenth of it
    weight_decay: float = 1e-4
    patience: int = 10

    def check(self) -> None:
        super().check()
        if self.crop_size < 64 or self.crop_size % 32:
            raise UsageError(f"--crop-size must be a multiple of 32 and at least 64, got {self.crop_size}")


class SegHooks(TaskHooks):
    """Batches are (uint8 images, int64 masks, failures); validation is whole-image mIoU."""

    log_keys = curve_keys = ("loss", "miou", "acc")

    def __init__(self, dataset: PairDataset, cfg: SegTrainConfig, segmenter: Segmenter, val: list[Sample],
                 failures: dict[str, str]):
        import segmentation_models_pytorch as smp

        self.batches = loader_batches(dataset, batch_size=cfg.batch_size, seed=cfg.seed, collate=collate_pairs,
                                      workers=cfg.workers)
        self.n_steps = steps_per_epoch(len(dataset), cfg.batch_size)
        self.segmenter, self.val, self.failures = segmenter, val, failures
        self.ce = nn.CrossEntropyLoss(ignore_index=IGNORE)
        self.dice = smp.losses.DiceLoss("multiclass", ignore_index=IGNORE)
        self.mean = torch.tensor(segmenter.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(segmenter.std).view(1, 3, 1, 1)

    def steps(self) -> int:
        return self.n_steps

    def step(self, net: nn.Module, batch) -> Step | None:
        images, masks, failed = batch
        self.failures.update(dict(failed))
        if images is None:
            return None
        device = next(net.parameters()).device
        x = ((images.float() / 255 - self.mean) / self.std).to(device)
        y = masks.to(device)
        logits = net(x).float()
        loss = self.ce(logits, y) + self.dice(logits, y)
        return Step(loss, {"loss": (float(loss.detach()) * len(y), float(len(y)))})

    def validate(self, module: nn.Module) -> dict[str, float]:
        if not self.val:
            return {}
        device = str(next(module.parameters()).device)
        report, _ = score_samples(Predictor(self.segmenter, device=device, backend="torch"), self.val)
        return {"miou": report["miou"], "acc": report["pixel_accuracy"]}

    def score(self, logs: dict[str, float]) -> tuple[float, ...]:
        """Best epoch: highest validation mIoU, then pixel accuracy (lowest training loss without val)."""
        if "val_miou" in logs:
            return (round(logs["val_miou"], 6), round(logs["val_acc"], 6))
        return (-logs["loss"],)


def _repeats(samples: list[Sample], size: int) -> list[int]:
    """Crops per image per epoch: about half as many as tile its area (at most 8), so an epoch sees
    much of every image and a small set still makes a few steps per epoch."""
    return [max(1, min(8, round(s.width * s.height / (2 * size * size)))) for s in samples]


class SegRecipe(Recipe):
    task = "segment"
    config: SegTrainConfig

    def setup(self, run_dir: Path, log: Log, progress: bool) -> None:
        cfg = self.config
        classes = self.inputs.get("classes")
        self.ds: SegDataset = load_seg_dataset(self.inputs["data"], classes=classes.split(",") if classes else None,
                                               val_split=cfg.val_split, seed=cfg.seed)
        for path, reason in self.ds.failures:
            log(f"skipped {path}: {reason}")
        log(f"data: {self.ds.source}: {self.ds.describe()}")
        backbone_arch, self.spec = backbone_spec(cfg.backbone)
        self.seg_cfg = SegConfig(arch=cfg.arch, backbone=cfg.backbone, backbone_arch=backbone_arch,
                                 num_classes=len(self.ds.labels), mean=tuple(self.spec.preprocessing.mean),
                                 std=tuple(self.spec.preprocessing.std))
        seed_everything(cfg.seed)
        self.module = build_segmenter(self.seg_cfg, pretrained_backbone=True)
        segmenter = Segmenter(self.module, self.ds.labels, self.seg_cfg.mean, self.seg_cfg.std, str(run_dir))
        vflip = True  # microscopy, satellite and medical images have no "up"; photos rarely suffer from it
        dataset = PairDataset(self.ds.train, train_augment(cfg.crop_size, vflip=vflip),
                              repeats=_repeats(self.ds.train, cfg.crop_size))
        self.failures: dict[str, str] = {}
        self.hooks = SegHooks(dataset, cfg, segmenter, self.ds.val, self.failures)
        self.phases = [Phase("train", range(1, cfg.epochs + 1), self._optimizer, warmup=0.1, max_warmup_epochs=2)]

    def _optimizer(self) -> torch.optim.Optimizer:
        encoder = list(self.module.encoder.parameters())
        ids = {id(p) for p in encoder}
        rest = [p for p in self.module.parameters() if id(p) not in ids]
        return torch.optim.AdamW([{"params": encoder, "lr": self.config.lr / 10},
                                  {"params": rest, "lr": self.config.lr}], weight_decay=self.config.weight_decay)

    def finish(self, run_dir: Path, fit: Fit, log: Log) -> dict[str, Any]:
        from .predictor import load_predictor

        cfg, ds, seg_cfg = self.config, self.ds, self.seg_cfg
        self.module.zoo_spec = ModelSpec(
            name=str(run_dir), arch=seg_cfg.backbone_arch, library="timm", num_classes=len(ds.labels),
            labels=list(ds.labels), preprocessing=Preprocessing(input_size=(3, cfg.crop_size, cfg.crop_size),
                                                                 interpolation="bilinear", mean=seg_cfg.mean,
                                                                 std=seg_cfg.std, crop_pct=1.0),
            weights=self.spec.weights, weights_sha256=self.spec.weights_sha256,
            note=f"{seg_cfg.arch} segmenter trained by visionzoo segment train on a {seg_cfg.backbone} encoder")
        for path, reason in sorted(self.failures.items()):
            log(f"skipped {path}: {reason}")

        def evaluate(saved: Path) -> Evaluated:
            if not ds.val:
                return Evaluated(None, {}, {})
            predictor = load_predictor(saved, device=cfg.device)
            point = choose_threshold(predictor, ds.val)
            if point is not None:
                predictor.conf = point["threshold"]
                log(f"operating point: {ds.labels[1]} where its probability >= {point['threshold']:.2f} "
                    f"(val mIoU {point['miou']:.4f}; {point['miou_at_half']:.4f} at 0.50)")
            report, rows = score_samples(predictor, ds.val)
            report = write_report(saved, report, rows, ds.labels, title=f"{saved.name}: validation images")
            log(f"val: mIoU {report['miou']:.4f}, pixel accuracy {report['pixel_accuracy']:.4f} on "
                f"{report['n_images']} images")
            return Evaluated("val", report, {k: report[k] for k in ("miou", "pixel_accuracy", "per_class", "n_images")},
                             {"operating_point": point} if point else {})

        dataset = {"source": ds.source, "layout": ds.layout, "train": len(ds.train), "val": len(ds.val),
                   "val_files": [s.image for s in ds.val],
                   "skipped": [{"path": p, "error": e} for p, e in ds.failures],
                   "failures": [{"path": p, "error": e} for p, e in sorted(self.failures.items())]}
        result = finish_run(
            run_dir, self.module, task="segment", classes=ds.labels, image_size=cfg.crop_size,
            preprocessing={"input": "RGB, any size (padded to a multiple of 32; tiled past 1024 px)",
                           "mean": list(seg_cfg.mean), "std": list(seg_cfg.std)},
            config=cfg, dataset=dataset, fit=fit, evaluate=evaluate, curve_keys=SegHooks.curve_keys, log=log,
            extra={"arch": seg_cfg.arch, "backbone": seg_cfg.backbone, "segmenter": seg_cfg.to_dict()})
        result["failures"] = result["skipped"] = [*ds.failures, *sorted(self.failures.items())]
        return result


def train(data: str | os.PathLike, out: str | os.PathLike, *, classes: list[str] | None = None,
          resume: bool = False, progress: bool = False, log: Log | None = print, **options: Any) -> dict[str, Any]:
    """Train a segmenter on DATA (images/ + masks/, see data.py) into the run folder OUT; options are
    SegTrainConfig fields. Returns {"run_dir", "report" (validation metrics of the saved run), "config",
    "failures"}."""
    options = renamed(options, RENAMED, "segment train")
    recipe = SegRecipe(SegTrainConfig(**options), {"data": os.fspath(data),
                                                   "classes": ",".join(classes) if classes else None})
    return train_run(train, recipe, out, resume=resume, progress=progress, log=log,
                     call={"data": data, "out": out, "classes": classes, **options})
