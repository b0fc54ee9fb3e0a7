"""`--precision int8`: the quantized ONNX export keeps fp32's labels and features, is recorded in the
feature file's manifest, and int8 rows are never mixed with fp32 ones.

Calibration here is a handful of real photos (skimage's, not chelsea or coffee, which the checks
look at), quantized once per test session; the benchmark measures agreement on hundreds of photos
(benchmarks/int8_bench.py).
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from visionzoo.cli import app
from visionzoo.data import eval_array_transform, load_rgb
from visionzoo.data.calibration import calibration_set
from visionzoo.errors import UsageError
from visionzoo.store import read_manifest
from visionzoo.tasks.embed import feature_runner

runner = CliRunner()
# One worker runs this module: the int8 files take minutes to make (weights refitted layer by layer),
# and each xdist worker would otherwise make its own.
pytestmark = pytest.mark.xdist_group("int8")


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory):
    """Four real photos to calibrate on (each seen whole, mirrored and as two crops)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("calibration")
    for name in ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.jpg", quality=92)
    return folder


@pytest.fixture(scope="session")
def inputs(photo_dir, lite0):
    transform = eval_array_transform(lite0.zoo_spec.preprocessing)
    files = sorted(photo_dir.glob("*.jpg"))
    return [f.stem for f in files], np.stack([transform(load_rgb(str(f), 256)) for f in files])


@pytest.fixture(scope="session")
def int8_runners(lite0, calib_dir):
    """(logits, pre_logits) runners of the int8 export; the first call quantizes and caches both."""
    cal = calibration_set(calib_dir)
    return tuple(feature_runner(lite0, layer, device="cpu", precision="int8", calibration=cal)[0]
                 for layer in ("logits", "pre_logits"))


def _cosine(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_int8_keeps_the_labels_and_features_of_fp32(lite0, inputs, int8_runners):
    names, x = inputs
    logits8, feats8 = int8_runners
    logits32 = feature_runner(lite0, "logits", backend="onnx", device="cpu")[0](x)
    feats32 = feature_runner(lite0, backend="onnx", device="cpu")[0](x)
    got, want = logits8(x), logits32
    coffee, chelsea = names.index("coffee"), names.index("chelsea")
    assert got[coffee].argmax() == want[coffee].argmax() == 967  # espresso
    # chelsea is a near tie in fp32 (tiger cat 37.1 %, Egyptian cat 37.0 %): the same two labels on top
    assert set(np.argsort(-got[chelsea])[:2]) == set(np.argsort(-want[chelsea])[:2]) == {282, 285}
    cos = _cosine(feats8(x), feats32)
    assert cos.min() >= 0.98 and np.median(cos) >= 0.99, cos
    assert feats8(x).dtype == np.float32 and feats8(x).shape == feats32.shape


def test_the_int8_graph_has_its_padding_folded_and_a_free_batch(lite0, inputs, int8_runners, tmp_path, monkeypatch):
    """The cause of the first recipe's 0.48 top-1 was "same" padding computed from the input shape at
    run time and quantized with the pixels; the export now pads by constants, a graph that still pads at
    run time has that arithmetic found (`shape_nodes`, kept fp32), no Shape, Pad or fp32 island is left in
    the int8 graph, and the batch stays free."""
    import contextlib

    import onnx

    from visionzoo.runtime import onnx_backend
    from visionzoo.runtime.quantize import shape_nodes
    from visionzoo.tasks.embed import feature_fn

    fp32 = onnx.load(str(feature_runner(lite0, backend="onnx", device="cpu")[0].path))
    assert not {"Shape", "Pad"} & {n.op_type for n in fp32.graph.node}  # constant pads (tests/test_onnx.py)
    monkeypatch.setattr(onnx_backend, "constant_same_padding", lambda *args: contextlib.nullcontext(0))
    runtime = onnx.load(str(onnx_backend.export_onnx(lite0, feature_fn(), (3, 224, 224), tmp_path / "runtime.onnx")))
    assert {"Shape", "Pad"} <= {n.op_type for n in runtime.graph.node}
    arithmetic = set(shape_nodes(runtime))
    assert arithmetic and not any(n.op_type in ("Conv", "Pad") and n.name in arithmetic for n in runtime.graph.node)

    model = onnx.load(str(int8_runners[1].path))
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"Shape", "Pad", "Ceil"} and "QuantizeLinear" in ops, ops
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    _, x = inputs
    assert int8_runners[1](x[:1]).shape == (1, 1280) and int8_runners[1](x[:3]).shape == (3, 1280)


