"""dlib's face-recognition ResNet as an ONNX graph, run by ONNX Runtime: the same 128-d
descriptors as dlib (cosine >= 0.9999 on every face of the faces data set; tests/test_faces_index.py)
at ~10 ms a face on one core instead of dlib's ~130 ms.

The graph is built from the weights in dlib's own model file (dlib_format.py), once per weights
file, and cached beside the other ONNX exports. It takes aligned 150 x 150 RGB chips as uint8
(N, 150, 150, 3), exactly what `dlib.get_face_chip` returns, and does dlib's input step itself
((pixel - mean) / 256). dlib's layers map one to one: convolutions with the affine (frozen batch
norm) folded in, ReLU, max/average pooling, and `add_prev`, which in dlib adds tensors of
different sizes by zero-padding the smaller one (channels and the bottom/right edge): a Pad then
an Add here.
"""
from __future__ import annotations

import hashlib
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...atomic import atomic_path
from .dlib_format import DlibNet, read_dlib_resnet

GRAPH_VERSION = 1
INPUT, OUTPUT = "chips", "descriptors"


class _Graph:
    """Builds the node list while tracking each tensor's (channels, height, width)."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, value: np.ndarray) -> str:
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs) -> str:
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(self.helper.make_node(kind, inputs, [out], **attrs))
        return out


def _conv_affine(g: _Graph, x: str, chw: tuple, conv, affine) -> tuple[str, tuple]:
    """A dlib con_ followed by affine_ as one Conv (weights * gamma, bias * gamma + beta)."""
    f, (kh, kw), (sy, sx), (py, px) = (conv.shape[k] for k in ("filters", "kernel", "stride", "padding"))
    cin = chw[0]
    w = conv.params[:f * cin * kh * kw].reshape(f, cin, kh, kw).astype(np.float64)
    b = conv.params[f * cin * kh * kw:].astype(np.float64)
    gamma, beta = affine.params[:f].astype(np.float64), affine.params[f:].astype(np.float64)
    y = g.op("Conv", [x, g.const((w * gamma[:, None, None, None]).astype(np.float32)),
                      g.const((b * gamma + beta).astype(np.float32))],
             kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])
    return y, (f, (chw[1] + 2 * py - kh) // sy + 1, (chw[2] + 2 * px - kw) // sx + 1)


def _pool(g: _Graph, x: str, chw: tuple, layer, kind: str) -> tuple[str, tuple]:
    (kh, kw), (sy, sx), (py, px) = (layer.shape[k] for k in ("kernel", "stride", "padding"))
    y = g.op(kind, [x], kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])
    return y, (chw[0], (chw[1] + 2 * py - kh) // sy + 1, (chw[2] + 2 * px - kw) // sx + 1)


def _add_prev(g: _Graph, a: tuple, b: tuple) -> tuple[str, tuple]:
    """dlib's add_prev: the sum over the larger size, the smaller tensor zero-padded."""
    shape = tuple(max(p, q) for p, q in zip(a[1], b[1]))

    def padded(x: str, chw: tuple) -> str:
        if chw == shape:
            return x
        pads = np.array([0, 0, 0, 0, 0, shape[0] - chw[0], shape[1] - chw[1], shape[2] - chw[2]], np.int64)
        return g.op("Pad", [x, g.const(pads)], mode="constant")

    return g.op("Add", [padded(*a), padded(*b)]), shape


def build_graph(net: DlibNet):
    """The ONNX ModelProto of `net` (uint8 chips in, float32 descriptors out)."""
    from onnx import TensorProto, helper

    g = _Graph()
    x = g.op("Cast", [INPUT], to=TensorProto.FLOAT)
    x = g.op("Transpose", [x], perm=[0, 3, 1, 2])
    mean = np.array(net.mean, np.float32).reshape(1, 3, 1, 1)
    x = g.op("Mul", [g.op("Sub", [x, g.const(mean)]), g.const(np.array(1 / 256, np.float32))])
    cur, tags = (x, (3, net.size, net.size)), {}
    layers, i = net.layers, 0
    while i < len(layers):
        layer = layers[i]
        if layer.kind == "con":
            cur = _conv_affine(g, *cur, layer, layers[i + 1])
            i += 1
        elif layer.kind == "relu":
            cur = (g.op("Relu", [cur[0]]), cur[1])
        elif layer.kind in ("max_pool", "avg_pool"):
            cur = _pool(g, *cur, layer, "MaxPool" if layer.kind == "max_pool" else "AveragePool")
        elif layer.kind == "avg_pool_everything":
            cur = (g.op("GlobalAveragePool", [cur[0]]), (cur[1][0], 1, 1))
        elif layer.kind in ("tag1", "tag2"):
            tags[layer.kind] = cur
        elif layer.kind == "skip1":
            cur = tags["tag1"]
        elif layer.kind == "add_prev":
            cur = _add_prev(g, cur, tags[layer.shape["other"]])
        elif layer.kind == "fc":
            flat = g.op("Flatten", [cur[0]], axis=1)
            w = layer.params.reshape(layer.shape["inputs"], layer.shape["outputs"])
            cur = (g.op("MatMul", [flat, g.const(w)]), (layer.shape["outputs"],))
        else:
            raise ValueError(f"no ONNX mapping for dlib layer {layer.kind}")
        i += 1
    g.nodes.append(helper.make_node("Identity", [cur[0]], [OUTPUT]))
    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(INPUT, TensorProto.UINT8, ["n", net.size, net.size, 3])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["n", cur[1][0]])], g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="visionzoo")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def onnx_file(dat: str | os.PathLike) -> Path:
    """The cached ONNX graph of the dlib model file `dat`, built on first use (~1 s)."""
    from ...runtime.onnx_session import onnx_cache_dir

    path = onnx_cache_dir() / f"dlib_face_recognition_resnet_v{GRAPH_VERSION}-{file_sha256(dat)[:16]}.onnx"
    if not path.is_file():
        import onnx

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            onnx.save(build_graph(read_dlib_resnet(dat)), str(tmp))
    return path


class Embedder:
    """`embedder(chips) -> (N, 128) float32` for uint8 (N, 150, 150, 3) aligned chips. One ONNX
    Runtime session with one thread per call, so each calling thread is its own pipeline."""

    def __init__(self, dat: str | os.PathLike):
        from ...runtime.onnx_session import session

        self.path = onnx_file(dat)
        self.session = session(self.path, threads=1)
        self.size = int(self.session.get_inputs()[0].shape[1])

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        if not len(chips):
            return np.zeros((0, 128), np.float32)
        return self.session.run(None, {INPUT: np.ascontiguousarray(chips, dtype=np.uint8)})[0]


_LOCK = threading.Lock()


@lru_cache(maxsize=None)
def _embedder(dat: str) -> Embedder:
    return Embedder(dat)


def embedder(dat: str | os.PathLike) -> Embedder:
    with _LOCK:  # threads starting together build and load the graph once
        return _embedder(os.fspath(dat))
