"""Image captioning (Show and Tell): a frozen zoo CNN encodes the image, an LSTM (or a small
Transformer) decoder writes the sentence; beam search at inference. Also Hugging Face
captioners (BLIP, ViT-GPT2) by name for users with network.

Integration contract: `load_predictor(run_or_name) -> predictor(images) -> [{"caption"}]`,
`predict(run_or_name, inputs) -> [{"path", "caption", "error"}]`.
"""
from __future__ import annotations

from ...lazy import lazy_exports

__all__ = ["evaluate", "load_predictor", "predict", "read_captions", "train"]

__getattr__ = lazy_exports(
    __name__,
    {"load_predictor": "predictor", "predict": "predictor", "train": "training", "evaluate": "evaluation",
     "read_captions": "data"},
)
