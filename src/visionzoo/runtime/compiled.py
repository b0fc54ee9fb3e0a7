"""Exports remembered by request, so a repeat run needs neither torch nor the weights.

`extract -m NAME --layer L` compiles (NAME, L, pool, normalize) to an ONNX file once; this index
records what came out (the file, the spec, the parameter digest, the feature size) under the
request, together with the size and mtime of the weights file it was made from. A later run
with the same request starts ONNX Runtime straight away: no torch import, no model build, no
weight hashing. A changed weights file, a moved export or other library versions miss the
index, and the run takes the full path again (which re-records it).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ..atomic import write_json
from .onnx_session import onnx_cache_dir
from .quantize import RECIPE

_VERSIONED = ("visionzoo", "torch", "torchvision", "timm")


@dataclass
class Compiled:
    onnx: str
    spec: dict[str, Any]          # ModelSpec.to_dict() of the model that was exported
    weights_sha256: str
    dim: int
    weights_file: str
    weights_size: int
    weights_mtime_ns: int


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def request_key(model: str, layer: str, pool: str | None, normalize: bool, calibration: str | None = None) -> str:
    """The request as the user made it (a run folder by its real path), with the versions of the
    libraries that define the model and its export; `calibration`: the digest of an int8 request's
    calibration set (None: fp32). An int8 request also names the quantization recipe, so a changed
    recipe misses the index instead of reusing the file the old one made."""
    if os.path.isdir(model):
        model = os.path.realpath(model)
    request = {"model": model.strip(), "layer": layer, "pool": pool, "normalize": normalize,
               "versions": {p: _version(p) for p in _VERSIONED}}
    if calibration is not None:
        request.update(precision="int8", calibration=calibration, recipe=RECIPE,
                       versions={**request["versions"], "onnxruntime": _version("onnxruntime")})
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:24]


def _entry(key: str) -> Path:
    return onnx_cache_dir() / "requests" / f"{key}.json"


def lookup(key: str) -> Compiled | None:
    """The remembered export for `key`, if its ONNX file is there and its weights file unchanged."""
    try:
        hit = Compiled(**json.loads(_entry(key).read_text("utf-8")))
        st = os.stat(hit.weights_file)
    except (OSError, ValueError, TypeError):
        return None
    if (st.st_size, st.st_mtime_ns) != (hit.weights_size, hit.weights_mtime_ns) or not os.path.isfile(hit.onnx):
        return None
    return hit


def remember(key: str, onnx: str | os.PathLike, spec: dict[str, Any], weights_sha256: str, dim: int) -> None:
    """Record an export made from the local weights file `spec["weights"]` (others are not remembered:
    a download or an in-memory model has no file whose change could be noticed)."""
    weights = spec.get("weights")
    if not weights or not os.path.isfile(weights):
        return
    st = os.stat(weights)
    entry = Compiled(str(onnx), spec, weights_sha256, int(dim), os.path.realpath(weights), st.st_size, st.st_mtime_ns)
    _entry(key).parent.mkdir(parents=True, exist_ok=True)
    write_json(_entry(key), asdict(entry))
