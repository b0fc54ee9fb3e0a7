"""Metrics (scikit-learn) and `evaluate` on a saved run: report.json / report.md / pictures, bad files listed."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

import visionzoo
from visionzoo.errors import UsageError
from visionzoo.eval import classification_metrics

pytestmark = pytest.mark.xdist_group("eval-run")  # one worker trains the shared run once


def test_metrics_three_classes_match_hand_counts():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.8 + 0.2 / 3
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["per_class"]["a"]["precision"] == 0.5 and m["per_class"]["c"]["recall"] == 0.5
    assert m["macro_f1"] == pytest.approx(np.mean([0.5, 0.8, 2 / 3]))
    assert "roc_auc" not in m and m["labels"] == ["a", "b", "c"]


def test_metrics_two_classes_have_roc_and_pr_auc():
    y = np.array([0, 0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8, 0.3, 0.9])
    m = classification_metrics(y, np.stack([1 - p1, p1], 1), ["neg", "pos"])
    assert m["roc_auc"] == pytest.approx(7 / 9) and 0 < m["pr_auc"] <= 1
    assert m["accuracy"] == pytest.approx(5 / 6)


@pytest.fixture(scope="module")
def split_data(lfw_dir, tmp_path_factory):
    """train/ (30 per class) and test/ (10 per class plus one truncated file)."""
    root = tmp_path_factory.mktemp("evaldata")
    for cls in ("face", "nonface"):
        files = sorted((lfw_dir / cls).glob("*.png"))
        for split, chosen in (("train", files[:30]), ("test", files[-10:])):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for f in chosen:
                shutil.copy(f, root / split / cls / f.name)
    (root / "test" / "face" / "cut.png").write_bytes((lfw_dir / "face" / "000.png").read_bytes()[:300])
    return root


@pytest.fixture(scope="module")
def small_run(split_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("evalrun") / "run"
    visionzoo.train(split_data, run, strategy="linear", image_size=64, epochs=30, log=None)
    return run


def test_training_reports_on_the_test_split(small_run):
    report = json.loads((small_run / "report.json").read_text())
    assert report["split"] == "test" and report["n_images"] == 20
    assert [f["path"].rsplit("/", 1)[-1] for f in report["failures"]] == ["cut.png"]


def test_cli_evaluate_writes_report_and_pictures(small_run, split_data, tmp_path, monkeypatch, capsys):
    from visionzoo.cli import main

    out = tmp_path / "ev"
    monkeypatch.setattr(sys, "argv", ["visionzoo", "evaluate", str(small_run), str(split_data), "--out", str(out)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1  # the truncated test file is listed, the rest evaluated
    assert "cut.png" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    for key in ("accuracy", "macro_f1", "per_class", "labels", "confusion_matrix", "roc_auc", "pr_auc"):
        assert key in report
    assert report["accuracy"] >= 0.8 and sum(map(sum, report["confusion_matrix"])) == 20
    assert set(report["per_class"]["face"]) == {"precision", "recall", "f1", "support"}
    assert "accuracy" in (out / "report.md").read_text() and "cut.png" in (out / "report.md").read_text()
    for png in ("confusion_matrix.png", "misclassified.png", "roc_pr.png"):
        assert Image.open(out / png).size[0] > 200
    api = visionzoo.evaluate(small_run, split_data / "test", out=tmp_path / "api")
    assert api["accuracy"] == report["accuracy"] and api["confusion_matrix"] == report["confusion_matrix"]


def test_evaluate_usage_errors(small_run, split_data, lfw_dir, tmp_path):
    (tmp_path / "face").mkdir()
    (tmp_path / "cats").mkdir()
    shutil.copy(lfw_dir / "face" / "000.png", tmp_path / "cats" / "x.png")
    shutil.copy(lfw_dir / "face" / "000.png", tmp_path / "face" / "x.png")
    with pytest.raises(UsageError, match="not trained on: cats"):
        visionzoo.evaluate(small_run, tmp_path)
    with pytest.raises(UsageError, match="not a saved run"):
        visionzoo.evaluate(split_data, split_data)
