"""Labelled datasets: folder layouts, CSV, stratified seeded splits, k-folds, structural errors."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from visionzoo.data import eval_transform
from visionzoo.errors import UsageError
from visionzoo.tasks.classify.data import Split, kfold_splits, load_dataset, load_eval_split
from visionzoo.tasks.classify.training import image_batches
from visionzoo.zoo.spec import Preprocessing


def test_single_folder_split_is_stratified_and_seeded(lfw_dir):
    ds = load_dataset(lfw_dir, val_split=0.2, seed=0)
    assert ds.labels == ["face", "nonface"] and ds.layout == "folder"
    assert ds.train.counts(2) == [80, 80] and ds.val.counts(2) == [20, 20]
    assert not set(ds.train.paths) & set(ds.val.paths)
    assert all(Path(p).parent.name == ds.labels[t] for p, t in zip(ds.train.paths, ds.train.targets))
    assert load_dataset(lfw_dir, val_split=0.2, seed=0).val.paths == ds.val.paths
    assert load_dataset(lfw_dir, val_split=0.2, seed=1).val.paths != ds.val.paths
    assert load_dataset(lfw_dir, val_split=0).val is None


def test_train_val_test_layout(lfw_sample, tmp_path):
    for split, n in (("train", 10), ("val", 4), ("test", 3)):
        lfw_sample(tmp_path / split, n)
    (tmp_path / "train" / "face" / "notes.txt").write_text("not an image")
    ds = load_dataset(tmp_path)
    assert ds.layout == "splits" and (len(ds.train), len(ds.val), len(ds.test)) == (20, 8, 6)
    assert ds.skipped and ds.skipped[0].endswith("notes.txt")
    split, _ = load_eval_split(tmp_path, ds.labels)
    assert len(split) == 6 and set(split.targets) == {0, 1}  # test/ is preferred for evaluation


def test_csv_with_relative_paths(lfw_sample, tmp_path):
    lfw_sample(tmp_path / "imgs", 5)
    rows = ["path,label"] + [f"imgs/{c}/{f.name},{'person' if c == 'face' else 'other'}"
                             for c in ("face", "nonface") for f in sorted((tmp_path / "imgs" / c).iterdir())]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(tmp_path / "labels.csv", val_split=0.4)
    assert ds.labels == ["other", "person"] and ds.layout == "csv"
    assert ds.train.counts(2) == [3, 3] and ds.val.counts(2) == [2, 2]
    (tmp_path / "bad.csv").write_text("imgs/face/missing.png,person\nimgs/face/x.png,person\n")
    with pytest.raises(UsageError, match="do not exist"):
        load_dataset(tmp_path / "bad.csv")


def test_structural_errors_are_usage_errors(lfw_sample, tmp_path):
    with pytest.raises(UsageError, match="no such dataset"):
        load_dataset(tmp_path / "missing")
    lfw_sample(tmp_path / "one", 3)
    shutil.rmtree(tmp_path / "one" / "nonface")
    with pytest.raises(UsageError, match="only one class"):
        load_dataset(tmp_path / "one")
    lfw_sample(tmp_path / "empty", 3)
    (tmp_path / "empty" / "cats").mkdir()
    with pytest.raises(UsageError, match="without images: cats"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(UsageError, match="no class folders"):
        load_dataset(tmp_path / "nothing")
    lfw_sample(tmp_path / "onlyval" / "val", 3)
    with pytest.raises(UsageError, match="no train/"):
        load_dataset(tmp_path / "onlyval")


def test_cli_dataset_errors_exit_2(lfw_sample, tmp_path, monkeypatch, capsys):
    from visionzoo.cli import main

    lfw_sample(tmp_path / "one", 3)
    shutil.rmtree(tmp_path / "one" / "nonface")
    for data in (tmp_path / "one", tmp_path / "missing"):
        monkeypatch.setattr(sys, "argv", ["visionzoo", "train", str(data), "--out", str(tmp_path / "run")])
        with pytest.raises(SystemExit) as exc:
            main()
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "only one class" in err and "no such dataset" in err


def test_kfold_covers_every_image_once(lfw_dir):
    ds = load_dataset(lfw_dir, val_split=0)
    folds = kfold_splits(ds.train, 4, seed=0)
    held = [p for _, val in folds for p in val.paths]
    assert sorted(held) == sorted(ds.train.paths) and all(val.counts(2) == [25, 25] for _, val in folds)
    with pytest.raises(UsageError, match="--cv"):
        kfold_splits(ds.train.subset(range(0, 200, 40)), 5, seed=0)


def test_training_batches_skip_and_record_corrupt_files(lfw_sample, tmp_path):
    folder = lfw_sample(tmp_path / "d", 4)
    good = sorted(str(p) for p in folder.rglob("*.png"))
    (folder / "face" / "broken.png").write_bytes((folder / "face" / "000.png").read_bytes()[:40])
    split = Split(good + [str(folder / "face" / "broken.png")], [0] * 4 + [1] * 4 + [0])
    failures: dict[str, str] = {}
    batches = image_batches(split, eval_transform(Preprocessing().with_size(32)), batch_size=3,
                            seed=0, failures=failures, workers=0)
    seen = [(x.shape, y.tolist()) for x, y in batches(1)]
    assert list(failures) == [split.paths[-1]], failures
    assert "image" in failures[split.paths[-1]]   # the decoder's reason, e.g. "not an image (...)"
    assert all(shape[1:] == torch.Size([3, 32, 32]) for shape, _ in seen)
    assert sum(len(y) for _, y in seen) == 8   # 3 full batches of 3, the broken file left out of its batch
    order = [y for _, y in seen]
    assert order == [y.tolist() for _, y in batches(1)]   # an epoch repeats exactly (resume)
