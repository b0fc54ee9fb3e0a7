"""TrainConfig: every classification training argument in one dataclass, recorded in config.json."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import UsageError
from ...training.run import RunConfig, check_limits
from ...zoo import DEFAULT_MODEL

AUTO = "auto"
STRATEGIES = (AUTO, "linear", "finetune", "scratch")
FEATURE_STRATEGIES = ("linear", AUTO)  # heads fitted on features computed once: nothing to parallelise

# Defaults per strategy, for a few hundred photos of unknown classes (not tuned to any one set).
# linear: the head is fitted on cached features, so epochs cost milliseconds.
# finetune: a short head phase, then the unfrozen network at a tenth of the head's rate.
# scratch: random weights need many more epochs and strong augmentation.
# auto: no epochs; heads are fitted and cross-validated by scikit-learn (auto.py).
DEFAULTS: dict[str, dict[str, Any]] = {
    AUTO: {},
    "linear": {"epochs": 100, "lr": 1e-3, "weight_decay": 1e-4, "patience": 15},
    "finetune": {"epochs": 12, "lr": 1e-3, "weight_decay": 0.01, "patience": 4},
    "scratch": {"epochs": 60, "lr": 1e-3, "weight_decay": 0.05, "patience": 15},
}


@dataclass
class TrainConfig(RunConfig):
    model: str = AUTO                  # auto: the bundled backbones (or "a,b" candidates), chosen by CV
    strategy: str = AUTO
    epochs: int | None = None          # total epochs, head phase included [default: per strategy]
    head_epochs: int = 2               # finetune phase 1: new head only, backbone frozen
    freeze: int = 2                    # finetune phase 2: leading blocks kept frozen (stem = block 1)
    lr: float | None = None            # head / whole-model rate [default: per strategy]
    backbone_lr_scale: float = 0.1     # finetune phase 2: backbone rate = lr * this
    weight_decay: float | None = None
    image_size: int | None = None      # [default: the model's own input size]
    patience: int | None = None        # early stopping: epochs without improvement [default: per strategy]
    warmup: float = 0.1                # warmup as a fraction of each phase's steps (at most one epoch)
    augment: str | None = None         # "light" | "strong" [default: strong for scratch, light otherwise]
    label_smoothing: float = 0.1
    cv: int | None = None
    time_budget: float | None = None   # seconds, only when given: auto skips backbones that would not fit,
                                       # the other strategies stop at the training step that spends it

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise UsageError(f"unknown strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}")
        if self.strategy != AUTO and self.model == AUTO:
            self.model = DEFAULT_MODEL  # a fixed recipe with no backbone named: the default backbone
        if self.strategy != AUTO and "," in self.model:
            raise UsageError("several --model candidates need --strategy auto")
        if self.strategy == AUTO and self.cv:
            raise UsageError("--strategy auto already cross-validates on the training images; --cv evaluates "
                             "a fixed recipe (--strategy linear, finetune or scratch)")
        check_limits(self)
        for key, value in DEFAULTS[self.strategy].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.augment is None:
            self.augment = "strong" if self.strategy == "scratch" else "light"
        if (self.epochs is not None and self.epochs < 1) or self.batch_size < 1:
            raise UsageError("--epochs and --batch-size must be at least 1")
        if self.strategy == "finetune" and not 0 <= self.head_epochs <= self.epochs:
            raise UsageError(f"--head-epochs must be between 0 and --epochs ({self.epochs})")
        if self.image_size is not None and self.image_size < 16:
            raise UsageError("--image-size must be at least 16")
        if self.freeze < 0:
            raise UsageError("--freeze must be >= 0")
        if self.num_workers < 1:
            raise UsageError("--processes must be at least 1")
        if self.strategy not in FEATURE_STRATEGIES and self.batch_size % self.num_workers:
            raise UsageError(f"--batch-size ({self.batch_size}) must split evenly over --processes "
                             f"({self.num_workers}): it is the global batch, shared out between the processes")

    def check(self) -> None:
        if not 0 <= self.val_split < 1:
            raise UsageError(f"--val-split must be in [0, 1), got {self.val_split}")
