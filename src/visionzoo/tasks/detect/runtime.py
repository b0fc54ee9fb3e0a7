"""The detector on ONNX Runtime: on a CPU it runs several times faster than PyTorch eager, so `predict`
uses it by default. The whole detector (resize, backbone, heads, box decoding, the model's own NMS) is
exported once per run and weights file, checked against PyTorch's boxes, and cached beside extract's
exports; the operating point is applied to its boxes in Python, exactly as to PyTorch's. One image per
call, so an image's answer never depends on the others, and one call per core at once (ONNX Runtime
releases the GIL) with each image decoded in the thread that runs it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...runtime.onnx_session import cached_export, run_identity, session


def onnx_file(detector: Any) -> Path:
    """The cached ONNX export of `detector`, made (and checked against PyTorch) the first time."""
    from .export import export_detector

    identity = run_identity(detector.source, {k: detector.config.get(k) for k in ("detector", "arch")})
    return cached_export("detect", identity, lambda path: export_detector(detector, path))


class OnnxDetector:
    """`network(list of 3xHxW float tensors in [0, 1]) -> [{"boxes", "scores", "labels"(, "masks")}]`, as
    the torchvision detector answers, from its ONNX export; thread-safe (one intra-op thread per call)."""

    def __init__(self, detector: Any, threads: int = 1):
        self.session = session(onnx_file(detector), threads)
        self.names = [o.name for o in self.session.get_outputs()]

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for image in images:
            arrays = self.session.run(None, {"image": np.ascontiguousarray(image.cpu().numpy(), dtype=np.float32)})
            out.append({name: torch.from_numpy(a) for name, a in zip(self.names, arrays)})
        return out
