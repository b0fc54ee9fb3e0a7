"""TensorFlow "same" padding made constant for an export whose inputs are known to divide by the stride.

The zoo's EfficientNet-Lite weights come from TensorFlow, so timm pads their stride-2 convolutions at run
time from the input's shape; traced to ONNX that is Shape -> Cast -> Div -> Ceil -> Mul -> Sub -> Pad in
front of each, in fp32 arithmetic ONNX Runtime cannot fold while the height and width are symbolic. When
every input a convolution sees has a height and width divisible by its stride (a detector's transform pads
each batch to a multiple of the backbone's total stride), the amount is a constant: (k - 1) * d + 1 - s
split as TensorFlow splits it. `constant_same_padding` swaps those convolutions for a constant Pad and a
plain convolution while an export traces; the exporter's check against the unswapped module proves it.
(quantize.py's `prepare_graph` folds the same arithmetic on a graph whose every shape is static.)
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class _ConstantPadConv(nn.Module):
    """A timm `Conv2dSame` for inputs whose sides divide by its stride: padded by a constant."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        pads = []
        for k, s, d in zip(conv.weight.shape[-2:], conv.stride, conv.dilation):
            total = max((k - 1) * d + 1 - s, 0)
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


@contextlib.contextmanager
def constant_same_padding(module: nn.Module) -> Iterator[int]:
    """Within the block, `module`'s run-time "same" convolutions pad by constants (valid only for inputs
    whose sides divide by each one's stride); yields how many were swapped. Restored afterwards."""
    swapped = same_padding_convs(module)
    for parent, name, conv in swapped:
        setattr(parent, name, _ConstantPadConv(conv))
    try:
        yield len(swapped)
    finally:
        for parent, name, conv in swapped:
            setattr(parent, name, conv)
