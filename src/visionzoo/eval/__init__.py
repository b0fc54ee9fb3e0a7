"""Evaluation of a saved run on labelled images: metrics (scikit-learn), reports and plots."""
from .metrics import classification_metrics
from .report import evaluate, evaluate_split, write_report

__all__ = ["classification_metrics", "evaluate", "evaluate_split", "write_report"]
