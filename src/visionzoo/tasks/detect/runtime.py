"""The detector's two backends behind one call: `network(list of HxWx3 uint8 arrays) -> [{"boxes", "scores",
"labels"(, "masks")}]` as NumPy arrays, boxes in the input's pixels.

ONNX Runtime is the default on a CPU: it runs several times faster than PyTorch eager there, and needs no
torch. The whole detector (resize, backbone, heads, box decoding, the model's own NMS) is exported once per
run and weights file, checked against PyTorch's boxes, and cached beside extract's exports; the operating
point is applied to its boxes in Python, exactly as to PyTorch's. One image per call, so an image's answer
never depends on the others, and one call per core at once (ONNX Runtime releases the GIL) with each image
decoded in the thread that runs it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...runtime.onnx_session import cached_export, presolved, run_identity, session

# How the export is made; part of its cache key, so a change rebuilds old caches. 2: the backbone's
# "same" padding exported as constants (export.constant_padding), RoI levels merged by a Gather
# (export.gathered_levels). 3: the RPN makes and decodes only the anchors it keeps (export.decoded_after_selection).
EXPORT_RECIPE = 3


def onnx_file(detector: Any) -> Path:
    """The cached ONNX export of `detector`, made (and checked against PyTorch) the first time: only then is
    the PyTorch network built."""
    def export(path: Path) -> None:
        from .export import export_detector  # torch: only when there is no export yet

        export_detector(detector, path)

    identity = run_identity(detector.source, {**{k: detector.config.get(k) for k in ("detector", "arch")},
                                              "recipe": EXPORT_RECIPE})
    return cached_export("detect", identity, export)


def _chw(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> 3xHxW float32 in [0, 1], the exported graph's input."""
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255)


class OnnxDetector:
    """The detector's ONNX export on ONNX Runtime; thread-safe (one intra-op thread per call). `quantize`:
    the export -> the file to run instead (quantized.int8_file)."""

    def __init__(self, detector: Any, threads: int = 1, quantize: Callable[[Path], Path] | None = None):
        path = onnx_file(detector)
        self.session = session(presolved(quantize(path) if quantize else path), threads)
        self.names = [o.name for o in self.session.get_outputs()]

    def __call__(self, images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        return [dict(zip(self.names, self.session.run(None, {"image": _chw(image)}))) for image in images]


class TorchDetector:
    """The torchvision detector itself, on `device`, keeping boxes down to the operating point's lowest
    threshold (after its own NMS at the larger of MODEL_NMS and the point's IoU)."""

    def __init__(self, module: Any, device: str, point: Any):
        from ...runtime import pick_device
        from .detector import MODEL_NMS
        from .model import set_thresholds

        self.device = pick_device(device)
        self.module = module.eval().to(self.device)
        set_thresholds(self.module, point.lowest, max(MODEL_NMS, point.nms_iou))

    def __call__(self, images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        import torch

        with torch.inference_mode():
            outputs = self.module([torch.from_numpy(_chw(image)).to(self.device) for image in images])
        return [{k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy() for k, v in r.items()}
                for r in outputs]
