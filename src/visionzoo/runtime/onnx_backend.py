"""ONNX Runtime backend: export (model, layer) to ONNX once, cache it, run it with ONNX Runtime.

On CPU ONNX Runtime runs the zoo's CNNs several times faster than PyTorch eager. The exported
file is checked against PyTorch before it is used or cached, so a bad export can never
silently change features. onnxruntime is imported only here, when this backend is chosen.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_path
from ..errors import UsageError

INPUT, OUTPUT = "images", "features"
MIN_COSINE = 0.9999


def onnx_cache_dir() -> Path:
    """$VISIONZOO_ONNX_CACHE, else $XDG_CACHE_HOME/visionzoo/onnx, else ~/.cache/visionzoo/onnx."""
    if os.environ.get("VISIONZOO_ONNX_CACHE"):
        return Path(os.environ["VISIONZOO_ONNX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "visionzoo" / "onnx"


class _Features(nn.Module):
    """Wrap (module, fn) as one module so the exporter sees a plain forward(images)."""

    def __init__(self, module: nn.Module, fn: Callable[[nn.Module, torch.Tensor], torch.Tensor]):
        super().__init__()
        self.model = module
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.model, x).float()


def _session(path: Path, threads: int | None = None, device: str = "cpu"):
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise UsageError("the onnx backend needs onnxruntime (pip install onnxruntime)") from exc
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning, leaving the cores to the decoding processes.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), opts, providers=providers)


def export_onnx(
    module: nn.Module,
    fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    input_size: tuple[int, int, int],
    path: str | os.PathLike,
    opset: int = 17,
) -> Path:
    """Export `fn(module, images)` with a dynamic batch axis, check it against PyTorch, write atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _Features(module.eval().cpu(), fn).eval()
    example = torch.randn(2, *input_size)
    try:
        with atomic_path(path) as tmp:  # renamed into the cache only once it checks out
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")
                # The TorchScript-based exporter traces through Python (incl. the stage hooks) and
                # exports in seconds; the dynamo exporter is the fallback where it is unavailable.
                try:
                    torch.onnx.export(wrapper, (example,), str(tmp), dynamo=False, input_names=[INPUT],
                                      output_names=[OUTPUT], opset_version=opset,
                                      dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
                except Exception:
                    torch.onnx.export(wrapper, (example,), str(tmp), dynamo=True, input_names=[INPUT],
                                      output_names=[OUTPUT], external_data=False,
                                      dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
            check = torch.randn(3, *input_size)
            with torch.inference_mode():
                expected = wrapper(check).numpy()
            got = _session(tmp, threads=1).run(None, {INPUT: check.numpy()})[0]
            cos = (expected * got).sum(1) / (np.linalg.norm(expected, axis=1) * np.linalg.norm(got, axis=1) + 1e-12)
            if got.shape != expected.shape or float(cos.min()) < MIN_COSINE:
                raise UsageError(f"the ONNX export does not reproduce PyTorch's output (cosine {float(cos.min()):.6f})")
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"cannot export this model to ONNX ({type(exc).__name__}: {str(exc)[:300]})") from exc
    return path


def cached_onnx(
    module: nn.Module,
    fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    input_size: tuple[int, int, int],
    key: dict,
    name: str = "model",
) -> Path:
    """The cached export for `key` (model, weights digest, layer, pool, ...), exporting it once."""
    digest = hashlib.sha256(json.dumps({**key, "torch": torch.__version__, "input": list(input_size)},
                                       sort_keys=True).encode()).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[-60:]
    path = onnx_cache_dir() / f"{safe}-{digest}.onnx"
    if not path.is_file():
        export_onnx(module, fn, input_size, path)
    return path


class OnnxRunner:
    """`runner(batch) -> float32 CPU tensor`, like TorchRunner, on an ONNX Runtime session."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None, device: str = "cpu"):
        self.path = Path(path)
        self.session = _session(self.path, threads, device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {INPUT: np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out)