def test_calibration_batches_of_any_size_and_the_recipe_in_the_cache_keys(tmp_path, monkeypatch):
    """A last calibration batch smaller than the others (a folder of 35 photos) used to fail in ONNX
    Runtime's histogram calibrator; a changed recipe must not find the old quantized file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from visionzoo.runtime import compiled, quantize

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
         helper.make_node("Relu", ["c"], ["features"], name="relu")], "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4, 8, 8])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "tiny.onnx")
    batches = [rng.normal(size=(n, 3, 8, 8)).astype(np.float32) for n in (8, 3)]
    out = quantize.quantize_int8(tmp_path / "tiny.onnx", tmp_path / "tiny8.onnx", batches)
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(out)).graph.node}

    key = compiled.request_key("efficientnet_lite0", "pre_logits", None, False, calibration="abc")
    monkeypatch.setattr(compiled, "RECIPE", quantize.RECIPE + 1)
    assert compiled.request_key("efficientnet_lite0", "pre_logits", None, False, calibration="abc") != key


def test_extract_records_precision_and_calibration(photo_dir, calib_dir, int8_runners, tmp_path):
    res = runner.invoke(app, ["extract", str(photo_dir), "--out", str(tmp_path / "f8.parquet"), "--precision", "int8",
                              "--calibration", str(calib_dir), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "onnx int8" in res.output
    m8 = read_manifest(tmp_path / "f8.parquet")
    assert m8["precision"] == "int8" and m8["backend"] == "onnx"
    assert m8["calibration"] == calibration_set(calib_dir).record()
    assert m8["calibration"]["source"] == str(calib_dir.resolve()) and m8["calibration"]["images"] == 4

    res = runner.invoke(app, ["extract", str(photo_dir), "--out", str(tmp_path / "f32.parquet"), "--quiet"])
    assert res.exit_code == 0, res.output
    m32 = read_manifest(tmp_path / "f32.parquet")
    assert m32["precision"] == "fp32" and m32["calibration"] is None

    # int8 rows never join fp32 ones: resuming the fp32 file at int8 is refused
    res = runner.invoke(app, ["extract", str(photo_dir), "--out", str(tmp_path / "f32.parquet"), "--precision", "int8",
                              "--calibration", str(calib_dir), "--resume", "--quiet"])
    assert res.exit_code == 2 and "holds fp32 features" in res.output and "Traceback" not in res.output, res.output


def test_search_embeds_queries_at_the_precision_of_the_rows(photo_dir, calib_dir, int8_runners, tmp_path):
    """A copy of a stored photo finds it with cosine ~1 only if the query is embedded at int8 too
    (fp32 vs int8 of one photo is ~0.99)."""
    from visionzoo.downstream import search

    out = tmp_path / "f8.parquet"
    res = runner.invoke(app, ["extract", str(photo_dir), "--out", str(out), "--precision", "int8",
                              "--calibration", str(calib_dir), "--quiet"])
    assert res.exit_code == 0, res.output
    shutil.copy(photo_dir / "coffee.jpg", tmp_path / "query.jpg")
    found = search(str(out), [str(tmp_path / "query.jpg")], k=1)
    assert found[0].neighbours[0].path.endswith("coffee.jpg") and found[0].neighbours[0].score >= 0.9999


def test_serving_an_int8_index_at_fp32_is_refused(photo_dir, calib_dir, int8_runners, tmp_path):
    from visionzoo.serve import ServeConfig
    from visionzoo.serve.models import load_served

    out = tmp_path / "f8.parquet"
    res = runner.invoke(app, ["extract", str(photo_dir), "--out", str(out), "--precision", "int8",
                              "--calibration", str(calib_dir), "--quiet"])
    assert res.exit_code == 0, res.output
    with pytest.raises(UsageError, match="holds int8 features .* serve with --precision int8"):
        load_served(ServeConfig(models=["efficientnet_lite0"], index=str(out)))
    served = load_served(ServeConfig(models=["efficientnet_lite0"], index=str(out), precision="int8",
                                     calibration=str(calib_dir), threads=1))
    try:
        clf = served.get("classify")
        assert clf.info()["precision"] == "int8" and served.index.classifier is clf
        x = np.stack([clf.prepare((photo_dir / "coffee.jpg").read_bytes(), "coffee.jpg")])
        stored = served.index.index.vector(served.index.index.row_of(str(photo_dir / "coffee.jpg")))
        assert _cosine(clf.features(x), stored[None])[0] >= 0.9999  # the served embedding is the stored row
    finally:
        served.close()


def test_classify_int8_cli(photo_dir, calib_dir, int8_runners, tmp_path):
    res = runner.invoke(app, ["classify", str(photo_dir / "coffee.jpg"), "--precision", "int8", "--calibration",
                              str(calib_dir), "--top-k", "1", "--out", str(tmp_path / "labels.json"), "--quiet"])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "labels.json").read_text())
    assert rows[0]["predictions"][0]["label"] == "espresso"


@pytest.mark.parametrize("args,message", [
    (["classify", "{photo}", "--precision", "int4"], "unknown precision 'int4'"),
    (["extract", "{photo}", "--out", "{tmp}/f.parquet", "--precision", "int8", "--backend", "torch"],
     "runs on ONNX Runtime"),
    (["extract", "{photo}", "--out", "{tmp}/f.parquet", "--precision", "int8", "--calibration", "{tmp}/none"],
     "--calibration"),
])
def test_precision_usage_errors(photo_dir, tmp_path, args, message):
    (tmp_path / "none").mkdir()
    res = runner.invoke(app, [a.format(photo=photo_dir / "coffee.jpg", tmp=tmp_path) for a in args])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output


def test_a_repeat_int8_run_starts_without_torch(photo_dir, calib_dir, int8_runners, tmp_path):
    """The export index remembers int8 requests (keyed by the calibration digest) like fp32 ones."""
    import os
    import subprocess
    import sys

    args = dict(precision="int8", calibration=str(calib_dir))
    runner.invoke(app, ["extract", str(photo_dir), "--out", str(tmp_path / "first.parquet"), "--precision", "int8",
                        "--calibration", str(calib_dir), "--quiet"])
    code = (f"import sys; from visionzoo.batch import extract; "
            f"r = extract({str(photo_dir)!r}, {str(tmp_path / 'again.parquet')!r}, **{args!r}); "
            f"print(r.backends, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
                          check=True)
    assert done.stdout.split()[-1] == "False" and "int8" in done.stdout, done.stdout + done.stderr
    again, first = read_manifest(tmp_path / "again.parquet"), read_manifest(tmp_path / "first.parquet")
    assert again["calibration"] == first["calibration"] and again["precision"] == "int8"


def _conv_io(model, names, x):
    """Inputs of the named convolutions of the ONNX `model` on the batch `x`, by running it."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    nodes = {n.name: n for n in probe.graph.node}
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(nodes[n].input[0], onnx.TensorProto.FLOAT, None)
                              for n in names)
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x})))


