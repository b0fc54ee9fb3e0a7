"""Object detection and instance segmentation: torchvision detectors (Faster R-CNN, RetinaNet,
FCOS, SSDlite, Mask R-CNN) on zoo backbones; train on VOC / COCO / YOLO folders, predict,
evaluate with COCO mAP (pycocotools); torchvision's COCO detectors by name.

Integration contract: `load_predictor(run_or_name) -> predictor(images) -> [{"detections"}]`,
`predict(run_or_name, inputs) -> [{"path", "detections", "error"}]`, `export_onnx(run_dir, out)`.
"""
from __future__ import annotations

from ...lazy import lazy_exports

__all__ = ["evaluate", "export_onnx", "load_predictor", "predict", "train"]

__getattr__ = lazy_exports(
    __name__,
    {"load_predictor": "predictor", "predict": "predictor", "train": "training", "evaluate": "evaluation",
     "export_onnx": "export"},
)
