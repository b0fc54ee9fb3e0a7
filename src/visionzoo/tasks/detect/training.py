"""`detect train`: annotated images -> a torchvision detector on a zoo backbone -> a run folder.

The fit loop is the training engine's; the detection step is the model's own loss dict, and
validation mAP comes from the Predictor + COCOeval, the same path `detect predict` / `detect
evaluate` use. The best epoch by val mAP50 (then mAP50-95) is kept, training stops early when it
stops improving, and the saved run is re-evaluated.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ...deprecation import renamed
from ...errors import UsageError
from ...training.batches import epochs_for, loader_batches, steps_per_epoch
from ...training.engine import Fit, Phase, Step, TaskHooks, seed_everything
from ...training.freezing import freeze_batchnorm_stats
from ...training.run import Evaluated, Recipe, RunConfig, finish_run, train_run
from ...zoo.spec import ModelSpec, Preprocessing
from .augment import DetectionDataset, collate, train_transform
from .config import DEFAULT_ARCH, DEFAULT_BACKBONE, DetectorConfig
from .datasets import DetectionData, Sample, load_detection_data, split_samples
from .detector import BACKGROUND, Detector, load_detector
from .evaluation import predict_samples, score_samples, summary_line, write_report
from .metrics import evaluate_predictions
from .model import (
    ARCHS,
    backbone_body,
    backbone_groups,
    build_detector,
    family,
    load_coco_weights,
    network_size,
    set_proposals,
)
from .operating import choose, raw_point, suppress
from .predictor import Predictor

Log = Callable[[str], None]
RENAMED = {"img_size": "image_size"}
# The default schedule, set by the data: about this many SGD steps, in whole epochs within these
# bounds (a small set gets more passes over it, a large one fewer); val mAP's plateau (--patience)
# can end it sooner. On the raccoons (128 training photos, 32 steps of 4) that is 10 epochs, measured
# with today's CPU-sized default (docs/benchmarks.md, Detect): epochs of 38-45 s, the whole command 428 s
# on a shared 2-core CPU; best epoch 8, val mAP50 0.994, precision 1.00 and recall 0.97 at the operating point.
EPOCH_STEPS, MIN_EPOCHS, MAX_EPOCHS = 320, 4, 30
# Mask R-CNN's default schedule is twice as long (about 640 steps, at most 60 epochs): on membrane
# cells (~30 instances a tile, docs/benchmarks.md) 320 steps annealed to zero while val mAP50 was
# still rising (test mask mAP50 0.555); 640 steps passed that from its 24th epoch and the plateau
# rule ended it at epoch 40 of 54 (0.670). The plateau rule still ends it sooner where the data allows.
SCHEDULES = {"maskrcnn": (2 * EPOCH_STEPS, 2 * MAX_EPOCHS)}


def default_epochs(arch: str, n_train: int, batch_size: int) -> tuple[int, int, int]:
    """(epochs, steps, most): the default schedule for `arch` on `n_train` training images."""
    steps, most = SCHEDULES.get(arch, (EPOCH_STEPS, MAX_EPOCHS))
    return epochs_for(n_train, batch_size, steps=steps, least=MIN_EPOCHS, most=most), steps, most
# Test-time RPN proposals tried on the validation images when training ends, and how much val mAP50 /
# mAP50-95 fewer may cost against the most: the box head runs once per proposal, so they set a two-stage
# detector's speed. 0.01 is under one box's worth of AP on a validation set of up to 100 boxes (the
# raccoons': 35); on the raccoons 100 proposals scored 0.983 / 0.557 against 300's 0.989 / 0.543.
PROPOSALS, PROPOSALS_SLACK = (300, 100, 50, 25), (0.01, 0.01)
# Tried too when the most of PROPOSALS still gains beyond the slack over the next (many objects per image: on
# ~34 membrane cells per tile, 300 scored 0.608 / 0.237 against 100's 0.532 / 0.216, and 1000 0.615 / 0.239, so
# 300 stayed); RPN training keeps 1000.
MORE_PROPOSALS = 1000


@dataclass
class DetectTrainConfig(RunConfig):
    """Training arguments; the defaults were measured on the raccoon set on a 2-core CPU (README)."""

    arch: str = DEFAULT_ARCH
    backbone: str = DEFAULT_BACKBONE
    epochs: int | None = None          # at most [default: from the data, default_epochs]; val mAP's plateau can end it sooner
    image_size: int = 384              # photos fitted into this square (long side); training draws image_size x scales
    scales: tuple[float, ...] = (0.75, 0.875, 1.0, 1.125)
    freeze: int = 3                    # leading backbone groups kept frozen (stem = 1)
    batch_size: int = 4
    lr: float = 0.01                   # SGD, momentum 0.9
    weight_decay: float = 1e-4
    warmup: float = 0.1                # fraction of all steps (at most two epochs)
    patience: int = 4
    start_from: str | None = None      # a torchvision COCO detector to fine-tune (its head replaced), e.g.
    weights: str | None = None         # fasterrcnn_resnet50_fpn_v2; its weights file [default: hub cache / download]
    augment: str = "default"           # "default" | "none"

    def check(self) -> None:
        super().check()
        if self.start_from:
            from .model import pretrained_names

            if self.start_from not in pretrained_names():
                raise UsageError(f"--from {self.start_from}: not a torchvision detector; one of "
                                 f"{', '.join(pretrained_names())}")
            self.arch = family(self.start_from)
        elif self.arch not in ARCHS:
            raise UsageError(f"unknown --arch {self.arch!r}; use one of {', '.join(ARCHS)}")
        if self.image_size < 64 or self.image_size % 32:
            raise UsageError(f"--image-size must be a multiple of 32 and at least 64, got {self.image_size}")
        if self.freeze < 0:
            raise UsageError("--freeze must be >= 0")
        if self.augment not in ("default", "none"):
            raise UsageError("--augment must be 'default' or 'none'")
        self.scales = tuple(float(s) for s in self.scales)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "train_sizes": list(self.train_sizes())}

    def train_sizes(self) -> tuple[int, ...]:
        return tuple(sorted({max(32, int(round(self.image_size * s / 32)) * 32) for s in self.scales}))


class PerImageSampler:
    """torchvision's positive / negative anchor sampler, drawing each image's samples from that image's own
    seed: N data-parallel ranks then sample exactly what one process would (a rank holds part of a batch)."""

    def __init__(self, sampler, offset: int):
        self.sampler, self.offset, self.seeds = sampler, offset, None

    def __call__(self, matched_idxs):
        if self.seeds is None:
            return self.sampler(matched_idxs)
        positive, negative = [], []
        for matched, seed in zip(matched_idxs, self.seeds):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed) + self.offset)
                pos, neg = self.sampler([matched])
            positive += pos
            negative += neg
        return positive, negative


class DetectHooks(TaskHooks):
    """Batches are (images, targets, failures); the model sums its own losses; validation is mAP."""

    clip_norm = 10.0
    log_keys = ("loss", "map50", "map")
    curve_keys = ("loss", "map50", "map")

    def __init__(self, dataset: DetectionDataset, cfg: DetectTrainConfig, classes: list[str], val: list[Sample],
                 failures: dict[str, str]):
        self.samples = dataset.samples
        self.batches = loader_batches(dataset, batch_size=cfg.batch_size, seed=cfg.seed, collate=collate,
                                      workers=cfg.workers)
        self.n_steps = steps_per_epoch(len(dataset), cfg.batch_size)
        self.classes, self.val, self.failures, self.workers = classes, val, failures, cfg.workers
        self.samplers: list[PerImageSampler] = []

    def steps(self) -> int:
        return self.n_steps

    def step(self, net: torch.nn.Module, batch) -> Step | None:
        images, targets, failed = batch
        self.failures.update({self.samples[i].path: reason for i, reason in failed})
        if not images:
            return None
        device = next(net.parameters()).device
        seeds = [t.pop("seed") for t in targets]
        for sampler in self.samplers:
            sampler.seeds = seeds
        images = [x.to(device, non_blocking=True) for x in images]
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        losses = net(images, targets)
        loss = sum(losses.values())
        n = float(len(images))
        return Step(loss, {k: (float(v.detach()) * n, n) for k, v in [("loss", loss), *losses.items()]})

    def validate(self, module: torch.nn.Module) -> dict[str, float]:
        """mAP50 and mAP50-95 of the current weights on the validation images (the predict path)."""
        if not self.val:
            return {}
        detector = Detector(module, [BACKGROUND, *self.classes], "training")
        predictor = Predictor(detector, point=raw_point(), device=str(next(module.parameters()).device),
                              backend="torch")
        predictions = predict_samples(predictor, self.val, workers=self.workers)
        report = evaluate_predictions(self.val, [p for p in predictions if not p.get("error")], self.classes)
        return {"map50": report["map50"], "map": report["map"]}

    def score(self, logs: dict[str, float]) -> tuple[float, float]:
        """Higher is better: val mAP50, then val mAP50-95; without validation, the (negated) training loss."""
        if "val_map50" in logs:
            return (round(logs["val_map50"], 6), round(logs["val_map"], 6))
        return (-logs["loss"], 0.0)

    @contextlib.contextmanager
    def train_mode(self, module: torch.nn.Module) -> Iterator[None]:
        """Training mode with the pretrained backbone's BatchNorm statistics kept (small batches), the
        detector's own resize off (training images arrive at their drawn size, augment.py) and its anchor
        samplers drawing per image."""
        module.train()
        freeze_batchnorm_stats(backbone_body(module))
        module.transform.resize = lambda image, target=None: (image, target)
        owners = [m for m in (getattr(module, "rpn", None), getattr(module, "roi_heads", None)) if m is not None]
        self.samplers = [PerImageSampler(m.fg_bg_sampler, k) for k, m in enumerate(owners)]
        for owner, sampler in zip(owners, self.samplers):
            owner.fg_bg_sampler = sampler
        try:
            yield
        finally:
            del module.transform.resize
            for owner, sampler in zip(owners, self.samplers):
                owner.fg_bg_sampler = sampler.sampler
            self.samplers = []


def _optimizer(model: torch.nn.Module, cfg: DetectTrainConfig, backbone_arch: str | None) -> torch.optim.Optimizer:
    """SGD over everything but the first `freeze` backbone groups, which stop training."""
    groups = backbone_groups(backbone_body(model), backbone_arch)
    if cfg.freeze > len(groups):
        raise UsageError(f"--freeze {cfg.freeze}: the backbone has only {len(groups)} groups (stem first)")
    for group in groups[:cfg.freeze]:
        for p in group:
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def _relative(paths: list[str], root: str) -> list[str]:
    base = Path(root) if Path(root).is_dir() else Path(root).parent
    return [os.path.relpath(p, base) for p in paths]


class DetectRecipe(Recipe):
    task = "detect"
    config: DetectTrainConfig

    @property
    def find_unused(self) -> bool:
        return self.config.arch == "maskrcnn"  # a batch without objects leaves the mask head without gradients

    def _read(self, data: str | None, annotations: str | None, log: Log, classes=None) -> DetectionData:
        found = load_detection_data(data, annotations, classes=classes)
        for issue in found.issues:
            log(f"{'skipped' if issue.skipped else 'note'} {issue.file}: {issue.reason}")
        return found

    def setup(self, run_dir: Path, log: Log, progress: bool) -> None:
        cfg, inputs = self.config, self.inputs
        self.data = self._read(inputs["data"], inputs.get("annotations"), log)
        classes = self.data.classes
        if inputs.get("val") is not None:
            val_set = self._read(inputs["val"], inputs.get("val_annotations"), log, classes=classes)
            self.train_samples, self.val_samples = self.data.samples, val_set.samples
            self.split = {"source": inputs["val"], "files": _relative([s.path for s in self.val_samples],
                                                                       inputs["val"])}
        else:
            self.train_samples, self.val_samples = split_samples(self.data.samples, cfg.val_split, cfg.seed)
            self.split = {"fraction": cfg.val_split, "seed": cfg.seed,
                          "files": _relative([s.path for s in self.val_samples], self.data.root)}
        masks = cfg.arch == "maskrcnn"
        if masks and not self.data.has_masks:
            raise UsageError(f"--arch maskrcnn needs masks (COCO polygons or RLE, or YOLO-seg polygons); "
                             f"{inputs['data']} has only boxes")
        log(f"data: {self.data.describe()}; train {len(self.train_samples)} images, val {len(self.val_samples)}")
        if cfg.epochs is None:
            cfg.epochs, steps, most = default_epochs(cfg.arch, len(self.train_samples), cfg.batch_size)
            log(f"epochs: {cfg.epochs}, set by the data (about {steps} steps of {cfg.batch_size} images, "
                f"{MIN_EPOCHS}-{most} epochs; --epochs to choose), fewer if val mAP stops improving")
        self.module = self._build(len(classes), log)
        fixed = network_size(self.module)[2]
        dataset = DetectionDataset(self.train_samples, train_transform(cfg.augment),
                                   (fixed[0],) if fixed else cfg.train_sizes(),
                                   self.det_cfg.max_size / self.det_cfg.image_size, masks,
                                   fixed=bool(fixed))
        self.failures: dict[str, str] = {}
        self.hooks = DetectHooks(dataset, cfg, classes, self.val_samples, self.failures)
        self.phases = [Phase("train", range(1, cfg.epochs + 1),
                             lambda: _optimizer(self.module, cfg, self.backbone_arch), warmup=cfg.warmup,
                             max_warmup_epochs=2)]

    def _build(self, num_classes: int, log: Log) -> torch.nn.Module:
        """A detector on a zoo backbone, or (`start_from`) a COCO-trained torchvision detector with a new head."""
        from ...zoo.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec
        from .model import _timm_arch

        cfg = self.config
        max_size = cfg.image_size   # a photo fits in an image_size square (long side), as YOLO's letterbox
        seed_everything(cfg.seed)
        if cfg.start_from:
            self.backbone_arch = None
            self.det_cfg = DetectorConfig(arch=family(cfg.start_from), backbone=cfg.start_from, backbone_arch="",
                                          num_classes=num_classes, image_size=cfg.image_size, max_size=max_size,
                                          mean=IMAGENET_MEAN, std=IMAGENET_STD, source=cfg.start_from)
            module = build_detector(self.det_cfg)
            source, new = load_coco_weights(module, cfg.start_from, cfg.weights)
            self.spec = ModelSpec(name=cfg.start_from, arch=cfg.start_from, library="torchvision", weights=source)
            log(f"fine-tuning {cfg.start_from} from {source}: {len(new)} tensor(s) of the head are new, for "
                f"{num_classes} class(es)")
            return module
        self.backbone_arch, self.spec = _timm_arch(cfg.backbone)
        self.det_cfg = DetectorConfig(arch=cfg.arch, backbone=cfg.backbone, backbone_arch=self.backbone_arch,
                                      num_classes=num_classes, image_size=cfg.image_size, max_size=max_size,
                                      mean=tuple(self.spec.preprocessing.mean), std=tuple(self.spec.preprocessing.std))
        return build_detector(self.det_cfg, pretrained_backbone=True)

    def finish(self, run_dir: Path, fit: Fit, log: Log) -> dict[str, Any]:
        for p in self.module.parameters():
            p.requires_grad_(True)
        for path, reason in sorted(self.failures.items()):
            log(f"skipped {path}: {reason}")
        return _finish_run(self.module.eval(), self.config, self.det_cfg, self.spec, self.data, self.train_samples,
                           self.val_samples, self.split, run_dir, fit, self.failures, log)


_SIZE_WARNED: list[bool] = []


def size_meaning_changed(size: int) -> None:
    """Warn once a process that an explicit image size now means the letterbox square's side (the photo's
    long side); it was the short side before, so an old script asking for 512 now gets smaller inputs."""
    if not _SIZE_WARNED:
        _SIZE_WARNED.append(True)
        warnings.warn(f"detect train: image_size / --image-size {size} is now the side of the square each photo "
                      f"is fitted into (its long side, as YOLO's letterbox); it was the short side before",
                      FutureWarning, stacklevel=3)


def train(data: str | os.PathLike, out: str | os.PathLike, *, val: str | os.PathLike | None = None,
          annotations: str | os.PathLike | None = None, val_annotations: str | os.PathLike | None = None,
          resume: bool = False, progress: bool = False, log: Log | None = print, **options: Any) -> dict[str, Any]:
    """Train a detector on DATA (VOC, COCO or YOLO, detected from the folder) and save the run in `out`.

    Options are DetectTrainConfig fields (arch, backbone, epochs, image_size, freeze, batch_size, lr,
    val_split, patience, ...). Without `val`, a seeded `val_split` of the images is held out (the
    seed and files are recorded). Returns {"run_dir", "report", "config"}.
    """
    options = renamed(options, RENAMED, "detect train")
    if "image_size" in options:
        size_meaning_changed(options["image_size"])
    inputs = {"data": os.fspath(data), "annotations": annotations and os.fspath(annotations),
              "val": val and os.fspath(val), "val_annotations": val_annotations and os.fspath(val_annotations)}
    recipe = DetectRecipe(DetectTrainConfig(**options), inputs)
    return train_run(train, recipe, out, resume=resume, progress=progress, log=log,
                     call={"data": data, "out": out, "val": val, "annotations": annotations,
                           "val_annotations": val_annotations, **options})


def proposal_scores(detector, samples: list[Sample], classes: list[str], device: str,
                    workers: int | None) -> dict[int, tuple[float, float]]:
    """Val (mAP50, mAP50-95) of a two-stage detector at each test-time proposal count of PROPOSALS, and at
    MORE_PROPOSALS when the most of those still gains beyond the slack over the next."""
    def scores(n: int) -> tuple[float, float]:
        set_proposals(detector.module, n)
        predictor = Predictor(detector, point=raw_point(), device=device, backend="torch")
        predictions = predict_samples(predictor, samples, workers=workers)
        report = evaluate_predictions(samples, [p for p in predictions if not p.get("error")], classes)
        return round(report["map50"], 4), round(report["map"], 4)

    measured = {n: scores(n) for n in PROPOSALS}
    below, most = sorted(measured)[-2:]
    if fewest_proposals({below: measured[below], most: measured[most]}) == most:
        measured[MORE_PROPOSALS] = scores(MORE_PROPOSALS)
    return measured


def fewest_proposals(measured: dict[int, tuple[float, float]]) -> int:
    """The fewest proposals whose val mAP50 and mAP50-95 each stay within PROPOSALS_SLACK of the most
    proposals' (which always qualify): the box head runs once per proposal, so every one costs time."""
    most = max(measured)
    ref50, ref = measured[most]
    return min(n for n, (m50, m) in measured.items() if m50 >= ref50 - PROPOSALS_SLACK[0] and m >= ref - PROPOSALS_SLACK[1])


