"""Inputs, robust decoding and transforms derived from the model's spec."""
from ..lazy import lazy_exports

_EXPORTS = {
    "ImageDecodeError": "decode", "load_rgb": "decode",
    "IMAGE_EXTENSIONS": "inputs", "InputList": "inputs", "expand_inputs": "inputs",
    "Batch": "loader", "iter_batches": "loader",
    "eval_transform": "transforms", "train_transform": "transforms", "eval_array_transform": "transforms",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
