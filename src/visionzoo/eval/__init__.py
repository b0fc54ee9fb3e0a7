"""Metric helpers shared by the tasks (computed by scikit-learn, pycocotools and friends)."""
from .metrics import classification_metrics

__all__ = ["classification_metrics"]
