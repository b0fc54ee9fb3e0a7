"""Image classification: top-k labels from any zoo model or saved run; training on labelled folders
(a linear head, fine-tuning, from scratch, or `auto`: backbone and head chosen by cross-validation);
evaluation with per-class precision / recall / F1 and a confusion matrix; ONNX export.

Integration contract, as every task package: `predict(run_or_name, inputs)`, `train(data, out)`,
`evaluate(run_or_name, data)`, `export_onnx(run_or_name, out)`.
"""
from __future__ import annotations

from ...lazy import lazy_exports

_EXPORTS = {
    "ImageResult": "predictor", "ModelArg": "predictor", "Prediction": "predictor", "classify": "predictor", "label_names": "predictor",
    "probabilities": "predictor", "topk_predictions": "predictor", "predict": "predictor",
    "STRATEGIES": "config", "TrainConfig": "config",
    "train": "training",
    "evaluate": "evaluation", "evaluate_split": "evaluation", "write_report": "evaluation",
    "export_onnx": "export",
    "load_dataset": "data",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
