"""Reading dlib's serialized face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`).

The file is `dlib::serialize(net)` of the network in dlib's `dnn_face_recognition_ex.cpp`
(dlib/dnn/core.h, layers.h, input.h, serialize.h): the loss layer, then every wrapper's version
number from the outside in (add_layer 2, tag/skip 1, the add_layer over the input 3), then the
input layer and each layer's own fields from the input out. Integers are dlib's variable-length
form (a byte with the length and sign, then little-endian bytes), floats a (mantissa, exponent)
pair of such integers, tensors raw little-endian float32, bools the characters '0' / '1'.

Tag and skip layers store nothing of their own, so which wrapper is which comes from the known
architecture (`ARCHITECTURE`); the reader checks the file's wrapper sequence against it and every
layer's name, kernel, stride and padding against what the architecture says, so a different file
is refused rather than misread.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ...errors import UsageError


def _block(n: int, stride: int) -> list[tuple]:
    return [("con", n, stride), ("affine",), ("relu",), ("con", n, 1), ("affine",)]


def _ares(n: int) -> list[tuple]:
    """relu<add_prev1<block<n, 1, tag1<x>>>>: x + block(x)"""
    return [("tag1",), *_block(n, 1), ("add_prev", "tag1"), ("relu",)]


def _ares_down(n: int) -> list[tuple]:
    """relu<add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<n, 2, tag1<x>>>>>>>: avgpool(x) + block(x)"""
    return [("tag1",), *_block(n, 2), ("tag2",), ("skip1",), ("avg_pool",), ("add_prev", "tag2"), ("relu",)]


# anet_type of dlib's example, input to output (after input_rgb_image_sized<150>).
ARCHITECTURE: list[tuple] = [
    ("con", 32, 2), ("affine",), ("relu",), ("max_pool",),
    *_ares(32) * 3,
    *_ares_down(64), *_ares(64) * 3,
    *_ares_down(128), *_ares(128) * 2,
    *_ares_down(256), *_ares(256) * 2,
    *_ares_down(256),
    ("avg_pool_everything",), ("fc", 128),
]
_WRAPPERS = ("tag1", "tag2", "skip1")


@dataclass
class Layer:
    kind: str                                   # con, affine, relu, max_pool, avg_pool, add_prev, tag1, ...
    params: np.ndarray | None = None            # the layer's flat float32 parameters
    shape: dict = field(default_factory=dict)   # filters, kernel, stride, padding, inputs, outputs


@dataclass
class DlibNet:
    mean: tuple[float, float, float]    # input_rgb_image_sized subtracts these, then divides by 256
    size: int                           # the input chip's side (150)
    layers: list[Layer]                 # input to output, tags and skips included


class _Stream:
    def __init__(self, data: bytes, path: str):
        self.data, self.pos, self.path = data, 0, path

    def _fail(self, what: str) -> UsageError:
        return UsageError(f"{self.path} is not dlib's face-recognition ResNet ({what} at byte {self.pos})")

    def int(self) -> int:
        if self.pos >= len(self.data):
            raise self._fail("unexpected end of file")
        head = self.data[self.pos]
        n = head & 0x0F
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + n], "little")
        self.pos += 1 + n
        return -value if head & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        return mantissa * 2.0 ** self.int()

    def string(self) -> str:
        n = self.int()
        text = self.data[self.pos:self.pos + n].decode("latin-1")
        self.pos += n
        return text

    def bool(self) -> bool:
        ch = self.data[self.pos:self.pos + 1]
        if ch not in (b"0", b"1"):
            raise self._fail("bad bool")
        self.pos += 1
        return ch == b"1"

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise self._fail("bad tensor version")
        count = int(np.prod([self.int() for _ in range(4)]))
        if self.pos + 4 * count > len(self.data):
            raise self._fail("truncated tensor")
        out = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return out

    def alias(self) -> tuple[int, ...]:
        if self.int() != 1:
            raise self._fail("bad alias_tensor version")
        return tuple(self.int() for _ in range(4))


def _details(s: _Stream) -> Layer:
    """One layer's own fields (layers.h serialize), by the name it starts with."""
    name = s.string()
    if name == "con_4":
        params = s.tensor()
        filters, kh, kw, sy, sx, py, px = (s.int() for _ in range(7))
        s.alias(), s.alias(), [s.float() for _ in range(4)]  # filter/bias views, learning-rate settings
        return Layer("con", params, {"filters": filters, "kernel": (kh, kw), "stride": (sy, sx), "padding": (py, px)})
    if name == "affine_":
        params = s.tensor()
        s.alias(), s.alias()
        if s.int() != 0:
            raise s._fail("affine layer not in CONV_MODE")
        return Layer("affine", params)
    if name in ("max_pool_2", "avg_pool_2"):
        kh, kw, sy, sx, py, px = (s.int() for _ in range(6))
        kind = name[:-2] if (kh, kw) != (0, 0) else "avg_pool_everything"
        return Layer(kind, None, {"kernel": (kh, kw), "stride": (sy, sx), "padding": (py, px)})
    if name in ("relu_", "add_prev_"):
        return Layer(name[:-1])
    if name == "fc_2":
        outputs, inputs = s.int(), s.int()
        params = s.tensor()
        s.alias(), s.alias()
        if s.int() != 1:  # FC_NO_BIAS
            raise s._fail("fc layer with a bias")
        [s.float() for _ in range(4)]
        return Layer("fc", params, {"inputs": inputs, "outputs": outputs})
    raise s._fail(f"unexpected layer {name!r}")


