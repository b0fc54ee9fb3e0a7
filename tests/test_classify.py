"""classify through the API and the CLI on real photos, with bad files mixed in."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest
from badfiles import write_bad_files, write_odd_modes
from PIL import Image

import visionzoo

CAT_CLASSES = set(range(281, 286))
ESPRESSO = 967


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "visionzoo", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_api_cat_and_espresso(photo_dir, lite0):
    results = {r.path.rsplit("/", 1)[-1]: r for r in visionzoo.classify(photo_dir, model=lite0, top_k=5)}
    assert {p.index for p in results["chelsea.jpg"].predictions} & CAT_CLASSES
    top = results["coffee.jpg"].predictions[0]
    assert (top.index, top.label) == (ESPRESSO, "espresso") and top.probability > 0.5
    assert all(len(r.predictions) == 5 and r.error is None for r in results.values())
    probs = [p.probability for p in results["coffee.jpg"].predictions]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6


def test_odd_modes_classify_correctly(tmp_path, photo_dir, lite0):
    write_odd_modes(tmp_path, Image.open(photo_dir / "coffee.jpg"))
    for r in visionzoo.classify(tmp_path, model=lite0, top_k=1):
        assert r.predictions[0].index == ESPRESSO, r.path


def test_batches_match_single_images(photo_dir, lite0):
    together = visionzoo.classify(photo_dir, model=lite0, top_k=3, batch_size=4, workers=2)
    alone = [visionzoo.classify([r.path], model=lite0, top_k=3)[0] for r in together]
    for a, b in zip(together, alone):
        assert [p.index for p in a.predictions] == [p.index for p in b.predictions]
        assert a.predictions[0].probability == pytest.approx(b.predictions[0].probability, abs=1e-4)


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory, photo_dir):
    folder = tmp_path_factory.mktemp("mixed")
    for name in ("chelsea.jpg", "coffee.jpg"):
        shutil.copy(photo_dir / name, folder / name)
    write_bad_files(folder / "bad", photo_dir / "coffee.jpg")
    (folder / "readme.txt").write_text("not an image, skipped by extension")
    return folder


def test_cli_mixed_folder_reports_bad_files_and_exits_1(mixed_dir, tmp_path):
    out, grid = tmp_path / "r.json", tmp_path / "g.png"
    proc = run_cli("classify", mixed_dir, "--out", out, "--grid", grid, "--top-k", "5")
    assert proc.returncode == 1, proc.stderr
    results = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(out.read_text())}
    assert len(results) == 7
    assert results["coffee.jpg"]["predictions"][0]["index"] == ESPRESSO
    assert {p["index"] for p in results["chelsea.jpg"]["predictions"]} & CAT_CLASSES
    for name in ("truncated.jpg", "empty.jpg", "notes.jpg", "dangling.png", "bomb.png"):
        assert results[name]["error"] and not results[name]["predictions"]
        assert name in proc.stderr
    assert "2 of 7 image(s) done, 5 failed" in proc.stderr
    assert "readme.txt" in proc.stderr
    assert grid.stat().st_size > 10_000 and Image.open(grid).size[0] > 500


def test_cli_good_inputs_exit_0_and_csv(photo_dir, tmp_path):
    out = tmp_path / "r.csv"
    proc = run_cli("classify", photo_dir / "coffee.jpg", photo_dir / "chelsea.jpg", "--top-k", "3", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "espresso" in proc.stdout
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and rows[0]["label"] in ("tiger cat", "tabby, tabby cat", "Egyptian cat")


@pytest.mark.parametrize("args,message", [
    (["classify", "/nonexistent/x.jpg"], "no such file"),
    (["classify", "{photos}", "--model", "no_such_model_xyz"], "unknown model"),
    (["classify", "{photos}", "--model", "inception_v2"], "no pretrained"),
    (["classify", "{photos}", "--top-k", "0"], "top-k"),
])
def test_cli_usage_errors_exit_2(args, message, photo_dir):
    proc = run_cli(*[a.replace("{photos}", str(photo_dir)) for a in args])
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_cli_models_lists_offline_default():
    proc = run_cli("models", "lite")
    assert proc.returncode == 0
    line = next(row for row in proc.stdout.splitlines() if "efficientnet_lite0" in row)
    assert "yes" in line and "224" in line and "74.83" in line
