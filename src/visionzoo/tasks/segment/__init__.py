"""Semantic segmentation: U-Net, DeepLabV3+ and FPN decoders (segmentation-models-pytorch) over zoo
encoders; train on image/mask folders, predict masks at any size (tiled), evaluate mIoU; torchvision's
VOC segmenters by name.

Integration contract: `load_predictor(run_or_name) -> predictor(images) -> [{"mask", "shares"}]`,
`predict(run_or_name, inputs) -> [{"path", "shares", "error"}]`, `export_onnx(run_dir, out)`.
"""
from __future__ import annotations

from ...lazy import lazy_exports

__all__ = ["evaluate", "export_onnx", "load_predictor", "predict", "train"]

__getattr__ = lazy_exports(
    __name__,
    {"load_predictor": "predictor", "predict": "predictor", "train": "training", "evaluate": "evaluation",
     "export_onnx": "export"},
)
