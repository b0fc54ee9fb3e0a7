"""`visionzoo detect train`: annotated images -> a torchvision detector on a zoo backbone -> a run folder.

The fit loop is `training.Trainer` (seeding per epoch, autocast on CUDA, callbacks) with the
detection step: the model's own loss dict, and validation mAP by the Predictor + COCOeval, the
same path `detect predict` / `detect evaluate` use. The best epoch by val mAP50 (then mAP50-95)
is kept, training stops early when it stops improving, and the saved run is re-evaluated.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tqdm.auto import tqdm

from ...errors import UsageError
from ...training import callbacks as cb
from ...training.freezing import freeze_batchnorm_stats
from ...training.trainer import Trainer, seed_everything, warmup_cosine
from ...versions import package_versions
from ...zoo.rundir import is_run_dir, save_run_model
from ...zoo.spec import ModelSpec, Preprocessing
from .augment import DetectionDataset, collate, train_transform
from .datasets import DetectionData, Sample, load_detection_data, split_samples
from .evaluation import predict_samples, score_samples, summary_line, write_report
from .model import ARCHS, DEFAULT_BACKBONE, DetectorConfig, backbone_groups, build_detector, load_detector
from .predictor import EVAL_CONF, Predictor

Log = Callable[[str], None]
ARGS_FILE = "train_args.json"


@dataclass
class DetectTrainConfig:
    """Training arguments; the defaults were measured on the raccoon set on a 2-core CPU (docs/detect.md)."""

    arch: str = "fasterrcnn"
    backbone: str = DEFAULT_BACKBONE
    epochs: int = 4
    img_size: int = 384                # short side at evaluation; training draws from img_size x scales
    scales: tuple[float, ...] = (0.75, 0.875, 1.0, 1.125)
    freeze: int = 3                    # leading backbone groups kept frozen (stem = 1)
    batch_size: int = 4
    lr: float = 0.01                   # SGD, momentum 0.9
    weight_decay: float = 1e-4
    warmup: float = 0.1                # fraction of all steps (at most two epochs)
    val_split: float = 0.2
    patience: int = 5
    augment: str = "default"           # "default" | "none"
    conf: float = 0.25                 # threshold recorded for predict and for precision / recall
    seed: int = 0
    workers: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UsageError(f"unknown --arch {self.arch!r}; use one of {', '.join(ARCHS)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError("--epochs and --batch-size must be at least 1")
        if self.img_size < 64 or self.img_size % 32:
            raise UsageError(f"--image-size must be a multiple of 32 and at least 64, got {self.img_size}")
        if self.freeze < 0:
            raise UsageError("--freeze must be >= 0")
        if self.augment not in ("default", "none"):
            raise UsageError("--augment must be 'default' or 'none'")
        self.scales = tuple(float(s) for s in self.scales)

    def train_sizes(self) -> tuple[int, ...]:
        return tuple(sorted({max(32, int(round(self.img_size * s / 32)) * 32) for s in self.scales}))


class DetectionTrainer(Trainer):
    """Trainer with the detection step: the model sums its own losses; validation is mAP."""

    def __init__(self, *args, train_sizes: tuple[int, ...], classes: list[str], workers: int | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_sizes, self.classes, self.workers = train_sizes, classes, workers

    def train_epoch(self, batches: Iterator, steps: int, desc: str) -> dict[str, float]:
        model = self.module
        model.train()
        freeze_batchnorm_stats(model.backbone.body)  # small batches: keep the pretrained statistics
        eval_size = model.transform.min_size
        model.transform.min_size = self.train_sizes  # torchvision's multi-scale training: one size per image
        sums: dict[str, float] = {}
        seen = skipped = 0
        try:
            for images, targets in tqdm(batches, total=steps, desc=desc, unit="batch", leave=False,
                                        disable=not self.progress):
                images = [x.to(self.device, non_blocking=True) for x in images]
                targets = [{k: v.to(self.device) for k, v in t.items()} for t in targets]
                with self._autocast():
                    losses = model(images, targets)
                loss = sum(losses.values())
                if not math.isfinite(float(loss.detach())):
                    skipped += 1
                    if skipped > max(2, steps // 4):
                        raise UsageError("training diverged (the loss is not finite); try a lower --lr")
                    self.optimizer.zero_grad(set_to_none=True)
                    continue
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], 10.0)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                n = len(images)
                seen += n
                for k, v in [("loss", loss), *losses.items()]:
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) * n
        finally:
            model.transform.min_size = eval_size
        return {k: v / max(seen, 1) for k, v in sums.items()}

    @torch.no_grad()
    def evaluate(self, samples: list[Sample]) -> dict[str, float]:
        """mAP50 and mAP50-95 of the current weights on the validation images (the predict path)."""
        predictor = Predictor(_as_detector(self.module, self.classes), conf=EVAL_CONF, device=str(self.device))
        preds = predict_samples(predictor, samples, workers=self.workers)
        report = score_samples(samples, preds, self.classes, conf=EVAL_CONF)
        return {"map50": report["map50"], "map": report["map"]}


def _as_detector(module: torch.nn.Module, classes: list[str]):
    from .model import BACKGROUND, Detector

    return Detector(module, [BACKGROUND, *classes], "training")


def detection_score(logs: dict[str, float]) -> tuple[float, float]:
    """Higher is better: val mAP50, then val mAP50-95; without validation, the (negated) training loss."""
    if "val_map50" in logs:
        return (round(logs["val_map50"], 6), round(logs["val_map"], 6))
    return (-logs["loss"], 0.0)


def _batches(samples: list[Sample], cfg: DetectTrainConfig, masks: bool, failures: dict[str, str]
             ) -> Callable[[int], Iterator[tuple[list, list]]]:
    """Shuffled, augmented batches per epoch (seeded by epoch); undecodable images recorded and left out."""
    from ...data.loader import default_workers

    sizes = cfg.train_sizes()
    dataset = DetectionDataset(samples, train_transform(cfg.augment), short=max(sizes),
                               long=int(max(sizes) * 5 / 3), masks=masks)
    workers = default_workers(len(samples), cfg.batch_size) if cfg.workers is None else cfg.workers

    def batches(epoch: int) -> Iterator[tuple[list, list]]:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=g,
                                             num_workers=workers, collate_fn=collate,
                                             drop_last=len(dataset) > cfg.batch_size)
        for images, targets, failed in loader:
            for i, reason in failed:
                failures[samples[i].path] = reason
            if images:
                yield images, targets

    return batches


def _optimizer(model: torch.nn.Module, cfg: DetectTrainConfig, backbone_arch: str) -> torch.optim.Optimizer:
    """SGD over everything but the first `freeze` backbone groups, which stop training."""
    groups = backbone_groups(model.backbone.body, backbone_arch)
    if cfg.freeze > len(groups):
        raise UsageError(f"--freeze {cfg.freeze}: the backbone has only {len(groups)} groups (stem first)")
    for group in groups[:cfg.freeze]:
        for p in group:
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def _describe_issues(data: DetectionData, log: Log) -> None:
    for issue in data.issues:
        log(f"{'skipped' if issue.skipped else 'note'} {issue.file}: {issue.reason}")


def _relative(paths: list[str], root: str) -> list[str]:
    base = Path(root) if Path(root).is_dir() else Path(root).parent
    return [os.path.relpath(p, base) for p in paths]


def train(data: str | os.PathLike, out: str | os.PathLike, *, val: str | os.PathLike | None = None,
          annotations: str | os.PathLike | None = None, val_annotations: str | os.PathLike | None = None,
          progress: bool = False, log: Log | None = print, **options: Any) -> dict[str, Any]:
    """Train a detector on DATA (VOC, COCO or YOLO, detected from the folder) and save the run in `out`.

    Options are DetectTrainConfig fields (arch, backbone, epochs, img_size, freeze, batch_size, lr,
    val_split, patience, ...). Without `val`, a seeded `val_split` of the images is held out (the
    seed and files are recorded). Returns {"run_dir", "report", "config"}.
    """
    log = log or (lambda _msg: None)
    cfg = DetectTrainConfig(**options)
    run_dir = Path(out)
    if is_run_dir(run_dir) or (run_dir / ARGS_FILE).exists():
        raise UsageError(f"{run_dir} already holds a run; choose another --out (nothing there is overwritten)")
    data_set = load_detection_data(data, annotations)
    _describe_issues(data_set, log)
    classes = data_set.classes
    if val is not None:
        val_set = load_detection_data(val, val_annotations, classes=classes)
        _describe_issues(val_set, log)
        train_samples, val_samples = data_set.samples, val_set.samples
        split = {"source": str(val), "files": _relative([s.path for s in val_samples], str(val))}
    else:
        train_samples, val_samples = split_samples(data_set.samples, cfg.val_split, cfg.seed)
        split = {"fraction": cfg.val_split, "seed": cfg.seed,
                 "files": _relative([s.path for s in val_samples], data_set.root)}
    masks = cfg.arch == "maskrcnn"
    if masks and not data_set.has_masks:
        raise UsageError(f"--arch maskrcnn needs masks (COCO polygons or RLE, or YOLO-seg polygons); {data} has only boxes")
    log(f"data: {data_set.describe()}; train {len(train_samples)} images, val {len(val_samples)}")

    from .model import _timm_arch

    backbone_arch, spec = _timm_arch(cfg.backbone)
    sizes = cfg.train_sizes()
    det_cfg = DetectorConfig(arch=cfg.arch, backbone=cfg.backbone, backbone_arch=backbone_arch,
                             num_classes=len(classes), img_size=cfg.img_size, max_size=int(cfg.img_size * 5 / 3),
                             mean=tuple(spec.preprocessing.mean), std=tuple(spec.preprocessing.std))
    seed_everything(cfg.seed)
    model = build_detector(det_cfg, pretrained_backbone=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ARGS_FILE).write_text(
        __import__("json").dumps({"data": str(data), "val": str(val) if val else None,
                                  "config": asdict(cfg)}, indent=2), "utf-8")

    failures: dict[str, str] = {}
    train_batches = _batches(train_samples, cfg, masks, failures)
    steps = max(1, len(train_samples) // cfg.batch_size if len(train_samples) > cfg.batch_size else 1)
    optimizer = _optimizer(model, cfg, backbone_arch)
    total = cfg.epochs * steps
    scheduler = warmup_cosine(optimizer, total, warmup_steps=min(2 * steps, int(cfg.warmup * total)))
    best = cb.BestCheckpoint(run_dir, score_fn=detection_score)
    early = cb.EarlyStopping(cfg.patience, score_fn=detection_score)
    loss_keys = ["loss"]
    history = cb.CSVLogger(run_dir, columns=("epoch", "phase", "loss", "loss_classifier", "loss_box_reg",
                                             "loss_objectness", "loss_rpn_box_reg", "loss_mask", "bbox_regression",
                                             "classification", "bbox_ctrness", "val_map50", "val_map", "lr",
                                             "seconds"))
    callbacks = [cb.LogLine(cfg.epochs, log, keys=(*loss_keys, "val_map50", "val_map")), best, early, history]
    trainer = DetectionTrainer(model, optimizer, scheduler, callbacks=callbacks, phase="train", device=cfg.device,
                               seed=cfg.seed, log=log, progress=progress, train_sizes=sizes, classes=classes,
                               workers=cfg.workers)
    start = time.perf_counter()
    interrupted = False
    try:
        trainer.fit(train_batches, (lambda _epoch: val_samples), range(1, cfg.epochs + 1), steps, cfg.epochs)
    except KeyboardInterrupt:
        if best.best_epoch is None:
            raise
        interrupted = True
        log(f"interrupted: saving the best epoch so far ({best.best_epoch}) before stopping")
    train_seconds = time.perf_counter() - start
    model.cpu()
    best.load_best(model)
    for p in model.parameters():
        p.requires_grad_(True)
    for path, reason in sorted(failures.items()):
        log(f"skipped {path}: {reason}")
    result = _finish_run(model.eval(), cfg, det_cfg, spec, data_set, train_samples, val_samples, split, run_dir,
                         history.rows, best.best_epoch, failures, train_seconds, interrupted, log)
    if interrupted:
        raise KeyboardInterrupt
    return result


def _finish_run(model, cfg: DetectTrainConfig, det_cfg: DetectorConfig, spec: ModelSpec, data_set: DetectionData,
                train_samples: list[Sample], val_samples: list[Sample], split: dict, run_dir: Path, history: list[dict],
                best_epoch: int | None, failures: dict[str, str], train_seconds: float, interrupted: bool,
                log: Log) -> dict[str, Any]:
    """Save the run, reload it as a user would, evaluate it on the validation images, record the metrics."""
    from ...viz.train_plots import learning_curves

    classes = data_set.classes
    pre = Preprocessing(input_size=(3, det_cfg.img_size, det_cfg.img_size), interpolation="bilinear",
                        mean=det_cfg.mean, std=det_cfg.std, crop_pct=1.0)
    model.zoo_spec = ModelSpec(
        name=str(run_dir), arch=det_cfg.backbone_arch, library="timm", num_classes=len(classes), labels=list(classes),
        preprocessing=pre, weights=spec.weights, weights_sha256=spec.weights_sha256,
        note=f"{det_cfg.arch} detector trained by visionzoo detect train on a {det_cfg.backbone} backbone",
    )
    best_logs = next((r for r in history if r["epoch"] == best_epoch), history[-1] if history else {})
    extra = {
        "task": "detect",
        "status": "interrupted" if interrupted else "complete",
        "arch": det_cfg.arch,
        "backbone": det_cfg.backbone,
        "classes": list(classes),
        "img_size": det_cfg.img_size,
        "conf": cfg.conf,
        "preprocessing": {"resize": f"short side {det_cfg.img_size}, long side <= {det_cfg.max_size}, aspect kept",
                          "interpolation": "bilinear", "mean": list(det_cfg.mean), "std": list(det_cfg.std),
                          "input": "RGB in [0, 1], EXIF rotation applied"},
        "detector": det_cfg.to_dict(),
        "training": {**asdict(cfg), "train_sizes": list(cfg.train_sizes()), "seconds": round(train_seconds, 1)},
        "dataset": {
            "source": data_set.root, "format": data_set.format, "train_images": len(train_samples),
            "val_images": len(val_samples), "boxes": data_set.n_boxes, "val_split": split,
            "issues": [{"file": i.file, "reason": i.reason, "skipped": i.skipped} for i in data_set.issues],
            "failures": [{"path": p, "error": e} for p, e in sorted(failures.items())],
        },
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "metrics": {"best_epoch": {k: v for k, v in best_logs.items() if isinstance(v, float)}},
        "versions": package_versions(),
    }
    save_run_model(model, run_dir, extra)
    if history:
        learning_curves(history, run_dir / "curves.png", keys=("loss", "map50", "map"))
    detector = load_detector(run_dir)
    predictor = Predictor(detector, conf=EVAL_CONF, device=cfg.device)
    predictions = predict_samples(predictor, val_samples, workers=cfg.workers)
    report = score_samples(val_samples, predictions, classes, conf=cfg.conf, masks=detector.has_masks)
    report = write_report(run_dir, val_samples, predictions, report, classes,
                          title=f"{run_dir.name}: {det_cfg.arch} on {det_cfg.backbone}, validation images")
    metrics = {k: report[k] for k in ("map50", "map", "precision", "recall", "n_images")}
    metrics["per_class"] = report["per_class"]
    if "mask" in report:
        metrics["mask"] = {k: report["mask"][k] for k in ("map50", "map")}
    extra["metrics"]["val"] = metrics
    save_run_model(model, run_dir, extra)  # config.json now carries the saved run's own val metrics
    for leftover in (cb.BEST_FILE, ARGS_FILE):
        (run_dir / leftover).unlink(missing_ok=True)
    log(f"val: {summary_line(report)}")
    log(f"saved run: {run_dir} (training {train_seconds:.0f} s)")
    return {"run_dir": str(run_dir), "report": report, "config": extra}
