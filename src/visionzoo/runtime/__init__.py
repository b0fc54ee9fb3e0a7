"""Inference backends: PyTorch (cpu/cuda, channels_last, autocast) and ONNX Runtime (CPU)."""
from .onnx_backend import OnnxRunner, cached_onnx, export_onnx, onnx_cache_dir
from .torch_backend import TorchRunner, pick_device

__all__ = ["OnnxRunner", "TorchRunner", "cached_onnx", "export_onnx", "onnx_cache_dir", "pick_device"]