def _finish_run(model, cfg: DetectTrainConfig, det_cfg: DetectorConfig, spec: ModelSpec, data_set: DetectionData,
                train_samples: list[Sample], val_samples: list[Sample], split: dict, run_dir: Path, fit: Fit,
                failures: dict[str, str], log: Log) -> dict[str, Any]:
    """Save the run, reload it as a user would, evaluate it on the validation images, record the metrics."""
    classes = data_set.classes
    pre = Preprocessing(input_size=(3, det_cfg.image_size, det_cfg.image_size), interpolation="bilinear",
                        mean=det_cfg.mean, std=det_cfg.std, crop_pct=1.0)
    model.zoo_spec = ModelSpec(
        name=str(run_dir), arch=det_cfg.source or det_cfg.backbone_arch, library="torchvision" if det_cfg.source
        else "timm", num_classes=len(classes), labels=list(classes),
        preprocessing=pre, weights=spec.weights, weights_sha256=spec.weights_sha256,
        note=f"{det_cfg.arch} detector trained by visionzoo detect train on a {det_cfg.backbone} backbone",
    )

    def evaluate(saved: Path):
        detector = load_detector(saved)
        chosen = {}
        if hasattr(detector.module, "rpn"):
            measured = proposal_scores(detector, val_samples, classes, cfg.device, cfg.workers)
            n = fewest_proposals(measured)
            log(f"test-time proposals: {n} (val mAP50 / mAP50-95 by proposals: "
                + ", ".join(f"{k}: {v[0]:.3f} / {v[1]:.3f}" for k, v in measured.items()) + ")")
            set_proposals(detector.module, n)
            detector.config["detector"] = {**detector.config["detector"], "proposals": n}  # keys the ONNX export
            chosen = {"detector": detector.config["detector"], "proposals_val": {str(k): v for k, v in measured.items()}}
        predictions = predict_samples(Predictor(detector, point=raw_point(), device=cfg.device), val_samples,
                                      workers=cfg.workers)
        readable = [i for i, p in enumerate(predictions) if not p.get("error")]
        point = choose([val_samples[i] for i in readable], [predictions[i] for i in readable], classes)
        predictions = [{**p, "detections": suppress(p["detections"], point.nms_iou, point.contain)}
                       if not p.get("error") else p for p in predictions]  # as predict gives them at any threshold
        report = score_samples(val_samples, predictions, classes, point=point, masks=detector.has_masks)
        report = write_report(saved, val_samples, predictions, report, classes, point=point,
                              title=f"{saved.name}: {det_cfg.arch} on {det_cfg.backbone}, validation images")
        metrics = {k: report[k] for k in ("map50", "map", "precision", "recall", "boxes_per_image",
                                          "true_boxes_per_image", "n_images")}
        metrics["per_class"] = report["per_class"]
        if "mask" in report:
            metrics["mask"] = {k: report["mask"][k] for k in ("map50", "map")}
        log(f"val: {summary_line(report)}")
        return Evaluated("val", report, metrics, {"operating_point": point.to_dict(), "conf": point.conf, **chosen})

    dataset = {
        "source": data_set.root, "format": data_set.format, "train_images": len(train_samples),
        "val_images": len(val_samples), "boxes": data_set.n_boxes, "val_split": split,
        "issues": [{"file": i.file, "reason": i.reason, "skipped": i.skipped} for i in data_set.issues],
        "failures": [{"path": p, "error": e} for p, e in sorted(failures.items())],
    }
    preprocessing = {"resize": f"short side {det_cfg.image_size}, long side <= {det_cfg.max_size}, aspect kept",
                     "interpolation": "bilinear", "mean": list(det_cfg.mean), "std": list(det_cfg.std),
                     "input": "RGB in [0, 1], EXIF rotation applied"}
    result = finish_run(run_dir, model, task="detect", classes=classes, image_size=det_cfg.image_size,
                      preprocessing=preprocessing, config=cfg,
                      dataset=dataset, fit=fit, evaluate=evaluate, curve_keys=DetectHooks.curve_keys, log=log,
                      extra={"arch": det_cfg.arch, "backbone": det_cfg.backbone,
                             "detector": det_cfg.to_dict()})
    result["skipped"] = [(i.file, i.reason) for i in data_set.issues if i.skipped] + sorted(failures.items())
    return result
