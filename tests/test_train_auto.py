"""`train --strategy auto` (the default): backbone and head chosen by k-fold CV on the training images,
flip TTA carried by the saved run, so predict / export give exactly what the report says."""
from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest
import torch

import visionzoo
from visionzoo.errors import UsageError
from visionzoo.tasks.classify.auto import fit_head
from visionzoo.tasks.classify.config import TrainConfig
from visionzoo.zoo.tta import HFlipFeatures, with_tta

TWO = "efficientnet_lite0,efficientnet_lite1"   # two bundled backbones keep the test small
AUTO_RUN = pytest.mark.xdist_group("train-auto")


@pytest.fixture(scope="module")
def auto_run(lfw_sample, tmp_path_factory):
    root = tmp_path_factory.mktemp("auto")
    data = lfw_sample(root / "data", 40)
    result = visionzoo.train(data, root / "run", model=TWO, image_size=64, val_split=0.25, log=None)
    return root / "run", data, result


@pytest.mark.parametrize("classes", [2, 3])
def test_folded_head_equals_the_fitted_pipeline(classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 20)) * rng.uniform(0.1, 5, size=20) + rng.normal(size=20)
    y = np.arange(90) % classes
    x[y == 1, :3] += 1.5
    weight, bias = fit_head(x, y, 0.3, classes + 1)  # the last class has no training image
    from visionzoo.tasks.classify.auto import _head

    expected = _head(0.3).fit(x, y).predict_proba(x)
    probs = torch.softmax(torch.from_numpy(x).float() @ weight.T + bias, dim=1).numpy()
    assert np.abs(probs[:, :classes] - expected).max() < 1e-5 and probs[:, classes].max() < 1e-9


def test_flip_tta_averages_the_image_and_its_mirror():
    plain = visionzoo.load_model("efficientnet_lite0", pretrained=False, num_classes=3)
    tta = with_tta(copy.deepcopy(plain), "hflip")
    assert isinstance(tta, HFlipFeatures) and type(with_tta(tta, "hflip")) is type(tta)
    assert list(tta.state_dict()) == list(plain.state_dict())  # run folders stay plain timm weights
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        pre = lambda m, v: m.forward_head(m.forward_features(v), pre_logits=True)  # noqa: E731
        mean = (pre(plain, x) + pre(plain, x.flip(-1))) / 2
        assert torch.allclose(pre(tta, x), mean, atol=1e-5)
        assert torch.allclose(tta(x), plain.get_classifier()(mean), atol=1e-5)
        assert not torch.allclose(plain(x), tta(x), atol=1e-3)
    with pytest.raises(UsageError, match="unknown test-time augmentation"):
        with_tta(plain, "rot90")


def test_defaults_and_option_checks():
    cfg = TrainConfig()
    assert (cfg.model, cfg.strategy) == ("auto", "auto")
    assert TrainConfig(strategy="finetune").model == "efficientnet_lite0"  # explicit strategies keep their backbone
    with pytest.raises(UsageError, match="already cross-validates"):
        TrainConfig(cv=3)
    with pytest.raises(UsageError, match="need --strategy auto"):
        TrainConfig(model=TWO, strategy="linear")


@AUTO_RUN
def test_auto_picks_by_cv_on_train_only_and_reports_why(auto_run):
    run, _, result = auto_run
    report = json.loads((run / "report.json").read_text())
    config = json.loads((run / "config.json").read_text())
    auto = report["auto"]
    assert auto == config["auto"] == json.loads(json.dumps(result["config"]["auto"]))
    assert {r["model"] for r in auto["candidates"]} == {"efficientnet_lite0", "efficientnet_lite1"}
    assert len(auto["candidates"]) == 12 and auto["k"] == 5 and not auto["skipped"]
    assert all(0 <= r["cv_accuracy_std"] and r["cv_log_loss"] > 0 for r in auto["candidates"])
    chosen = auto["chosen"]
    best = min(r["cv_log_loss"] for r in auto["candidates"])
    row = next(r for r in auto["candidates"] if (r["model"], r["C"]) == (chosen["model"], chosen["C"]))
    assert row["cv_log_loss"] == best and "log-loss" in auto["why"]
    # the CV saw the 60 training images only; the 20 held-out ones are the report's
    assert auto["pool"] == "train" and auto["n_images"] == 60 and report["split"] == "val" and report["n_images"] == 20
    assert config["training"]["strategy"] == "auto" and config["training"]["model"] == chosen["model"]
    assert config["spec"]["tta"] == "hflip" and config["preprocessing"]["input_size"] == [3, 64, 64]
    assert report["accuracy"] >= 0.9
    md = (run / "report.md").read_text()
    assert "How `--strategy auto` chose this model" in md and "**(chosen)**" in md


@AUTO_RUN
def test_saved_run_predicts_and_exports_what_the_report_says(auto_run, tmp_path):
    run, _, _ = auto_run
    report = json.loads((run / "report.json").read_text())
    expected = {r["path"]: r for r in report["predictions"]}
    model = visionzoo.load_model(run)
    assert isinstance(model, HFlipFeatures)  # the TTA travels with the run
    for r in visionzoo.predict(run, sorted(expected), top_k=2):
        top = r.predictions[0]
        assert top.label == expected[r.path]["predicted"]
        assert abs(top.probability - expected[r.path]["probability"]) < 2e-6

    import onnxruntime as ort

    from visionzoo.data import eval_transform, iter_batches

    onnx_file = visionzoo.export(run, tmp_path / "auto.onnx")
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    pre = model.zoo_spec.preprocessing
    paths = sorted(expected)
    batch = next(iter(iter_batches(paths, eval_transform(pre), batch_size=len(paths), workers=0,
                                   target_size=pre.resize_size)))
    probs = torch.softmax(torch.from_numpy(session.run(None, {"images": batch.tensor.numpy()})[0]), 1).numpy()
    labels = model.zoo_spec.labels
    for path, p in zip(paths, probs):
        assert labels[int(p.argmax())] == expected[path]["predicted"]
        assert abs(float(p.max()) - expected[path]["probability"]) < 1e-4


def test_time_budget_skips_backbones_and_says_so(lfw_sample, tmp_path, monkeypatch, capsys):
    from visionzoo.cli import main

    data = lfw_sample(tmp_path / "data", 12)
    monkeypatch.setattr(sys, "argv", ["visionzoo", "train", str(data), "--out", str(tmp_path / "run"), "--model", TWO,
                                      "--image-size", "48", "--time-budget", "0.01", "--quiet"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0
    auto = json.loads((tmp_path / "run" / "config.json").read_text())["auto"]
    assert auto["chosen"]["model"] == "efficientnet_lite0" and {r["model"] for r in auto["candidates"]} == {
        "efficientnet_lite0"}
    assert [s["model"] for s in auto["skipped"]] == ["efficientnet_lite1"]
    assert "time budget" in auto["skipped"][0]["reason"]
    assert "efficientnet_lite1 skipped" in capsys.readouterr().err
