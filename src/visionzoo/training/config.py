"""TrainConfig: every training argument in one plain dataclass, recorded in the run's config.json."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UsageError
from ..zoo import DEFAULT_MODEL

STRATEGIES = ("linear", "finetune", "scratch")

# Defaults per strategy, for a few hundred photos of unknown classes (not tuned to any one set).
# linear: the head is fitted on cached features, so epochs cost milliseconds.
# finetune: a short head phase, then the unfrozen network at a tenth of the head's rate.
# scratch: random weights need many more epochs and strong augmentation.
DEFAULTS: dict[str, dict[str, Any]] = {
    "linear": {"epochs": 100, "lr": 1e-3, "weight_decay": 1e-4, "patience": 15},
    "finetune": {"epochs": 12, "lr": 1e-3, "weight_decay": 0.01, "patience": 4},
    "scratch": {"epochs": 60, "lr": 1e-3, "weight_decay": 0.05, "patience": 15},
}


@dataclass
class TrainConfig:
    model: str = DEFAULT_MODEL
    strategy: str = "finetune"
    epochs: int | None = None          # total epochs, head phase included [default: per strategy]
    head_epochs: int = 2               # finetune phase 1: new head only, backbone frozen
    freeze: int = 2                    # finetune phase 2: leading blocks kept frozen (stem = block 1)
    lr: float | None = None            # head / whole-model rate [default: per strategy]
    backbone_lr_scale: float = 0.1     # finetune phase 2: backbone rate = lr * this
    weight_decay: float | None = None
    batch_size: int = 32
    image_size: int | None = None      # [default: the model's own input size]
    val_split: float = 0.2
    patience: int | None = None        # early stopping: epochs without improvement [default: per strategy]
    warmup: float = 0.1                # warmup as a fraction of each phase's steps (at most one epoch)
    augment: str | None = None         # "light" | "strong" [default: strong for scratch, light otherwise]
    label_smoothing: float = 0.1
    cv: int | None = None
    seed: int = 0
    workers: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise UsageError(f"unknown strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}")
        for key, value in DEFAULTS[self.strategy].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.augment is None:
            self.augment = "strong" if self.strategy == "scratch" else "light"
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError("--epochs and --batch-size must be at least 1")
        if self.strategy == "finetune" and not 0 <= self.head_epochs <= self.epochs:
            raise UsageError(f"--head-epochs must be between 0 and --epochs ({self.epochs})")
        if self.image_size is not None and self.image_size < 16:
            raise UsageError("--image-size must be at least 16")
        if self.freeze < 0:
            raise UsageError("--freeze must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
