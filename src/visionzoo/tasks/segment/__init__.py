"""Semantic segmentation: U-Net, DeepLabV3+ and FPN decoders (segmentation-models-pytorch) over zoo
encoders; train on image/mask folders, predict masks at any size (tiled), evaluate mIoU; torchvision's
VOC segmenters by name.

Integration contract: `load_predictor(run_or_name) -> predictor(images) -> [{"mask", "shares"}]`,
`predict(run_or_name, inputs) -> [{"path", "shares", "error"}]`, `export_onnx(run_dir, out)`.
"""
from __future__ import annotations

from typing import Any

__all__ = ["evaluate", "export_onnx", "load_predictor", "predict", "train"]


def __getattr__(name: str) -> Any:
    """Lazy: importing the package (e.g. for `visionzoo --help`) loads no torch."""
    if name in ("load_predictor", "predict"):
        from . import predictor as module
    elif name == "train":
        from . import training as module
    elif name == "evaluate":
        from . import evaluation as module
    elif name == "export_onnx":
        from . import export as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)
