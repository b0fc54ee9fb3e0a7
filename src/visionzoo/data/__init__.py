"""Inputs, robust decoding and transforms derived from the model's spec."""
from .decode import ImageDecodeError, load_rgb
from .inputs import IMAGE_EXTENSIONS, InputList, expand_inputs
from .loader import Batch, iter_batches
from .transforms import eval_transform, train_transform

__all__ = [
    "IMAGE_EXTENSIONS", "Batch", "ImageDecodeError", "InputList", "eval_transform",
    "expand_inputs", "iter_batches", "load_rgb", "train_transform",
]
