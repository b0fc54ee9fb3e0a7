"""The detector on ONNX Runtime: on a CPU it runs several times faster than PyTorch eager, so `predict`
uses it by default. The whole detector (resize, backbone, heads, box decoding, the model's own NMS) is
exported once per run and weights file, checked against PyTorch's boxes, and cached beside extract's
exports; the operating point is applied to its boxes in Python, exactly as to PyTorch's. One image per
call, so an image's answer never depends on the others, and one call per core at once (ONNX Runtime
releases the GIL) with each image decoded in the thread that runs it.
"""
from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...runtime.onnx_session import onnx_cache_dir, session


def _identity(detector: Any) -> dict[str, Any]:
    """What decides the exported graph: the run (or weights file) and its modification, the detector's
    config and the libraries that build and export it."""
    source = str(detector.source)
    weights = Path(source) / "model.safetensors" if Path(source).is_dir() else Path(source)
    stat = weights.stat() if weights.is_file() else None
    versions = {}
    for package in ("visionzoo", "torch", "torchvision"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = ""
    return {"source": os.path.realpath(source) if stat else source, "size": stat.st_size if stat else None,
            "mtime": stat.st_mtime_ns if stat else None, "detector": detector.config.get("detector"),
            "arch": detector.config.get("arch"), "versions": versions}


def onnx_file(detector: Any) -> Path:
    """The cached ONNX export of `detector`, made (and checked against PyTorch) the first time."""
    from .export import export_detector

    key = hashlib.sha256(json.dumps(_identity(detector), sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = onnx_cache_dir() / "detect" / f"{key}.onnx"
    if not path.is_file():
        export_detector(detector, path)
    return path


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
