"""int8 ONNX: static post-training quantization of a cached fp32 export, calibrated on real photos.

Why the first recipe lost half the labels (benchmarks/int8_bench.py, top-1 agreement 0.48,
feature cosine 0.92): the zoo's EfficientNet-Lite weights come from TensorFlow, so their stride-2
convolutions pad "same" at run time: the export computes each padding amount from the input's
shape with float arithmetic (Shape -> Cast -> Div -> Ceil -> Mul -> Sub -> Pad). ONNX Runtime's
quantizer cannot tell that arithmetic from the image path and wrapped it in QuantizeLinear /
DequantizeLinear too, so the pad amounts were rounded to an 8-bit grid: the five downsampling
stages padded by the wrong number of pixels and the last feature map came out 6x6 instead of
7x7. Per-channel weights, percentile ranges and fp32 first/last layers cannot repair a model
whose geometry changed. Folding that arithmetic away before quantizing (`prepare_graph`;
`shape_nodes` keeps it fp32 where it cannot fold) is the fix; the zoo's own exports now pad by
constants from the start (same_padding.py), and `prepare_graph` folds what other graphs still compute.

Why the second recipe still disagreed on 17 % of the labels and was hardly faster
(docs/benchmarks.md): int8 rounding noise enters every layer and is carried by all later ones, most
from the early high-resolution blocks, whatever the range method; those blocks now stay fp32
(`early_nodes`). And the five run-time Pads ran in fp32 between int8 layers, so 55 % of the int8
forward time went to dequantizing, transposing and requantizing around them; folded into the
convolutions, they cost nothing.

Why the third recipe re-rounds the weights: what noise remained was mostly the weights' rounding,
and rounding each weight to its nearest step ignores that one channel's errors add up in its
output. `weight_rounding.round_graph` rounds them for the outputs on the calibration photos (GPTQ,
then bias correction) onto the very grid ONNX Runtime then computes: lite0's top-1 agreement with
fp32 went from 0.906 to 0.946 and its median feature cosine from 0.9965 to 0.9985, at no run-time cost.

Why the fourth recipe refits them after quantizing: an int8 layer does not get fp32's inputs but
what the int8 layers before it made. `weight_rounding.refit_qdq` rounds each convolution again, in
graph order, for the inputs the QDQ graph refitted so far gives it, and sets its bias so that its
output mean is fp32's (top-1 agreement 0.950 / 0.952 / 0.954 on lite0 / lite1 / lite2, from 0.940 /
0.927 / 0.915).

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
from typing import Any, Callable, Iterable

import numpy as np

from ..atomic import atomic_path
from ..errors import UsageError
from .onnx_session import INPUT, onnx_cache_dir, session

PRECISIONS = ("fp32", "int8")
METHODS = ("percentile", "entropy", "minmax")
DEFAULT_METHOD = "percentile"
RECIPE = 5                 # bump when the recipe below changes: cached int8 files are then made again
# Photos the weight rounding measures each layer's inputs on (spread over the calibration set):
# 64 x 49 positions and more per photo estimate a 1152 x 1152 covariance well, in seconds.
ROUNDING_IMAGES = 64
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


def _freeze_batch(model) -> str | None:
    """Fix the input's symbolic batch dimension to 1 in place and return its name, or None when any
    other input dimension is symbolic too (the geometry then is only known at run time).

    With every shape static, ONNX Runtime's own optimizer (run by `quant_pre_process`) folds the
    run-time "same" padding arithmetic into constants and each Pad into its convolution: the graph
    keeps no shape arithmetic for the quantizer to touch, and no fp32 Pad that int8 tensors must be
    dequantized, transposed and requantized around (55 % of lite0's int8 forward time before)."""
    from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed

    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not dims or not dims[0].dim_param or any(not d.HasField("dim_value") for d in dims[1:]):
        return None
    name = dims[0].dim_param
    make_dim_param_fixed(model.graph, name, 1)
    return name


def _thaw_batch(model, name: str) -> None:
    """Undo `_freeze_batch` on the optimized graph: a symbolic batch again on its inputs and outputs,
    and no inferred shape that still says 1 (the quantizer infers them again)."""
    for value in list(model.graph.input) + list(model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = name
    del model.graph.value_info[:]


def early_nodes(model) -> list[str]:
    """Names of the nodes after the first convolution whose outputs are still at least a quarter of
    the input's side (EfficientNet-Lite's blocks 0 and 1, at 112 and 56 px): they stay fp32.

    Why (benchmarks/int8_bench.py, lite0): the error of an int8 layer is carried and amplified by
    every layer after it, and the early, high-resolution, few-channel blocks lose the most
    (`qdq_loss_debug`: signal-to-noise falls from 30 to 19 dB across them, against about 1 dB per block
    after). Keeping blocks 0 and 1 in fp32 (16 % of lite0's multiply-adds) took top-1 agreement from
    0.83 to 0.91 and recall@10 from 0.88 to 0.91; block 2 as well added two points more for another
    quarter of int8's time. The first convolution stays int8 (its output is quantized either way);
    the fp32 part ends at the last residual Add at that size. `model` must have static shapes."""
    import onnx

    model = onnx.shape_inference.infer_shapes(model)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    side = min(dims[model.graph.input[0].name][2:])
    convs = [i for i, n in enumerate(model.graph.node) if n.op_type == "Conv"]
    if not convs or not side:
        return []
    nodes = [node for node in model.graph.node[convs[0] + 1:] if node.input[0] != model.graph.node[convs[0]].output[0]
             and len(dims.get(node.output[0], [])) == 4 and dims[node.output[0]][2] * 4 >= side]
    # up to the last residual Add at that size: the next stage starts int8 with one quantized input
    adds = [i for i, node in enumerate(nodes) if node.op_type == "Add"]
    return [node.name for node in nodes[:adds[-1] + 1 if adds else len(nodes)]]


def prepare_graph(src: Path, out: Path, probe: np.ndarray) -> list[str]:
    """`quant_pre_process` (shape inference, ONNX Runtime's basic fusions) on `src`, with the batch
    frozen while it runs so that the padding folds (see `_freeze_batch`). The folded graph must give
    the source's outputs on `probe` (a batch of more than one image); otherwise the unfolded one is
    used and `shape_nodes` keeps its arithmetic in fp32. Returns `early_nodes` of the folded graph
    (none when it could not fold)."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(src))
    batch = _freeze_batch(model)
    quant_pre_process(model, str(out), skip_symbolic_shape=True)
    if batch is None:
        return []
    folded = onnx.load(str(out))
    early = early_nodes(folded)
    _thaw_batch(folded, batch)
    onnx.save(folded, str(out))
    want, got = (session(path, 1).run(None, {INPUT: probe}) for path in (src, out))
    if not all(np.allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(a).max())) for a, b in zip(want, got)):
        quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
        return []
    return early


@contextlib.contextmanager
def _quiet_quantizer():
    """The quantizer logs its progress at INFO and prints it to stdout (where JSON results go), and ONNX
    Runtime warns about each initializer the pre-processing leaves unused: none of it is news."""
    import onnxruntime as ort

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    ort.set_default_logger_severity(3)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
        ort.set_default_logger_severity(2)


def _quantize_static(src: Path, out: Path, feeds: Iterable[dict[str, np.ndarray]], method: str, **options) -> None:
    """ONNX Runtime's static quantization as every int8 file here is made: QDQ, per-channel int8 weights,
    uint8 activations, ranges by `method` from running each of `feeds` (one input dict per run)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(feeds)

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=_method(method), **options)


def quantize_int8(src: str | os.PathLike, out: str | os.PathLike, batches: Iterable[np.ndarray],
                  method: str = DEFAULT_METHOD) -> Path:
    """Quantize the fp32 ONNX file `src` to `out` (see `_quantize_static`), with activation ranges from
    `batches` (preprocessed photos, N x C x H x W) measured on the graph whose convolutions' weights
    were first rounded for their outputs on those photos (`round_graph`), then its int8 convolutions'
    weights and biases refitted, layer by layer, on the int8 graph's own inputs (`refit_qdq`)."""
    import onnx

    from .weight_rounding import refit_qdq, round_graph  # torch: only when a file is made

    # One image per calibration run: ONNX Runtime's histogram calibrators stack each tensor's values
    # over the runs, which fails when a last batch is smaller than the others.
    images = [np.ascontiguousarray(img[None], dtype=np.float32) for batch in batches for img in batch]
    out = Path(out)
    prepared = out.with_name(out.name + ".prep.onnx")
    try:
        with _quiet_quantizer():
            early = prepare_graph(Path(src), prepared, np.concatenate((images * 2)[:2]))
            fp32, graph = onnx.load(str(prepared)), onnx.load(str(prepared))
            heads = [n.name for n in graph.graph.node if n.op_type in HEAD_OPS][-1:]
            excluded = (shape_nodes(graph) + early + heads
                        + [n.name for n in graph.graph.node if n.op_type in FP32_OPS])
            rounding = images[::max(1, len(images) // ROUNDING_IMAGES)]
            # rounded on fp32's inputs first, so that the activation ranges are measured on weights
            # that already carry their rounding; then refitted on the int8 graph's own inputs
            round_graph(graph, rounding, set(excluded))
            onnx.save(graph, str(prepared))
            _quantize_static(prepared, out, ({INPUT: image} for image in images), method, nodes_to_exclude=excluded)
            qdq = onnx.load(str(out))
            refit_qdq(qdq, fp32, np.concatenate(rounding))
            onnx.save(qdq, str(out))
    finally:
        prepared.unlink(missing_ok=True)
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def int8_path(src: Path, folder: Path, **request: Any) -> Path:
    """Where in `folder` the int8 version of the fp32 file `src` made as `request` says (calibration
    digest, recipe, ...) is cached: keyed by those, `src`'s name and the ONNX Runtime that quantized it."""
    try:
        version = metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:  # pragma: no cover - a dependency
        version = ""
    key = {"fp32": src.name, **request, "onnxruntime": version}
    return folder / f"{src.stem}-int8-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]}.onnx"


def cached_int8(src: str | os.PathLike, calibration: str, batches: Callable[[], Iterable[np.ndarray]],
                method: str = DEFAULT_METHOD) -> Path:
    """The int8 version of the fp32 export `src` calibrated on the set whose digest is
    `calibration`, quantized the first time only (`batches()` is called then, and only then).

    A fresh file is checked against fp32 on the calibration batches and refused (UsageError) when
    its features stray (median cosine under MIN_MEDIAN_COSINE)."""
    src = Path(src)
    path = int8_path(src, onnx_cache_dir() / "int8", calibration=calibration, method=method, recipe=RECIPE)
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


def quantize_int8_nodes(src: str | os.PathLike, out: str | os.PathLike, feeds: Iterable[dict[str, np.ndarray]],
                        nodes: list[str], op_types: tuple[str, ...]) -> Path:
    """Quantize only `nodes` (of `op_types`) of the fp32 ONNX file `src` to `out` (see `_quantize_static`),
    calibrated by running each of `feeds` (one input dict per run) through it.

    For a graph that is more than one image batch in and features out (a whole detector, of which only the
    trunk is worth quantizing): its ranges are each run's minimum and maximum, averaged over the runs, since
    the histogram methods need every calibrated tensor the same shape in every run, and a detector's box
    tensors are not."""
    import onnxruntime as ort

    with _quiet_quantizer():
        _quantize_static(Path(src), Path(out), feeds, "minmax", nodes_to_quantize=nodes,
                         op_types_to_quantize=list(op_types), extra_options={"CalibMovingAverage": True})
        # Saved as ONNX Runtime's basic optimizer leaves it (portable: standard operators only), so that a
        # session does not warn, at every start, of each activation bound the QDQ graph no longer uses.
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(out)
        ort.InferenceSession(str(out), opts, providers=["CPUExecutionProvider"])
    return Path(out)
