"""Top-k labels with probabilities for any number of images, batched, never stopping on a bad file."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from ...data import eval_transform, expand_inputs, iter_batches
from ...progress import progress_bar
from ...runtime import TorchRunner
from ...viz.notebook import Results, ShowsTopK
from ...zoo import ModelSpec, as_model

ModelArg = str | os.PathLike | nn.Module | None


@dataclass
class Prediction:
    label: str
    index: int
    probability: float


@dataclass
class ImageResult(ShowsTopK):
    """One input's outcome: predictions, or the error that stopped it (never both). In a notebook
    it shows the picture beside its top-k bars (`show()` anywhere)."""

    path: str
    predictions: list[Prediction] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "predictions": [asdict(p) for p in self.predictions], "error": self.error}


def label_names(spec: ModelSpec) -> list[str]:
    n = spec.num_classes - spec.label_offset
    return list(spec.labels) if spec.labels and len(spec.labels) == n else [f"class_{i}" for i in range(n)]


def probabilities(logits: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """Softmax over the real classes; a background output (TF-slim 1001-way heads) is dropped."""
    return logits[:, spec.label_offset:].float().softmax(dim=1)


def topk_predictions(probs: torch.Tensor, labels: Sequence[str], k: int) -> list[list[Prediction]]:
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [
        [Prediction(labels[i], int(i), round(float(p), 6)) for p, i in zip(vs.tolist(), ix.tolist())]
        for vs, ix in zip(values, indices)
    ]


def _logits_runner(module: nn.Module, device: str, precision: str, calibration: str | os.PathLike | None):
    """`runner(batch) -> logits tensor`: PyTorch for fp32, the quantized ONNX export for int8."""
    from ...runtime.quantize import check_precision

    if check_precision(precision) == "fp32":
        return TorchRunner(module, device=device)
    from ...data.calibration import calibration_set
    from ..embed import feature_runner

    quantized, _ = feature_runner(module, "logits", device=device, precision="int8",
                                  calibration=calibration_set(calibration))
    return lambda x: torch.from_numpy(quantized(x))


def classify(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    model: ModelArg = None,
    *,
    top_k: int = 5,
    weights: str | os.PathLike | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    device: str = "auto",
    progress: bool = False,
    precision: str = "fp32",
    calibration: str | os.PathLike | None = None,
) -> list[ImageResult]:
    """Classify files, folders (recursive) or globs; one ImageResult per file, in sorted order.
    `precision="int8"`: the ONNX export quantized on the photos of `calibration` (a folder; None:
    the bundled photos), on the CPU."""
    files = expand_inputs(inputs).files
    module, spec = as_model(model, weights)
    runner = _logits_runner(module, device, precision, calibration)
    labels = label_names(spec)
    results = Results(ImageResult(path=p) for p in files)
    with progress_bar(total=len(files), unit="img", disable=not progress, desc="classify") as bar:
        for batch in iter_batches(
            files, eval_transform(spec.preprocessing), batch_size=batch_size, workers=workers,
            target_size=spec.preprocessing.resize_size,
        ):
            for i, reason in batch.failures:
                results[i].error = reason
            if batch.tensor is not None:
                preds = topk_predictions(probabilities(runner(batch.tensor), spec), labels, top_k)
                for i, p in zip(batch.indices, preds):
                    results[i].predictions = p
            bar.update(len(batch.indices) + len(batch.failures))
    return results


def predict(run_or_name: ModelArg, inputs: str | os.PathLike | Sequence[str | os.PathLike], *, top_k: int = 5,
            **options: Any) -> list[dict[str, Any]]:
    """The task contract's `predict`: `classify` as JSON-able rows {path, predictions, error}."""
    return [r.to_dict() for r in classify(inputs, run_or_name, top_k=top_k, **options)]