def test_weight_rounding_cuts_a_real_layers_output_error_on_unseen_photos(lite0, inputs, calib_dir, tmp_path):
    """The corrected rounding of two of lite0's layers (a depthwise 3x3 and a 1x1 projection), chosen on
    calibration photos, must give outputs closer to fp32's on *other* photos than round-to-nearest
    does, and lie exactly on the grid ONNX Runtime's quantizer computes for them (else it would
    round them again)."""
    import onnx
    import torch
    from onnx import numpy_helper
    from onnxruntime.quantization.quant_utils import compute_scale_zp

    from visionzoo.runtime.quantize import prepare_graph
    from visionzoo.runtime.weight_rounding import nearest, round_graph

    _, x = inputs
    path = feature_runner(lite0, backend="onnx", device="cpu")[0].path
    prepare_graph(path, tmp_path / "folded.onnx", np.ascontiguousarray(x[:2]))
    model = onnx.load(str(tmp_path / "folded.onnx"))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    group = {n.name: next((a.i for a in n.attribute if a.name == "group"), 1) for n in convs}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    depthwise = next(n for n in convs[8:] if group[n.name] > 1)
    pointwise = next(n for n in convs[8:] if inits[n.input[1]].shape[2:] == (1, 1) and inits[n.input[1]].shape[1] >= 40)
    chosen = [depthwise, pointwise]
    transform = eval_array_transform(lite0.zoo_spec.preprocessing)
    calib = np.stack([transform(load_rgb(str(f), 256)) for f in sorted(calib_dir.glob("*.jpg"))])
    corrected = onnx.ModelProto()
    corrected.CopyFrom(model)
    gains = round_graph(corrected, [calib], skip={n.name for n in convs} - {n.name for n in chosen})
    assert set(gains) == {n.name for n in chosen} and all(g < 1 for g in gains.values()), gains
    new = {t.name: numpy_helper.to_array(t) for t in corrected.graph.initializer}

    seen = _conv_io(model, [n.name for n in chosen], x)  # the test photos: none of them calibrated on
    for node in chosen:
        w, b, w2, b2 = inits[node.input[1]], inits[node.input[2]], new[node.input[1]], new[node.input[2]]
        # ONNX Runtime's per-channel symmetric int8 grid for the new weights is the old one, and holds them exactly
        qmin, qmax = np.array(-127, np.int8), np.array(127, np.int8)
        for c in range(len(w)):
            zero, scale = compute_scale_zp(w2[c].min(), w2[c].max(), qmin, qmax, symmetric=True)
            assert zero == 0 and scale == compute_scale_zp(w[c].min(), w[c].max(), qmin, qmax, symmetric=True)[1]
            np.testing.assert_allclose(w2[c] / scale, np.round(w2[c] / scale), rtol=0, atol=1e-3)
        attrs = {a.name: list(a.ints) for a in node.attribute if a.ints}
        pads = attrs.get("pads", [0, 0, 0, 0])
        inp = torch.nn.functional.pad(torch.from_numpy(np.array(seen[node.name])), (pads[1], pads[3], pads[0], pads[2]))

        outs = [torch.nn.functional.conv2d(inp, torch.from_numpy(weight), torch.from_numpy(bias),
                                           stride=attrs.get("strides", [1, 1]), groups=group[node.name])
                for weight, bias in ((w, b), (nearest(w), b), (w2, b2))]
        plain, better = ((o - outs[0]).pow(2).mean().item() for o in outs[1:])
        assert better < 0.7 * plain, (node.name, plain, better)


