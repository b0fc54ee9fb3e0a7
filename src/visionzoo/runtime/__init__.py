"""Inference backends: PyTorch (cpu/cuda, channels_last, autocast); ONNX Runtime comes with extract."""
from .torch_backend import TorchRunner, pick_device

__all__ = ["TorchRunner", "pick_device"]
