"""TensorFlow "same" padding made constant for an export whose input sizes are known.

The zoo's EfficientNet-Lite weights come from TensorFlow, so timm pads their stride-2 convolutions at run
time from the input's shape; traced to ONNX that is Shape -> Cast -> Div -> Ceil -> Mul -> Sub -> Pad in
front of each, fp32 arithmetic that ONNX Runtime cannot fold while any axis is symbolic (the batch, or a
detector's height and width), and that costs 15-30 % of the graph's time. The amount is a constant when
the height and width each convolution sees are known: a classifier's fixed input size (found by one
probe forward), or a detector's inputs, whose sides all divide by the strides (then it is (k - 1) * d + 1 - s,
split as TensorFlow splits it). `constant_same_padding` swaps those convolutions for a plain convolution
with constant pads while an export traces; the exporter's check against the unswapped module proves it.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class _ConstantPadConv(nn.Module):
    """A timm `Conv2dSame` padded by constants: those of input sides `size` (TensorFlow's uneven split), or,
    without it, of any sides that divide by its stride."""

    def __init__(self, conv: nn.Conv2d, size: tuple[int, int] | None = None):
        super().__init__()
        self.conv = conv
        pads = []
        for i, (k, s, d) in enumerate(zip(conv.weight.shape[-2:], conv.stride, conv.dilation)):
            rest = 0 if size is None else size[i] % s   # TensorFlow: out = ceil(in / s), total = what that needs
            total = max((k - 1) * d + 1 - (s if rest == 0 else rest), 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        self.pad = (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        bias = c.bias if c.bias is not None else torch.zeros(c.out_channels, dtype=x.dtype)
        return _PaddedConv.apply(x, c.weight, bias, self.pad, c.stride, c.dilation, c.groups)


class _PaddedConv(torch.autograd.Function):
    """Pad, then convolve; exported as one ONNX Conv with asymmetric `pads` (PyTorch's convolution takes
    symmetric padding only, and ONNX Runtime leaves a separate Pad unfused while the sides are symbolic)."""

    @staticmethod
    def forward(ctx, x, weight, bias, pad, stride, dilation, groups):  # noqa: ARG004 - Function's signature
        return F.conv2d(F.pad(x, pad), weight, bias, stride, 0, dilation, groups)

    @staticmethod
    def symbolic(g, x, weight, bias, pad, stride, dilation, groups):
        left, right, top, bottom = pad
        return g.op("Conv", x, weight, bias, kernel_shape_i=list(weight.type().sizes()[-2:]),
                    pads_i=[top, left, bottom, right], strides_i=list(stride), dilations_i=list(dilation),
                    group_i=groups)


def same_padding_convs(module: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, conv) of each convolution in `module` that pads "same" at run time."""
    from timm.layers.conv2d_same import Conv2dSame

    return [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()
            if isinstance(child, Conv2dSame)]


def _input_sizes(module: nn.Module, convs: list[nn.Module], example: torch.Tensor) -> list[tuple[int, int]]:
    """The height and width each of `convs` sees when `module` runs on `example`."""
    sizes: dict[int, tuple[int, int]] = {}

    def record(conv: nn.Module, args: tuple) -> None:
        sizes.setdefault(id(conv), tuple(args[0].shape[-2:]))

    hooks = [conv.register_forward_pre_hook(record) for conv in convs]
    try:
        with torch.inference_mode():
            module(example)
    finally:
        for hook in hooks:
            hook.remove()
    return [sizes.get(id(conv)) for conv in convs]


@contextlib.contextmanager
def constant_same_padding(module: nn.Module, example: torch.Tensor | None = None) -> Iterator[int]:
    """Within the block, `module`'s run-time "same" convolutions pad by constants; yields how many were
    swapped. Without `example`, valid only for inputs whose sides divide by each one's stride; with it (an
    input of the one height and width the export will see), each pads for the size it sees on `example`.
    Restored afterwards."""
    swapped = same_padding_convs(module)
    convs = [conv for _, _, conv in swapped]
    sizes = _input_sizes(module, convs, example) if example is not None and swapped else [None] * len(swapped)
    for (parent, name, conv), size in zip(swapped, sizes):
        setattr(parent, name, _ConstantPadConv(conv, size))
    try:
        yield len(swapped)
    finally:
        for parent, name, conv in swapped:
            setattr(parent, name, conv)
