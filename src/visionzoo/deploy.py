"""`visionzoo export`: a model (or one of its layers) as a self-describing ONNX file for deployment."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .atomic import atomic_path
from .errors import UsageError
from .runtime.onnx_backend import export_onnx
from .tasks.common import ModelArg, as_model
from .tasks.embed import check_layer, feature_fn, weights_digest

EXPORT_FORMATS = ("onnx",)


def export(
    model: ModelArg,
    out: str | os.PathLike,
    *,
    format: str = "onnx",  # noqa: A002 - the CLI's --format
    layer: str = "logits",
    pool: str | None = None,
    normalize: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write `model` as ONNX (input "images" N x 3 x H x W, output "features"), checked against PyTorch.

    The file's metadata ("visionzoo" key) holds the spec (preprocessing, labels), layer and
    weights digest, so a deployment knows how to feed it and what comes out.
    """
    if format not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; remove it or choose another --out")
    from .tasks.registry import task_module, task_of

    task = task_of(model) if isinstance(model, (str, os.PathLike)) else "classify"
    if task != "classify":  # a detection / segmentation run: its package knows its graph and outputs
        exporter = getattr(task_module(task), "export_onnx", None)
        if exporter is None:
            raise UsageError(f"{model} is a {task} run; ONNX export is not available for {task} models")
        return Path(exporter(model, out))
    module, spec = as_model(model)
    check_layer(module, layer, pool)
    path = export_onnx(module, feature_fn(layer, pool, normalize), spec.preprocessing.input_size, out)
    import onnx

    proto = onnx.load(str(path))
    info = {"spec": spec.to_dict(), "layer": layer, "pool": pool, "normalize": normalize,
            "weights_sha256": weights_digest(module), "input": "images", "output": "features"}
    entry = proto.metadata_props.add()
    entry.key, entry.value = "visionzoo", json.dumps(info, default=str)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return path
