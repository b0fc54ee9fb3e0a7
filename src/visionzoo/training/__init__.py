"""Training: config, the fit loop with callbacks, freezing / param groups, strategies, cross-validation."""
from .config import STRATEGIES, TrainConfig
from .run import train

__all__ = ["STRATEGIES", "TrainConfig", "train"]
