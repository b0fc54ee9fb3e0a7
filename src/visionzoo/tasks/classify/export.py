"""ONNX export of a classifier (or one of its layers): a self-describing file for deployment."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ...atomic import atomic_path
from ...runtime.onnx_backend import export_onnx as export_graph
from ...zoo import as_model
from ..embed import ModelArg, check_layer, feature_fn, weights_digest


def export_onnx(model: ModelArg, out: str | os.PathLike, *, layer: str = "logits", pool: str | None = None,
                normalize: bool = False) -> Path:
    """Write `model` as ONNX (input "images" N x 3 x H x W, output "features"), checked against PyTorch.

    The file's metadata ("visionzoo" key) holds the spec (preprocessing, labels), layer and
    weights digest, so a deployment knows how to feed it and what comes out.
    """
    module, spec = as_model(model)
    check_layer(module, layer, pool)
    path = export_graph(module, feature_fn(layer, pool, normalize), spec.preprocessing.input_size, out)
    import onnx

    proto = onnx.load(str(path))
    info = {"task": "classify", "spec": spec.to_dict(), "layer": layer, "pool": pool, "normalize": normalize,
            "weights_sha256": weights_digest(module), "input": "images", "output": "features"}
    entry = proto.metadata_props.add()
    entry.key, entry.value = "visionzoo", json.dumps(info, default=str)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return path
