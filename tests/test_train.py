"""Training on real data (skimage lfw_subset faces vs non-faces): linear, finetune, scratch, resume, CV."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from interrupt import cli_args, history, kill_after_first_epoch

import visionzoo
from visionzoo.training.freezing import backbone_blocks, freeze_batchnorm_stats, set_trainable

# The finetune arguments shared by the uninterrupted run and the killed-and-resumed one.
# lfw crops are 25x25 pixels, so 64-pixel inputs lose nothing; freezing 5 of the 8 blocks keeps
# the test's CPU time small (the default, 2, suits users' photos).
FINETUNE = dict(strategy="finetune", epochs=3, head_epochs=1, image_size=64, freeze=5, patience=10, workers=0)

# Tests sharing a trained run stay on one xdist worker, so each run is trained once (make test: --dist loadgroup).
LINEAR = pytest.mark.xdist_group("train-linear")
FINETUNED = pytest.mark.xdist_group("train-finetune")


_cli_args, _history = cli_args, history  # the names these tests grew up with


@pytest.fixture(scope="module")
def linear_run(lfw_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("linear") / "run"
    result = visionzoo.train(lfw_dir, run, strategy="linear", image_size=96, log=None)
    return run, result


@pytest.fixture(scope="module")
def finetune_run(lfw_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("finetune") / "run"
    result = visionzoo.train(lfw_dir, run, log=None, **FINETUNE)
    return run, result


@LINEAR
def test_linear_reaches_95_and_saves_a_complete_run(linear_run):
    run, result = linear_run
    report = json.loads((run / "report.json").read_text())
    assert report["accuracy"] >= 0.95 and report["n_images"] == 40 and report["split"] == "val"
    assert set(report["per_class"]) == {"face", "nonface"} and report["confusion_matrix"][0][0] >= 19
    for name in ("model.safetensors", "config.json", "history.csv", "curves.png", "report.md",
                 "confusion_matrix.png", "misclassified.png", "roc_pr.png"):
        assert (run / name).stat().st_size > 0, name
    assert not (run / "checkpoint.pt").exists() and not (run / "best.safetensors").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["labels"] == ["face", "nonface"] and config["architecture"] == "tf_efficientnet_lite0.in1k"
    assert config["training"]["strategy"] == "linear" and config["preprocessing"]["input_size"] == [3, 96, 96]
    assert config["metrics"]["val"]["accuracy"] == report["accuracy"] and "torch" in config["versions"]
    assert config["dataset"]["train"] == {"face": 80, "nonface": 80}
    rows = _history(run)
    assert len(rows) == config["epochs_run"] and {r["phase"] for r in rows} == {"linear"}
    assert 1 <= config["best_epoch"] <= len(rows)


@LINEAR
def test_linear_keeps_the_pretrained_backbone(linear_run, lite0):
    """Only the head changed: the run's pre-logits features equal the offline model's."""
    run, _ = linear_run
    model = visionzoo.load_model(run)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(model.forward_features(x), lite0.forward_features(x), atol=1e-5)
    assert model.get_classifier().out_features == 2


@LINEAR
def test_run_folder_works_as_a_model_name(linear_run, lfw_dir):
    run, _ = linear_run
    from visionzoo.tasks.embed import embed_images

    faces = sorted(str(p) for p in (lfw_dir / "face").glob("*.png"))[-3:]
    results = visionzoo.classify(faces, model=str(run), top_k=2)
    assert all(r.predictions[0].label in ("face", "nonface") and len(r.predictions) == 2 for r in results)
    assert embed_images(faces, model=str(run)).matrix.shape == (3, 1280)


@LINEAR
def test_saved_run_predicts_the_same_in_a_new_process(linear_run, tmp_path):
    """What the report recorded at the end of training = what `visionzoo predict` says later."""
    run, _ = linear_run
    report = json.loads((run / "report.json").read_text())
    expected = {r["path"]: r for r in report["predictions"]}
    out = tmp_path / "pred.json"
    proc = subprocess.run([sys.executable, "-m", "visionzoo", "predict", str(run), *expected, "--top-k", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    assert len(got) == len(expected)
    for r in got:
        top = r["predictions"][0]
        assert top["label"] == expected[r["path"]]["predicted"]
        assert abs(top["probability"] - expected[r["path"]]["probability"]) < 1e-5


@pytest.mark.slow
@FINETUNED
def test_finetune_reaches_95_with_two_phases(finetune_run):
    run, result = finetune_run
    assert result["report"]["accuracy"] >= 0.95
    rows = _history(run)
    assert [r["phase"] for r in rows] == ["head", "finetune", "finetune"]
    assert result["config"]["epochs_run"] == 3
    # the backbone changed in phase 2 (unlike linear), the first blocks stayed as pretrained
    model = visionzoo.load_model(run)
    base = visionzoo.load_model("efficientnet_lite0")
    assert torch.equal(model.conv_stem.weight, base.conv_stem.weight)
    assert not torch.equal(model.blocks[5][0].conv_pw.weight, base.blocks[5][0].conv_pw.weight)


@pytest.mark.slow
@FINETUNED
def test_killed_run_resumes_to_the_same_number_of_epochs(finetune_run, lfw_dir, tmp_path):
    run = tmp_path / "run"
    assert kill_after_first_epoch(["train", str(lfw_dir), *_cli_args(FINETUNE)], run) == 1
    assert not (run / "config.json").exists()

    result = visionzoo.train(lfw_dir, run, resume=True, log=None)
    reference, _ = finetune_run
    assert [r["epoch"] for r in _history(run)] == [r["epoch"] for r in _history(reference)] == ["1", "2", "3"]
    assert result["config"]["epochs_run"] == 3 and result["report"]["accuracy"] >= 0.95
    again = visionzoo.train(lfw_dir, run, resume=True, log=None)  # a finished run has nothing left to do
    assert again["config"]["epochs_run"] == 3


def test_scratch_resnet50_on_tiny_images_predicts(lfw_sample, tmp_path):
    data, run = tmp_path / "data", tmp_path / "r50"
    lfw_sample(data, 24)
    result = visionzoo.train(data, run, model="resnet50", strategy="scratch", epochs=1, image_size=32, batch_size=16,
                             log=None)
    assert result["config"]["epochs_run"] == 1 and result["config"]["architecture"].startswith("resnet50")
    assert json.loads((run / "config.json").read_text())["spec"]["weights"] is None
    model = visionzoo.load_model(run)
    assert sum(len(stage) for stage in (model.layer1, model.layer2, model.layer3, model.layer4)) == 16  # 3-4-6-3
    results = visionzoo.predict(run, data / "nonface", top_k=2)
    assert len(results) == 24
    for r in results:
        assert r.error is None and {p.label for p in r.predictions} == {"face", "nonface"}
        assert abs(sum(p.probability for p in r.predictions) - 1) < 1e-4


def test_cross_validation_reports_mean_and_std(lfw_sample, tmp_path):
    data = tmp_path / "data"
    lfw_sample(data, 30)
    result = visionzoo.train(data, tmp_path / "cv", strategy="linear", cv=3, image_size=64, epochs=20, log=None)
    cv = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert cv == json.loads(json.dumps(result["cv"]))
    assert cv["k"] == 3 and len(cv["folds"]) == 3 and sum(f["n_images"] for f in cv["folds"]) == 60
    assert 0.8 <= cv["accuracy"]["mean"] <= 1 and cv["accuracy"]["std"] >= 0
    assert all((tmp_path / "cv" / f"fold_{i}" / "model.safetensors").exists() for i in (1, 2, 3))


@LINEAR
def test_existing_run_is_not_overwritten(linear_run, lfw_dir):
    run, _ = linear_run
    with pytest.raises(visionzoo.errors.UsageError, match="already holds a run"):
        visionzoo.train(lfw_dir, run, strategy="linear", log=None)


def test_corrupt_training_files_are_skipped_and_listed(lfw_dir, lfw_sample, tmp_path, monkeypatch, capsys):
    from visionzoo.cli import main

    data = tmp_path / "data"
    lfw_sample(data, 12)
    (data / "face" / "truncated.png").write_bytes((lfw_dir / "face" / "000.png").read_bytes()[:300])
    (data / "nonface" / "empty.jpg").write_bytes(b"")
    monkeypatch.setattr(sys, "argv", ["visionzoo", "train", str(data), "--out", str(tmp_path / "run"),
                                      "--strategy", "linear", "--epochs", "3", "--image-size", "64", "--val-split", "0.25"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    failed = {Path(f["path"]).name for f in config["dataset"]["failures"]}
    assert failed == {"truncated.png", "empty.jpg"}
    err = capsys.readouterr().err
    assert "truncated.png" in err and "empty.jpg" in err


def test_blocks_freezing_and_batchnorm(lite0):
    import copy

    model = copy.deepcopy(lite0)
    blocks = backbone_blocks(model)
    assert len(blocks) == 8 and blocks[0][0] is model.conv_stem.weight  # stem, 7 stages, head conv
    trainable = set_trainable(model, head=True, frozen_blocks=2)
    assert not any(p.requires_grad for b in blocks[:2] for p in b) and all(p.requires_grad for p in trainable)
    assert sum(len(b) for b in blocks[2:]) == len(trainable)
    assert model.get_classifier().weight.requires_grad
    model.train()
    freeze_batchnorm_stats(model)
    assert not model.bn1.training and model.blocks[3].training

    tv = visionzoo.load_model("torchvision:resnet18", pretrained=False, num_classes=3)
    tv_blocks = backbone_blocks(tv)
    assert tv_blocks[-1][0] is tv.net.layer4[0].conv1.weight
    assert all(p is not tv.classifier.weight for b in tv_blocks for p in b)


def test_unbalanced_two_classes_get_a_threshold_that_the_saved_run_decides_by(lfw_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    for cls, n in (("face", 70), ("nonface", 25)):                 # 2.8 faces per non-face
        (data / cls).mkdir(parents=True)
        for f in sorted((lfw_dir / cls).glob("*.png"))[:n]:
            shutil.copy(f, data / cls / f.name)
    result = visionzoo.train(data, tmp_path / "run", strategy="linear", image_size=32, epochs=3, val_split=0.3,
                             log=None)
    point, val = result["config"]["operating_point"], result["config"]["metrics"]["val"]
    assert point["positive"] == "nonface" and point["macro_f1"] > point["macro_f1_at_half"], point
    # The threshold lives in the saved head: the reloaded run, deciding by argmax, scores what the threshold did.
    assert val["macro_f1"] == pytest.approx(point["macro_f1"], abs=1e-6), (val, point)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    again = {r.path: r.predictions[0].label for r in visionzoo.classify([p["path"] for p in report["predictions"]],
                                                                        tmp_path / "run")}
    assert again == {p["path"]: p["predicted"] for p in report["predictions"]}
