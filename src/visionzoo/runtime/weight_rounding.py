"""Rounding a convolution's weights to ONNX Runtime's int8 grid so that its *outputs* change least.

Why: int8's error is mostly the weights' rounding (16-bit weights with 8-bit activations agree with
fp32 far more often than the reverse), and rounding each weight to its nearest grid point ignores
that the errors of a channel's weights add up in its output. Given the second moments of a layer's
inputs on calibration photos, GPTQ-style sequential rounding (Frantar et al. 2022) rounds one
input weight at a time and moves the not-yet-rounded ones of the same output channel to make up for
the error, and bias correction (Nagel et al. 2019) then removes the error's mean from the bias.

The corrected weights lie exactly on the grid ONNX Runtime's quantizer computes for them afterwards
(per output channel, symmetric: scale = max|w| / 127, `quant_utils.compute_scale_zp`): each
channel's largest weight is kept as it is, so the scale does not move, and the others become
integer multiples of it, so quantizing them again changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

QMAX = 127            # int8 symmetric range: [-127, 127]
DAMP = 0.01           # added to the input covariance's diagonal, as a share of its mean


@dataclass
class ConvShape:
    """What of an ONNX Conv node the statistics need: kernel, strides, pads, dilations, groups."""

    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)     # ONNX order: top, left, bottom, right
    dilations: tuple[int, int] = (1, 1)
    groups: int = 1


class InputMoments:
    """Running mean and covariance of one convolution's input patches, per group of channels.

    A patch is what one output position reads: (input channels of its group) x kh x kw values,
    ordered as the ONNX weight (C/g, kh, kw) is, so that weights @ patch is the output."""

    def __init__(self, shape: ConvShape):
        self.shape = shape
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
        cols = self.patches(x)
        total, outer = cols.sum(2), cols @ cols.transpose(1, 2)
        self.count += cols.shape[2]
        self.total = total if self.total is None else self.total + total
        self.outer = outer if self.outer is None else self.outer + outer

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.total / self.count
        cov = self.outer / self.count - mean[:, :, None] * mean[:, None, :]
        return mean.numpy(), cov.numpy()


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
    """Weights on ONNX Runtime's int8 grid chosen to keep the outputs close, and the corrected bias.

    `weight` is (cout, C/g, kh, kw); `mean` (g, d) and `cov` (g, d, d) describe the input patches
    (`InputMoments`). Minimises, per output channel, (w_q - w)' cov (w_q - w) by GPTQ's sequential
    rounding, then moves the bias by -(w_q - w) . mean, so that the output error has no mean."""
    cout = weight.shape[0]
    rows = cout // groups
    d = weight[0].size
    w0 = weight.reshape(groups, rows, d).astype(np.float64)
    scale = channel_scales(weight).astype(np.float64).reshape(groups, rows)
    live = scale > 0
    safe = np.where(live, scale, 1.0)
    # columns in order of decreasing input variance (GPTQ's "act order"): the weights that matter
    # most are rounded first, while the most other weights are left to make up for them
    order = np.argsort(-np.diagonal(cov, axis1=1, axis2=2), axis=1, kind="stable")
    wp = np.take_along_axis(w0, order[:, None, :], 2)
    pinned = np.abs(wp).argmax(2)                   # each channel's largest weight fixes its scale: kept as is
    h = torch.from_numpy(np.take_along_axis(np.take_along_axis(cov, order[:, :, None], 1), order[:, None, :], 2)).clone()
    diag = torch.diagonal(h, dim1=1, dim2=2)
    diag += DAMP * diag.mean(1, keepdim=True).clamp_min(1e-12)
    # upper Cholesky factor of the inverse covariance: row i says how to spread column i's error
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True).numpy()
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
    # the grid ONNX Runtime will compute must be this one: nothing beyond the pinned maximum
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


def _conv_shape(node, weight: np.ndarray) -> ConvShape:
    attrs = {a.name: list(a.ints) if a.ints else a.i for a in node.attribute}
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", 0):
        raise ValueError("auto_pad")
    return ConvShape(kernel=tuple(weight.shape[2:]), strides=tuple(attrs.get("strides", [1, 1])),
                     pads=tuple(attrs.get("pads", [0, 0, 0, 0])), dilations=tuple(attrs.get("dilations", [1, 1])),
                     groups=int(attrs.get("group", 1)))


def round_graph(model, images, skip: set[str] = frozenset()) -> dict[str, float]:
    """Re-round in place the weights (and biases) of `model`'s 2-D convolutions not named in `skip`,
    with input moments gathered by running `model` (fp32) on `images` (N x C x H x W arrays) in ONNX
    Runtime. Returns each corrected convolution's output error relative to round-to-nearest's (from
    the same moments): under 1 where it helped."""
    import onnx
    import onnxruntime as ort
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
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    wanted = list(dict.fromkeys(node.input[0] for node, _, _ in convs))
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                              for name in wanted)
    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    moments = {node.name: InputMoments(shape) for node, _, shape in convs}
    for batch in images:
        for image in batch:
            outs = dict(zip(wanted, sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(
                image[None], dtype=np.float32)})))
            for node, _, _ in convs:
                moments[node.name].add(outs[node.input[0]])
    gains = {}
    for node, weight, shape in convs:
        mean, cov = moments[node.name].mean_cov()
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