def _trailer(s: _Stream, over_input: bool) -> None:
    """add_layer's own state after the layer (setup flags, cached tensors), not needed to run."""
    for _ in range(3):
        s.bool()
    for _ in range(3):
        s.tensor()
    if over_input:
        s.int()  # sample expansion factor


def _check(layer: Layer, expected: tuple, s: _Stream) -> None:
    kind = expected[0]
    if layer.kind != kind:
        raise s._fail(f"layer {layer.kind} where the architecture has {kind}")
    if kind == "con":
        stride = expected[2]
        want = {"filters": expected[1], "stride": (stride, stride), "padding": (0, 0) if stride > 1 else (1, 1)}
        if any(layer.shape[k] != v for k, v in want.items()):
            raise s._fail(f"convolution {layer.shape} where the architecture has {want}")
    if kind == "fc" and layer.shape["outputs"] != expected[1]:
        raise s._fail("descriptor size")


def read_dlib_resnet(path: str | os.PathLike) -> DlibNet:
    """The network stored in `path`, checked against dlib's face-recognition architecture."""
    s = _Stream(open(path, "rb").read(), str(path))
    if s.int() != 1 or s.string() != "loss_metric_2":
        raise s._fail("no metric-loss network")
    s.float(), s.float()  # margin and distance threshold of the training loss
    wrappers = []
    while (version := s.int()) != 3:
        wrappers.append(version)
    expected = [1 if a[0] in _WRAPPERS else 2 for a in ARCHITECTURE[1:]]
    if wrappers != expected[::-1]:
        raise s._fail("layer structure differs from dlib_face_recognition_resnet_model_v1")
    if s.string() != "input_rgb_image_sized":
        raise s._fail("no RGB input layer")
    mean = (s.float(), s.float(), s.float())
    rows, cols = s.int(), s.int()
    layers = []
    for i, arch in enumerate(ARCHITECTURE):
        if arch[0] in _WRAPPERS:
            layers.append(Layer(arch[0]))
            continue
        layer = _details(s)
        _trailer(s, over_input=i == 0)
        _check(layer, arch, s)
        if arch[0] == "add_prev":
            layer.shape["other"] = arch[1]
        layers.append(layer)
    if s.pos != len(s.data) or rows != cols:
        raise s._fail("trailing data")
    return DlibNet(mean, rows, layers)
