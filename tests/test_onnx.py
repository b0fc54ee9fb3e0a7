"""ONNX Runtime backend: same features as PyTorch per image, export cached once, `visionzoo export`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from visionzoo.data import eval_transform, load_rgb
from visionzoo.errors import UsageError
from visionzoo.tasks.embed import feature_runner


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    """A fresh export cache, so these tests really export."""
    mp = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("onnx_cache")
    mp.setenv("VISIONZOO_ONNX_CACHE", str(folder))
    yield folder
    mp.undo()


@pytest.fixture(scope="module")
def photos(photo_dir, lite0):
    transform = eval_transform(lite0.zoo_spec.preprocessing)
    batch = torch.stack([transform(load_rgb(str(p), 224)) for p in sorted(photo_dir.glob("*.jpg"))])
    return torch.cat([batch, torch.randn(3, 3, 224, 224)])  # real photos (incl. grayscale) and noise


def _cosine(a, b) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(torch.as_tensor(a), torch.as_tensor(b), dim=1)


@pytest.mark.parametrize("layer,pool,normalize", [("pre_logits", None, False), ("blocks.4", "gem", True)])
def test_onnx_features_match_pytorch_per_image(lite0, photos, onnx_cache, layer, pool, normalize):
    ort_runner, used = feature_runner(lite0, layer, pool, normalize, backend="onnx", device="cpu")
    torch_runner, _ = feature_runner(lite0, layer, pool, normalize, backend="torch", device="cpu")
    assert used == "onnx"
    got, expected = ort_runner(photos), torch_runner(photos)
    assert got.shape == expected.shape and got.dtype == expected.dtype == np.float32
    assert _cosine(got, expected).min().item() >= 0.9999
    # Batch size is dynamic: one image alone gives the same row.
    assert _cosine(ort_runner(photos[2:3]), expected[2:3]).item() >= 0.9999


def test_export_is_cached_once_per_model_weights_and_layer(lite0, onnx_cache):
    feature_runner(lite0, backend="onnx", device="cpu")
    files = sorted(onnx_cache.glob("*.onnx"))
    stamps = [f.stat().st_mtime_ns for f in files]
    feature_runner(lite0, backend="onnx", device="cpu")  # a second run reuses the file
    assert sorted(onnx_cache.glob("*.onnx")) == files and [f.stat().st_mtime_ns for f in files] == stamps
    feature_runner(lite0, "logits", backend="onnx", device="cpu")  # another layer is another file
    assert len(list(onnx_cache.glob("*.onnx"))) == len(files) + 1
    assert not list(onnx_cache.glob(".*tmp"))


def test_export_command_writes_a_self_describing_model(lite0, photos, tmp_path):
    import onnx
    import onnxruntime as ort
    from typer.testing import CliRunner

    from visionzoo import export
    from visionzoo.cli import app

    out = tmp_path / "lite0.onnx"
    result = CliRunner().invoke(app, ["export", "efficientnet_lite0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["visionzoo"])
    assert meta["layer"] == "logits" and meta["spec"]["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    logits = ort.InferenceSession(str(out)).run(None, {"images": photos.numpy()})[0]
    with torch.inference_mode():
        expected = lite0(photos)
    assert np.array_equal(logits.argmax(1), expected.argmax(1).numpy())
    assert _cosine(torch.from_numpy(logits), expected).min().item() >= 0.9999
    with pytest.raises(UsageError, match="already exists"):
        export("efficientnet_lite0", out)
    with pytest.raises(UsageError, match="format"):
        export("efficientnet_lite0", tmp_path / "x.tflite", format="tflite")


@pytest.mark.parametrize("side", [240, 225])   # 240 reaches an odd 15 x 15 at the last stride 2; 225 is odd at once
def test_tf_same_padding_is_exported_as_constants_for_the_input_size(lite0, tmp_path, monkeypatch, side):
    """The TF-ported weights' run-time "same" padding becomes constant Conv pads sized for the export's
    input (no Shape arithmetic, no Pad in the graph), and the graph answers as the run-time padded one."""
    import contextlib

    import onnx
    import onnxruntime as ort

    from visionzoo.runtime import onnx_backend
    from visionzoo.tasks.embed import feature_fn

    size = (3, side, side)
    constant = onnx_backend.export_onnx(lite0, feature_fn(), size, tmp_path / "constant.onnx")
    monkeypatch.setattr(onnx_backend, "constant_same_padding", lambda *args: contextlib.nullcontext(0))
    runtime = onnx_backend.export_onnx(lite0, feature_fn(), size, tmp_path / "runtime.onnx")
    ops = lambda path: {n.op_type for n in onnx.load(str(path)).graph.node}  # noqa: E731
    assert {"Pad", "Shape"} <= ops(runtime) and not {"Pad", "Shape"} & ops(constant)
    x = np.random.default_rng(0).standard_normal((2, *size), dtype=np.float32)
    a, b = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
            for p in (constant, runtime))
    assert np.allclose(a, b, atol=1e-5 * float(np.abs(b).max()))


def test_presolved_graph_is_reused_and_one_that_does_not_load_falls_back_to_the_export(tmp_path, monkeypatch):
    """ONNX Runtime's saved optimized graph is made once and used after; where it does not load again (as
    ONNX Runtime writes a Mask R-CNN's Loop), the export itself is used and the attempt is not repeated."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from visionzoo.runtime.onnx_session import presolved

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    for path in (good, bad):
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    made = presolved(good)
    assert made != good and made.is_file() and presolved(good) == made
    real = ort.InferenceSession
    loads = []

    def session(path, *args, **kwargs):   # the saved optimized graph of "bad" is invalid
        loads.append(str(path))
        if "bad.ort-" in str(path):
            raise RuntimeError("INVALID_GRAPH")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", session)
    assert presolved(bad) == bad and not list(tmp_path.glob("bad.ort-*.onnx")) and not list(tmp_path.glob(".*tmp*"))
    tries = len(loads)
    assert presolved(bad) == bad and len(loads) == tries    # the marker: not tried again


def test_presolved_graph_is_laid_out_for_this_cpu_and_answers_as_the_export(tmp_path):
    """Where the CPU is known, the saved graph is ONNX Runtime's fully optimized one (the convolutions in the
    blocked layout of this CPU's vector width), named by the CPU, and answers exactly as the export does."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from visionzoo.runtime.onnx_session import _cpu_key, presolved, session

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape, dtype=np.float32), name) for name, shape in
               (("w1", (16, 3, 3, 3)), ("w2", (16, 16, 3, 3)))]
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                               helper.make_node("Relu", ["a"], ["b"]),
                               helper.make_node("Conv", ["b", "w2"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], weights)
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    made = presolved(path)
    assert made.name == f"conv.ort-{ort.__version__}{f'-{_cpu_key()}' if _cpu_key() else ''}.onnx"
    x = rng.standard_normal((1, 3, 40, 56), dtype=np.float32)
    want, got = (session(p, threads=1).run(None, {"x": x})[0] for p in (path, made))
    assert np.array_equal(want, got)
    if _cpu_key():   # laid out already: the blocked-layout operators are in the saved graph
        assert any(n.domain == "com.microsoft.nchwc" for n in onnx.load(str(made)).graph.node)
