"""Inference backends: PyTorch (cpu/cuda, channels_last, autocast) and ONNX Runtime (CPU)."""
from ..lazy import lazy_exports

_EXPORTS = {
    "OnnxRunner": "onnx_session", "onnx_cache_dir": "onnx_session",
    "cached_onnx": "onnx_backend", "export_onnx": "onnx_backend",
    "TorchRunner": "torch_backend", "pick_device": "torch_backend", "cpu_only": "devices",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
