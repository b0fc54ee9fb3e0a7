"""Pieces every task shares: turning a model argument into (module, spec), per-image results."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from ..zoo import DEFAULT_MODEL, ModelSpec, load_model, spec_of

ModelArg = str | os.PathLike | nn.Module | None


def as_model(model: ModelArg = None, weights: str | os.PathLike | None = None) -> tuple[nn.Module, ModelSpec]:
    """Accept a zoo name, a run folder, or an already loaded model; return (module, spec)."""
    if isinstance(model, nn.Module):
        return model, spec_of(model)
    module = load_model(os.fspath(model) if model is not None else DEFAULT_MODEL, weights=weights)
    return module, spec_of(module)


@dataclass
class Prediction:
    label: str
    index: int
    probability: float


@dataclass
class ImageResult:
    """One input's outcome: predictions, or the error that stopped it (never both)."""

    path: str
    predictions: list[Prediction] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "predictions": [asdict(p) for p in self.predictions], "error": self.error}
