"""Ordinary mistakes, made with every kind of command: each ends in one line naming the file or the
option, with exit status 2, and never a traceback. (`--debug` shows the traceback on purpose.)"""
from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from visionzoo.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("mistakes")
    Image.new("RGB", (64, 48), (200, 30, 30)).save(root / "a.jpg")
    (root / "folder").mkdir()
    (root / "file.txt").write_text("not a folder")
    for cls in ("x", "y"):
        (root / "data" / cls).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(root / "data" / cls / "1.png")
    (root / "caps").mkdir()
    Image.new("RGB", (32, 32)).save(root / "caps" / "a.png")
    (root / "caps" / "captions.csv").write_bytes("image,caption\na.png,un café noir\n".encode("latin-1"))
    (root / "quote").mkdir()
    (root / "quote" / "captions.csv").write_text('image,caption\na.png,"a red square\na.png,a dog\n')
    return root


MISTAKES = [
    (["classify", "{a}", "--out", "{folder}"], "is a folder"),
    (["classify", "{a}", "--out", "{root}/labels.txt"], ".json or .csv"),
    (["classify", "{a}", "--out", "{file}/x.json"], "not a writable folder"),
    (["classify", "{root}/missing.jpg"], "no such file"),
    (["classify", "{a}", "--model", "no_such_model"], "unknown model"),
    (["extract", "{a}", "--out", "{root}/f", "--format", "xyz"], "unknown format"),
    (["train", "{file}", "--out", "{root}/run"], "class folders"),
    (["train", "{root}/data", "--out", "{file}"], "is a file"),
    (["detect", "predict", "{root}/data", "{a}"], "not a run folder"),
    (["detect", "predict", "fasterrcnn_resnet50_fpn_v2", "{a}", "--draw", "{file}"], "is a file"),
    (["segment", "predict", "deeplabv3_resnet50", "{a}", "--masks", "{file}"], "is a file"),
    (["segment", "train", "{root}/data", "--out", "{root}/seg"], "images/"),
    (["caption", "train", "{root}/caps", "--out", "{root}/cap"], "--encoding"),
    (["caption", "train", "{root}/quote", "--out", "{root}/cap2"], "line 2"),
    (["dedup", "{file}"], "feature"),
    (["search", "{folder}", "{a}"], "neither an index folder nor a feature file"),
    (["map", "{root}/f.parquet", "--out", "{root}/map.pdf"], "must be .png or .html"),
    (["faces", "verify", "{root}/missing.jpg", "{a}"], "missing.jpg"),
    (["export", "efficientnet_lite0", "--out", "{file}"], "already exists"),
    (["evaluate", "{root}/data", "{root}/data"], "not a saved run"),
    (["predict", "{folder}", "{a}"], "not a saved run"),
    (["serve", "--port", "99999"], "65535"),
]


@pytest.mark.parametrize("args,message", MISTAKES, ids=[" ".join(a[:2]) + f" {i}" for i, (a, _) in enumerate(MISTAKES)])
def test_a_mistake_is_one_line_and_exit_2(args, message, place):
    values = {"a": place / "a.jpg", "folder": place / "folder", "file": place / "file.txt", "root": place}
    res = runner.invoke(app, [a.format(**values) for a in args])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output and message in res.output, res.output


def test_debug_shows_the_traceback(place):
    proc = subprocess.run([sys.executable, "-m", "visionzoo", "--debug", "classify", str(place / "missing.jpg")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "UsageError" in proc.stderr
    plain = subprocess.run([sys.executable, "-m", "visionzoo", "classify", str(place / "missing.jpg")],
                           capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and "missing.jpg" in plain.stderr
