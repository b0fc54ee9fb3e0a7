"""Batch feature extraction: reader (decoding processes) -> model(s) -> shard writer, per partition."""
from .runner import ExtractConfig, ExtractResult, extract

__all__ = ["ExtractConfig", "ExtractResult", "extract"]