def test_refitted_rounding_beats_rounding_to_nearest_on_unseen_photos(lite0, inputs, int8_runners, tmp_path):
    """The int8 file's convolutions, refitted layer by layer on the quantized model's own inputs
    (`refit_qdq`), must give features closer to fp32's on photos calibration never saw than the same
    QDQ graph with every weight and bias rounded to its nearest step (what the quantizer does by
    itself), and their int8 values must stay on the grid."""
    import onnx
    from onnx import numpy_helper

    from visionzoo.runtime.onnx_session import OnnxRunner
    from visionzoo.runtime.quantize import prepare_graph
    from visionzoo.runtime.weight_rounding import QMAX, quantized_convs

    _, x = inputs
    fp32_path = feature_runner(lite0, backend="onnx", device="cpu")[0].path
    prepare_graph(fp32_path, tmp_path / "folded.onnx", np.ascontiguousarray(x[:2]))
    qdq = onnx.load(str(int8_runners[1].path))
    convs = quantized_convs(qdq, onnx.load(str(tmp_path / "folded.onnx")))
    assert len(convs) >= 30, len(convs)  # every int8 convolution of lite0 past block 1
    inits = {t.name: t for t in qdq.graph.initializer}
    changed = 0
    for c in convs:
        w_scale = numpy_helper.to_array(inits[c.weight_scale]).reshape(-1, 1, 1, 1)
        refitted = numpy_helper.to_array(inits[c.weight_q])
        assert refitted.dtype == np.int8 and np.abs(refitted.astype(int)).max() <= QMAX
        nearest = np.clip(np.round(c.weight / w_scale), -QMAX, QMAX).astype(np.int8)
        changed += int((nearest != refitted).sum())
        inits[c.weight_q].CopyFrom(numpy_helper.from_array(nearest, c.weight_q))
        bias = np.round(c.bias / numpy_helper.to_array(inits[c.bias_scale])).astype(np.int32)
        inits[c.bias_q].CopyFrom(numpy_helper.from_array(bias, c.bias_q))
    assert changed > 0
    onnx.save(qdq, str(tmp_path / "nearest.onnx"))

    want = feature_runner(lite0, backend="onnx", device="cpu")[0](x)
    errors = [float(((runner(x) - want) ** 2).mean()) for runner in (int8_runners[1], OnnxRunner(tmp_path / "nearest.onnx", 1))]
    assert errors[0] < 0.7 * errors[1], errors
