"""The segmenter on ONNX Runtime: on a CPU it runs several times faster than PyTorch eager, so
`predict`, `evaluate` and `serve` use it by default. The network (normalisation included) is exported
once per run and weights file, checked against PyTorch, and cached beside extract's exports; tiles,
thresholds and masks stay in Python, the same for both backends.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...runtime.onnx_session import cached_export, run_identity, session
from .model import Segmenter


def onnx_file(seg: Segmenter) -> Path:
    """The cached ONNX export of `seg`, made (and checked against PyTorch) the first time."""
    from .export import export_network

    identity = run_identity(seg.source, {**{k: seg.config.get(k) for k in ("segmenter", "arch")},
                                         "padding": "constant"})
    return cached_export("segment", identity, lambda path: export_network(seg, path))


class OnnxNetwork:
    """`network(N x 3 x H x W float tensor in [0, 1]) -> N x C x H x W logits`, as Segmenter.network()."""

    def __init__(self, seg: Segmenter, threads: int | None = None):
        self.session = session(onnx_file(seg), threads)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(images.cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"images": x})[0])
