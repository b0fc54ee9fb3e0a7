"""Object detection and instance segmentation: torchvision detectors (Faster R-CNN, RetinaNet,
FCOS, SSDlite, Mask R-CNN) on zoo backbones; train on VOC / COCO / YOLO folders, predict,
evaluate with COCO mAP (pycocotools); torchvision's COCO detectors by name.

Integration contract: `load_predictor(run_or_name) -> predictor(images) -> [{"detections"}]`,
`predict(run_or_name, inputs) -> [{"path", "detections", "error"}]`, `export_onnx(run_dir, out)`.
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
