"""int8 ONNX: static post-training quantization of a cached fp32 export, calibrated on real photos.

Why the first recipe lost half the labels (benchmarks/int8_bench.py, top-1 agreement 0.48,
feature cosine 0.92): the zoo's EfficientNet-Lite weights come from TensorFlow, so their stride-2
convolutions pad "same" at run time: the export computes each padding amount from the input's
shape with float arithmetic (Shape -> Cast -> Div -> Ceil -> Mul -> Sub -> Pad). ONNX Runtime's
quantizer cannot tell that arithmetic from the image path and wrapped it in QuantizeLinear /
DequantizeLinear too, so the pad amounts were rounded to an 8-bit grid: the five downsampling
stages padded by the wrong number of pixels and the last feature map came out 6x6 instead of
7x7. Per-channel weights, percentile ranges and fp32 first/last layers cannot repair a model
whose geometry changed. Excluding the shape arithmetic (`shape_nodes`) from quantization is the
fix; the rest of the recipe (per-channel int8 weights, uint8 activations, QDQ, the range method)
then moves top-1 agreement by a point or two (docs/benchmarks.md has the comparison).

The quantized file is cached beside the fp32 exports, keyed by the fp32 file (itself keyed by the
model, weights and layer), the calibration set's digest and this recipe, so a repeat run starts at
once. onnxruntime is imported only here and in onnx_session.py.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..atomic import atomic_path
from ..errors import UsageError
from .onnx_session import INPUT, onnx_cache_dir, session

PRECISIONS = ("fp32", "int8")
METHODS = ("percentile", "entropy", "minmax")
DEFAULT_METHOD = "percentile"
RECIPE = 1                 # bump when the recipe below changes: cached int8 files are then made again
# A quantized model whose features stray further than this from fp32 on its own calibration photos
# is refused rather than used: int8 must never silently change the answers.
MIN_MEDIAN_COSINE = 0.98
# Kept in fp32: the pooling at the end and the classifier (the last Gemm / MatMul; 1.3 million of
# lite0's ~400 million multiply-adds), so the features and logits users keep are not rounded to 8
# bits on their way out.
FP32_OPS = ("GlobalAveragePool", "Flatten", "Softmax")
HEAD_OPS = ("Gemm", "MatMul")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return precision


def int8_device(device: str, backend: str = "auto") -> str:
    """int8 runs on ONNX Runtime's CPU kernels: "auto" means the CPU then; a GPU or torch is refused."""
    if backend == "torch":
        raise UsageError("--precision int8 runs on ONNX Runtime; leave --backend at auto or onnx")
    if device not in ("auto", "cpu"):
        raise UsageError(f"--precision int8 runs on the CPU; drop --device {device} (or use --precision fp32)")
    return "cpu"


def shape_nodes(model) -> list[str]:
    """Names of the nodes that compute from tensor *shapes* rather than pixel values (run-time
    "same" padding, reshapes): they must stay fp32, since quantizing them changes the geometry.

    A node is shape arithmetic when it is a Shape (or a constant) or when every non-constant input
    it reads is shape arithmetic; the graph's nodes are in topological order.
    """
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    derived: set[str] = set()
    names: list[str] = []
    for node in graph.node:
        inputs = [i for i in node.input if i and i not in constants]
        if node.op_type in ("Shape", "Constant") or (inputs and all(i in derived for i in inputs)):
            derived.update(node.output)
            names.append(node.name)
    return names


def _method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    if name not in METHODS:
        raise UsageError(f"unknown calibration method {name!r}; use one of {', '.join(METHODS)}")
    return {"percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy,
            "minmax": CalibrationMethod.MinMax}[name]


def quantize_int8(src: str | os.PathLike, out: str | os.PathLike, batches: Iterable[np.ndarray],
                  method: str = DEFAULT_METHOD) -> Path:
    """Quantize the fp32 ONNX file `src` to `out` (QDQ, per-channel int8 weights, uint8
    activations), with activation ranges from `batches` (preprocessed photos, N x C x H x W)."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: np.ascontiguousarray(batch, dtype=np.float32)}

    out = Path(out)
    prepared = out.with_name(out.name + ".prep.onnx")
    root = logging.getLogger()
    level = root.level
    # The quantizer logs its progress at INFO and prints it to stdout (where JSON results go), and
    # ONNX Runtime warns about each initializer the pre-processing leaves unused: none of it is news.
    root.setLevel(max(level, logging.WARNING))
    ort.set_default_logger_severity(3)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            # folds BatchNorm into the convolutions and fuses what ONNX Runtime would fuse anyway, so
            # the ranges are calibrated on the graph that runs
            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
            graph = onnx.load(str(prepared))
            heads = [n.name for n in graph.graph.node if n.op_type in HEAD_OPS][-1:]
            excluded = shape_nodes(graph) + heads + [n.name for n in graph.graph.node if n.op_type in FP32_OPS]
            quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=_method(method), nodes_to_exclude=excluded)
    finally:
        root.setLevel(level)
        ort.set_default_logger_severity(2)
        prepared.unlink(missing_ok=True)
    return out



def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def cached_int8(src: str | os.PathLike, calibration: str, batches: Callable[[], Iterable[np.ndarray]],
                method: str = DEFAULT_METHOD) -> Path:
    """The int8 version of the fp32 export `src` calibrated on the set whose digest is
    `calibration`, quantized the first time only (`batches()` is called then, and only then).

    A fresh file is checked against fp32 on the calibration batches and refused (UsageError) when
    its features stray (median cosine under MIN_MEDIAN_COSINE)."""
    try:
        version = metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:  # pragma: no cover - a dependency
        version = ""
    src = Path(src)
    request = {"fp32": src.name, "calibration": calibration, "method": method, "recipe": RECIPE, "onnxruntime": version}
    key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:20]
    path = onnx_cache_dir() / "int8" / f"{src.stem}-int8-{key}.onnx"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    data = [np.asarray(b, np.float32) for b in batches()]
    if not data:
        raise UsageError("no calibration photos could be read; int8 needs a few dozen typical photos")
    with atomic_path(path) as tmp:
        quantize_int8(src, tmp, data, method)
        fp32, int8 = session(src, 1), session(tmp, 1)
        cos = np.concatenate([_cosine(fp32.run(None, {INPUT: x})[0], int8.run(None, {INPUT: x})[0]) for x in data])
        if float(np.median(cos)) < MIN_MEDIAN_COSINE:
            raise UsageError(f"int8 quantization of this model strays from fp32 (median feature cosine "
                             f"{float(np.median(cos)):.3f} on its calibration photos); use --precision fp32")
    return path
