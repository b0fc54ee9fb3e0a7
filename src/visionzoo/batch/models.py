"""The feature model of an extract run (or of one Ray worker): a `runner(batch) -> (N, D) array`
with the spec, parameter digest and feature size a manifest records.

On CPU a request compiled before comes from the export index (runtime/compiled.py): ONNX
Runtime starts at once, and torch is never imported. Otherwise the model is built with torch,
its layer checked, exported (or run eagerly) and the export remembered for next time.

An ONNX Runtime session on CPU gets one thread and is called from `threads` threads at once,
each decoding and then running its own batch: no thread pool waits on a straggler, and decoding
never competes with inference for a core.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..runtime import compiled
from ..runtime.devices import cpu_only
from ..zoo.aliases import DEFAULT_MODEL
from ..zoo.spec import Preprocessing


@dataclass
class FeatureModel:
    runner: Callable[[np.ndarray], np.ndarray]
    spec: dict[str, Any]            # ModelSpec.to_dict()
    weights_sha256: str
    dim: int
    backend: str                    # "onnx" | "torch"
    parallel: int = 1               # calls the runner takes at once (threads each running a pipeline)
    precision: str = "fp32"         # "fp32" | "int8"
    calibration: dict[str, Any] | None = None  # int8: the calibration set's record (source, images, sha256)

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.spec["preprocessing"])


def feature_model(name: str | None, layer: str, pool: str | None, normalize: bool, *, backend: str = "auto",
                  device: str = "auto", threads: int | None = None, precision: str = "fp32",
                  calibration: str | None = None) -> FeatureModel:
    """`precision="int8"`: the ONNX export quantized on the photos of `calibration` (a folder;
    None: the bundled photos), on the CPU."""
    from ..runtime.quantize import check_precision, int8_device

    cal = None
    if check_precision(precision) == "int8":
        from ..data.calibration import calibration_set  # no torch: a cached int8 request starts without it

        device, backend = int8_device(device, backend), "onnx"
        cal = calibration_set(calibration)
    record = cal.record() if cal else None
    key = None
    if backend in ("auto", "onnx") and cpu_only(device):
        key = compiled.request_key(os.fspath(name or DEFAULT_MODEL), layer, pool, normalize,
                                   calibration=cal.sha256 if cal else None)
        hit = compiled.lookup(key)
        if hit is not None:
            from ..runtime.onnx_session import OnnxRunner

            return FeatureModel(OnnxRunner(hit.onnx, 1), hit.spec, hit.weights_sha256, hit.dim, "onnx", threads or 1,
                                precision, record)

    from ..tasks.embed import check_layer, feature_runner, weights_digest
    from ..zoo import as_model

    module, spec = as_model(name)
    check_layer(module, layer, pool)
    digest = weights_digest(module)
    runner, used = feature_runner(module, layer, pool, normalize, backend=backend, device=device, threads=threads,
                                  digest=digest, precision=precision, calibration=cal)
    dim = int(runner(np.zeros((1, *spec.preprocessing.input_size), np.float32)).shape[1])
    parallel = 1
    if used == "onnx" and cpu_only(device):
        from ..runtime.onnx_session import OnnxRunner

        runner, parallel = OnnxRunner(runner.path, 1), threads or 1
        if key is not None:
            compiled.remember(key, runner.path, spec.to_dict(), digest, dim)
    return FeatureModel(runner, spec.to_dict(), digest, dim, used, parallel, precision, record)
