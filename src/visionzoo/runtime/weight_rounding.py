"""Rounding a quantized model's convolution weights so that its *outputs* stay closest to fp32's.

Why: int8's error is mostly the weights' rounding (16-bit weights with 8-bit activations agree with
fp32 far more often than the reverse), and rounding each weight to its nearest grid point ignores
that the errors of a channel's weights add up in its output. GPTQ-style sequential rounding
(Frantar et al. 2022) rounds one input weight at a time and moves the not-yet-rounded ones of the
same output channel to make up for the error, given the second moments of the layer's inputs; bias
correction (Nagel et al. 2019) then removes the error's mean from the bias.

Why on the quantized model's own inputs: an int8 layer does not see fp32's inputs but the rounded
ones that the int8 layers before it made. `refit_qdq` goes through ONNX Runtime's QDQ graph layer by
layer, in graph order: each convolution's weights are rounded for the input moments measured on the
model as quantized so far (activations rounded as ONNX Runtime rounds them, the layers before it
already refitted), and its bias is set so that its output's mean is fp32's on the calibration photos,
so each layer also takes out the mean error the layers before it left. Before quantizing,
`round_graph` rounds the fp32 graph's weights the same way for fp32's inputs (onto the grid the
quantizer then computes), so that the activation ranges are measured on weights that already carry
their rounding. Top-1 agreement with fp32 on 520 unseen photos (benchmarks/int8_bench.py), lite0 /
lite1 / lite2: 0.940 / 0.927 / 0.915 with `round_graph` alone, 0.952 / 0.938 / 0.950 with
`refit_qdq` alone, 0.950 / 0.952 / 0.954 with both. Statistics from the graph before refitting,
gathered once for all layers, make every layer correct the same upstream error again (0.78 on
lite0). Regressing onto fp32's inputs through the cross moments of quantized and fp32 inputs
(GPTAQ's target) fitted the calibration photos' noise and lost 6 points.

The weights are written as the int8 values of the QDQ graph, on the scales ONNX Runtime chose for
them (per output channel), and the bias as its int32 at the bias's scale: what runs is what was fitted.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

QMAX = 127            # int8 symmetric range: [-127, 127]
DAMP = 0.01           # added to the input covariance's diagonal, as a share of its mean
BATCH = 8             # images per ONNX Runtime call while measuring


@dataclass
class ConvShape:
    """What of an ONNX Conv node the statistics need: kernel, strides, pads, dilations, groups."""

    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)     # ONNX order: top, left, bottom, right
    dilations: tuple[int, int] = (1, 1)
    groups: int = 1


class InputMoments:
    """Running mean and (unless `second` is False) covariance of one convolution's input patches,
    per group of channels.

    A patch is what one output position reads: (input channels of its group) x kh x kw values,
    ordered as the ONNX weight (C/g, kh, kw) is, so that weights @ patch is the output."""

    def __init__(self, shape: ConvShape, second: bool = True):
        self.shape = shape
        self.second = second
        self.count = 0
        self.total: torch.Tensor | None = None      # (groups, d)
        self.outer: torch.Tensor | None = None      # (groups, d, d)

    def patches(self, x: np.ndarray) -> torch.Tensor:
        """(groups, d, positions) patches of the batch `x` (N, C, H, W)."""
        s = self.shape
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        n, c = t.shape[:2]
        if s.kernel == (1, 1) and s.strides == (1, 1) and not any(s.pads):
            cols = t.reshape(n, c, -1)
        else:
            top, left, bottom, right = s.pads
            t = torch.nn.functional.pad(t, (left, right, top, bottom))
            cols = torch.nn.functional.unfold(t, s.kernel, dilation=s.dilations, stride=s.strides)
        d = cols.shape[1] // s.groups
        return cols.reshape(n, s.groups, d, -1).permute(1, 2, 0, 3).reshape(s.groups, d, -1).double()

    def add(self, x: np.ndarray) -> None:
        for image in x:  # one image at a time: a batch's patches of a 112 px layer would take GBs
            cols = self.patches(image[None])
            total = cols.sum(2)
            self.count += cols.shape[2]
            self.total = total if self.total is None else self.total + total
            if self.second:
                outer = cols @ cols.transpose(1, 2)
                self.outer = outer if self.outer is None else self.outer + outer

    def mean(self) -> np.ndarray:
        return (self.total / self.count).numpy()

    def cov(self) -> np.ndarray:
        mean = self.total / self.count
        return (self.outer / self.count - mean[:, :, None] * mean[:, None, :]).numpy()


def gptq(target: np.ndarray, scale: np.ndarray, cov: np.ndarray, keep_max: bool = False) -> np.ndarray:
    """Weights (g, r, d) on the int8 grid `scale` (g, r: one step per output channel, at most QMAX
    steps either way) that are close to `target` (g, r, d) in output, for inputs of covariance `cov`
    (g, d, d): minimises (q - target)' cov (q - target) per output channel by GPTQ's sequential
    rounding. A channel whose scale is 0 keeps its weights; with `keep_max`, each channel's largest
    weight is kept as it is (it fixes the scale the quantizer computes) and the others make up for it."""
    d = target.shape[2]
    # columns in order of decreasing input variance (GPTQ's "act order"): the weights that matter
    # most are rounded first, while the most other weights are left to make up for them
    order = np.argsort(-np.diagonal(cov, axis1=1, axis2=2), axis=1, kind="stable")
    wp = np.take_along_axis(target.astype(np.float64), order[:, None, :], 2)
    pinned = np.abs(wp).argmax(2) if keep_max else np.full(wp.shape[:2], -1)
    h = torch.from_numpy(np.take_along_axis(np.take_along_axis(cov, order[:, :, None], 1), order[:, None, :], 2)).clone()
    diag = torch.diagonal(h, dim1=1, dim2=2)
    diag += DAMP * diag.mean(1, keepdim=True).clamp_min(1e-12)
    # upper Cholesky factor of the inverse covariance: row i says how to spread column i's error
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True).numpy()
    live = scale > 0
    safe = np.where(live, scale, 1.0)
    w = wp.copy()
    qp = np.empty_like(w)
    for i in range(d):
        col = w[:, :, i]
        rounded = np.clip(np.round(col / safe), -QMAX, QMAX) * safe
        qi = np.where(pinned == i, wp[:, :, i], np.where(live, rounded, col))
        qp[:, :, i] = qi
        err = (col - qi) / u[:, i, i][:, None]
        w[:, :, i + 1:] -= err[:, :, None] * u[:, None, i, i + 1:]
    q = np.empty_like(qp)
    np.put_along_axis(q, order[:, None, :], qp, 2)
    return q


def channel_scales(weight: np.ndarray) -> np.ndarray:
    """ONNX Runtime's per-output-channel int8 scale for `weight` (cout, ...): max|w| / 127, computed
    as `compute_scale_zp` does (float64 division, stored as float32)."""
    absmax = np.abs(weight.reshape(len(weight), -1)).max(1).astype(np.float32)
    return (absmax.astype(np.float64) * 2 / (2 * QMAX)).astype(np.float32)


def nearest(weight: np.ndarray) -> np.ndarray:
    """Plain round-to-nearest on that grid (what the quantizer does by itself), dequantized."""
    s = channel_scales(weight).reshape(-1, *[1] * (weight.ndim - 1))
    safe = np.where(s > 0, s, 1)
    return np.where(s > 0, np.clip(np.round(weight / safe), -QMAX, QMAX) * s, weight).astype(np.float32)


def round_weights(weight: np.ndarray, bias: np.ndarray | None, mean: np.ndarray, cov: np.ndarray,
                  groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Weights on the int8 grid ONNX Runtime's quantizer will compute for them (`channel_scales`),
    chosen by `gptq` to keep the outputs close, and the bias moved by -(w_q - w) . mean so that the
    output error has no mean. `weight` is (cout, C/g, kh, kw); `mean` (g, d) and `cov` (g, d, d)
    describe the input patches (`InputMoments`)."""
    cout = weight.shape[0]
    w0 = weight.reshape(groups, cout // groups, -1).astype(np.float64)
    q = gptq(w0, channel_scales(weight).astype(np.float64).reshape(w0.shape[:2]), cov, keep_max=True)
    # the grid ONNX Runtime will compute must be this one: nothing beyond the kept maximum
    limit = np.abs(w0).max(2, keepdims=True)
    q = np.clip(q, -limit, limit)
    shift = np.einsum("grd,gd->gr", q - w0, mean)
    new_bias = (np.zeros(cout) if bias is None else bias.astype(np.float64)) - shift.reshape(cout)
    return q.reshape(weight.shape).astype(np.float32), new_bias.astype(np.float32)


def output_error(weight: np.ndarray, bias_shift: np.ndarray, approx: np.ndarray, mean: np.ndarray,
                 cov: np.ndarray, groups: int = 1) -> float:
    """Mean squared output error of a convolution whose weights became `approx` and whose bias moved
    by `bias_shift`, on inputs with these moments: how good a rounding is, without running it."""
    cout = weight.shape[0]
    delta = (approx.astype(np.float64) - weight).reshape(groups, cout // groups, -1)
    second = np.einsum("grd,gde,gre->gr", delta, cov, delta)
    bias_err = np.einsum("grd,gd->gr", delta, mean).reshape(cout) + bias_shift
    return float((second.reshape(cout) + bias_err ** 2).mean())


@dataclass
class QConv:
    """A convolution of a QDQ graph whose input, weight and bias all come through DequantizeLinear,
    with its fp32 weight and bias (from the unquantized graph)."""

    node: object
    fp32_input: str         # the same input's name in the fp32 graph
    weight: np.ndarray      # fp32 (cout, C/g, kh, kw)
    bias: np.ndarray        # fp32 (cout,)
    weight_q: str           # initializer names: int8 weight and its per-channel scale
    weight_scale: str
    bias_q: str             # int32 bias and its scale
    bias_scale: str
    shape: ConvShape


def _conv_shape(node, weight: np.ndarray) -> ConvShape:
    attrs = {a.name: list(a.ints) if a.ints else a.i for a in node.attribute}
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", 0):
        raise ValueError("auto_pad")
    return ConvShape(kernel=tuple(weight.shape[2:]), strides=tuple(attrs.get("strides", [1, 1])),
                     pads=tuple(attrs.get("pads", [0, 0, 0, 0])), dilations=tuple(attrs.get("dilations", [1, 1])),
                     groups=int(attrs.get("group", 1)))


def quantized_convs(qdq, fp32) -> list[QConv]:
    """The 2-D convolutions of the QDQ graph `qdq` that run int8 (input, weight and bias dequantized),
    in graph order, matched by node name to `fp32`, the graph it was quantized from."""
    from onnx import numpy_helper

    produced = {out: node for node in qdq.graph.node for out in node.output}
    fp32_nodes = {node.name: node for node in fp32.graph.node}
    fp32_inits = {t.name: t for t in fp32.graph.initializer}
    found = []
    for node in qdq.graph.node:
        if node.op_type != "Conv" or len(node.input) < 3 or node.name not in fp32_nodes:
            continue
        sources = [produced.get(name) for name in node.input[:3]]
        original = fp32_nodes[node.name]
        bias_name = original.input[2] if len(original.input) > 2 else ""  # none: the rounding gave it one
        if (any(s is None or s.op_type != "DequantizeLinear" for s in sources)
                or any(name not in fp32_inits for name in (original.input[1], bias_name) if name)):
            continue
        weight = numpy_helper.to_array(fp32_inits[original.input[1]])
        if weight.ndim != 4:
            continue
        try:
            shape = _conv_shape(node, weight)
        except ValueError:
            continue
        bias = numpy_helper.to_array(fp32_inits[bias_name]) if bias_name else np.zeros(len(weight), np.float32)
        found.append(QConv(node, original.input[0], weight, bias,
                           sources[1].input[0], sources[1].input[1], sources[2].input[0], sources[2].input[1], shape))
    return found


def _session(model, outputs: list[str]):
    """An ONNX Runtime session of `model` computing only `outputs` (the nodes they need, nothing after)."""
    import onnx
    import onnxruntime as ort

    produced = {out: node for node in model.graph.node for out in node.output}
    needed, todo = set(), list(outputs)
    while todo:
        node = produced.get(todo.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            todo.extend(node.input)
    graph = onnx.helper.make_graph([n for n in model.graph.node if id(n) in needed], "probe", model.graph.input,
                                   [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs],
                                   model.graph.initializer)
    probe = onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _run(session, images: np.ndarray) -> Iterable[list[np.ndarray]]:
    name = session.get_inputs()[0].name
    for i in range(0, len(images), BATCH):
        yield session.run(None, {name: np.ascontiguousarray(images[i:i + BATCH], dtype=np.float32)})


def refit_qdq(qdq, fp32, images: np.ndarray) -> list[str]:
    """Re-round in place the int8 weights and biases of `qdq`'s quantized convolutions
    (`quantized_convs`), one after the other, for their outputs on `images` (N x C x H x W):
    weights by `gptq` for the inputs the QDQ graph as refitted so far gives them, the bias so that the
    output's mean is the fp32 graph `fp32`'s. Returns the refitted convolutions' names."""
    from onnx import numpy_helper

    convs = quantized_convs(qdq, fp32)
    if not convs:
        return []
    inits = {t.name: t for t in qdq.graph.initializer}
    wanted = list(dict.fromkeys(c.fp32_input for c in convs))
    fp32_means = {c.node.name: InputMoments(c.shape, second=False) for c in convs}
    for outs in _run(_session(fp32, wanted), images):
        got = dict(zip(wanted, outs))
        for c in convs:
            fp32_means[c.node.name].add(got[c.fp32_input])
    for c in convs:
        moments = InputMoments(c.shape)
        for (x,) in _run(_session(qdq, [c.node.input[0]]), images):
            moments.add(x)
        g = c.shape.groups
        w = c.weight.reshape(g, len(c.weight) // g, -1).astype(np.float64)
        scale = numpy_helper.to_array(inits[c.weight_scale]).astype(np.float64).reshape(w.shape[:2])
        live = scale[:, :, None] > 0
        q = np.where(live, np.round(gptq(w, scale, moments.cov()) / np.where(live, scale[:, :, None], 1)), 0)
        shift = (np.einsum("grd,gd->gr", w, fp32_means[c.node.name].mean())
                 - np.einsum("grd,gd->gr", q * scale[:, :, None], moments.mean()))
        bias = c.bias.astype(np.float64) + shift.reshape(-1)
        bias_scale = numpy_helper.to_array(inits[c.bias_scale]).astype(np.float64)
        inits[c.weight_q].CopyFrom(numpy_helper.from_array(q.reshape(c.weight.shape).astype(np.int8), c.weight_q))
        inits[c.bias_q].CopyFrom(numpy_helper.from_array(np.round(bias / bias_scale).astype(np.int32), c.bias_q))
    return [c.node.name for c in convs]


def round_graph(model, images, skip: set[str] = frozenset()) -> dict[str, float]:
    """Re-round in place the weights (and biases) of `model`'s 2-D convolutions not named in `skip`,
    with input moments gathered by running `model` (fp32) on `images` (N x C x H x W arrays) in ONNX
    Runtime. Returns each corrected convolution's output error relative to round-to-nearest's (from
    the same moments): under 1 where it helped."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    convs = []
    for node in model.graph.node:
        # a weight or bias another node reads too is left alone: rounding it for one would change both
        if (node.op_type != "Conv" or node.name in skip or node.input[1] not in inits
                or any(readers[name] > 1 for name in node.input[1:] if name)):
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if weight.ndim != 4:
            continue
        try:
            convs.append((node, weight, _conv_shape(node, weight)))
        except ValueError:
            continue
    if not convs:
        return {}
    wanted = list(dict.fromkeys(node.input[0] for node, _, _ in convs))
    sess = _session(model, wanted)
    moments = {node.name: InputMoments(shape) for node, _, shape in convs}
    for batch in images:
        for image in batch:
            outs = dict(zip(wanted, sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(
                image[None], dtype=np.float32)})))
            for node, _, _ in convs:
                moments[node.name].add(outs[node.input[0]])
    gains = {}
    for node, weight, shape in convs:
        mean, cov = moments[node.name].mean(), moments[node.name].cov()
        bias_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        bias = numpy_helper.to_array(inits[bias_name]) if bias_name else None
        new_w, new_b = round_weights(weight, bias, mean, cov, shape.groups)
        old = output_error(weight, np.zeros(len(weight)), nearest(weight), mean, cov, shape.groups)
        new = output_error(weight, new_b - (0 if bias is None else bias), new_w, mean, cov, shape.groups)
        gains[node.name] = new / old if old > 0 else 1.0
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(new_w, node.input[1]))
        if bias_name:
            inits[bias_name].CopyFrom(numpy_helper.from_array(new_b, bias_name))
        else:
            name = node.input[1] + "_bias"
            model.graph.initializer.append(numpy_helper.from_array(new_b, name))
            if len(node.input) < 3:
                node.input.append(name)
            else:
                node.input[2] = name
    return gains
