"""Image captioning (Show and Tell): a frozen zoo CNN encodes the image, an LSTM (or a small
Transformer) decoder writes the sentence; beam search at inference. Also Hugging Face
captioners (BLIP, ViT-GPT2) by name for users with network.

Integration contract: `load_predictor(run_or_name) -> predictor(images) -> [{"caption"}]`,
`predict(run_or_name, inputs) -> [{"path", "caption", "error"}]`.
"""
from __future__ import annotations

from typing import Any

__all__ = ["evaluate", "load_predictor", "predict", "read_captions", "train"]


def __getattr__(name: str) -> Any:
    """Lazy: importing the package (e.g. for `visionzoo --help`) loads no torch."""
    if name in ("load_predictor", "predict"):
        from . import predictor as module
    elif name == "train":
        from . import training as module
    elif name == "evaluate":
        from . import evaluation as module
    elif name == "read_captions":
        from . import data as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)
