"""`predict` on a saved run: same shape and bad-input handling as classify; probe folders dispatch."""
from __future__ import annotations

import csv
import shutil
import sys

import pytest
from badfiles import write_bad_files

import visionzoo
from visionzoo.errors import UsageError


@pytest.fixture(scope="module")
def run(lfw_sample, tmp_path_factory):
    data = tmp_path_factory.mktemp("pdata")
    lfw_sample(data, 20)
    out = tmp_path_factory.mktemp("prun") / "run"
    visionzoo.train(data, out, strategy="linear", image_size=64, epochs=20, log=None)
    return out


@pytest.fixture(scope="module")
def mixed(photo_dir, lfw_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    shutil.copy(lfw_dir / "face" / "099.png", folder / "face.png")
    shutil.copy(photo_dir / "camera.jpg", folder / "camera.jpg")
    write_bad_files(folder / "bad", photo_dir / "coffee.jpg")
    return folder


pytestmark = pytest.mark.xdist_group("predict-run")  # one worker trains the shared run once


def test_predict_matches_classify_and_lists_bad_files(run, mixed):
    results = visionzoo.predict(run, mixed, top_k=5)
    assert [r.to_dict() for r in results] == [r.to_dict() for r in visionzoo.classify(mixed, model=run, top_k=5)]
    by_name = {r.path.rsplit("/", 1)[-1]: r for r in results}
    assert len(by_name) == 7
    good = by_name["face.png"]
    assert good.error is None and len(good.predictions) == 2  # top-k capped at the run's classes
    assert {p.label for p in good.predictions} == {"face", "nonface"}
    for name in ("truncated.jpg", "empty.jpg", "notes.jpg", "dangling.png", "bomb.png"):
        assert by_name[name].error and not by_name[name].predictions


def test_cli_predict_csv_and_exit_codes(run, mixed, tmp_path, monkeypatch, capsys):
    from visionzoo.cli import main

    out = tmp_path / "p.csv"
    monkeypatch.setattr(sys, "argv", ["visionzoo", "predict", str(run), str(mixed), "--top-k", "1", "--out", str(out)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1
    assert "2 of 7 image(s) done, 5 failed" in capsys.readouterr().err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 7 and {r["label"] for r in rows if not r["error"]} <= {"face", "nonface"}
    monkeypatch.setattr(sys, "argv", ["visionzoo", "predict", str(mixed), str(mixed)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "not a saved run" in capsys.readouterr().err


def test_predict_refuses_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(UsageError, match="not a saved run"):
        visionzoo.predict(tmp_path / "elsewhere", ["x.jpg"])
