"""`train` warns when validation leaks: copies of training images in val, found with the check
`audit` uses (visionzoo/training/leaks.py), named on the progress line and in the report."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "brick", "moon")


def _photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def test_copies_between_finds_copies_not_look_alikes(tmp_path):
    from visionzoo.training.leaks import copies_between

    train, held = [], []
    for name in PHOTOS[:5]:
        _photo(name).save(tmp_path / f"{name}.png")
        train.append(str(tmp_path / f"{name}.png"))
    img = _photo("astronaut")
    img.resize((256, 256)).save(tmp_path / "astro_small.jpg", quality=50)                 # a copy
    _photo("chelsea").save(tmp_path / "chelsea_q40.jpg", quality=40)                       # a copy
    w, h = img.size
    img.crop((8, 8, w, h)).resize((w, h)).save(tmp_path / "astro_burst.png")              # a shifted shot
    _photo("coins").save(tmp_path / "coins.png")                                           # distinct
    held = [str(tmp_path / n) for n in ("astro_small.jpg", "chelsea_q40.jpg", "astro_burst.png", "coins.png")]
    found = copies_between(train, held)
    assert [(Path(a).name, Path(b).name) for a, b in found] == [("astro_small.jpg", "astronaut.png"),
                                                                ("chelsea_q40.jpg", "chelsea.png")]


def test_train_names_leaked_copies_on_its_progress_line_and_in_the_report(lfw_sample, tmp_path, monkeypatch, capsys):
    from visionzoo.cli import main

    data = tmp_path / "data"
    lfw_sample(data / "train", 10)
    (data / "val" / "face").mkdir(parents=True)
    (data / "val" / "nonface").mkdir(parents=True)
    for n, f in enumerate(sorted((data / "train" / "face").glob("*.png"))[:3]):
        Image.open(f).convert("RGB").resize((50, 50)).save(data / "val" / "face" / f"copy{n}.jpg", quality=90)
    for f in sorted((data / "train" / "nonface").glob("*.png"))[:2]:
        f.rename(data / "val" / "nonface" / f.name)        # distinct images: not copies
    monkeypatch.setattr(sys, "argv", ["visionzoo", "train", str(data), "--out", str(tmp_path / "run"),
                                      "--strategy", "linear", "--epochs", "1", "--image-size", "64"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0
    err = capsys.readouterr().err
    assert "warning: 3 of 5 val images are copies of training images" in err, err
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    pairs = report["leakage"]["val"]["pairs"]
    assert sorted(Path(p["path"]).name for p in pairs) == ["copy0.jpg", "copy1.jpg", "copy2.jpg"]
