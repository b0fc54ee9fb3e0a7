"""`visionzoo export RUN` for segmentation runs: normalisation + network as one ONNX graph, checked
against PyTorch with ONNX Runtime.

Input "images": float32 N x 3 x H x W, RGB in [0, 1], H and W multiples of 32 (pad the bottom and
right). Output "logits": N x C x H x W; the class of a pixel is the argmax over C, named by the
metadata's "classes".
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from ...atomic import atomic_path
from ...errors import UsageError
from ...runtime.same_padding import constant_same_padding
from .model import Segmenter

OPSET = 17


def export_network(seg: Segmenter, out: str | os.PathLike) -> Path:
    """Write a loaded segmenter's network as ONNX to `out`; refuse if ONNX Runtime disagrees with PyTorch."""
    import onnx
    import onnxruntime as ort

    wrapper = seg.network().cpu()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        # inputs are multiples of 32, so a TF-weights backbone's run-time "same" padding is a constant
        with warnings.catch_warnings(), torch.inference_mode(), constant_same_padding(wrapper):
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (torch.rand(1, 3, 256, 256),), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=["images"], output_names=["logits"],
                              dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                            "logits": {0: "batch", 2: "height", 3: "width"}})
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key = "visionzoo"
        entry.value = json.dumps({"task": "segment", "classes": seg.classes, "arch": seg.config.get("arch"),
                                  "input": "images: float32 Nx3xHxW RGB in [0, 1], H and W multiples of 32"})
        onnx.save(proto, str(tmp))
        x = torch.rand(2, 3, 320, 224, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            expected = wrapper(x).numpy()
        got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
        if got.shape != expected.shape or (got.argmax(1) != expected.argmax(1)).mean() > 1e-3:
            raise UsageError(f"the exported ONNX segmenter does not reproduce PyTorch's masks ({out}); not written")
    return out


def export_onnx(run_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the segmentation run `run_dir` as ONNX to `out` (`visionzoo export RUN`)."""
    from .model import load_segmenter

    return export_network(load_segmenter(run_dir), out)
