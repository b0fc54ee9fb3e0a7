"""Data-parallel training (`--num-workers N`, DDP over gloo on CPU) on real data: skimage lfw_subset."""
from __future__ import annotations

import os
import time

import pytest
import torch
from interrupt import cli_args, history, kill_after_first_epoch

import visionzoo
from visionzoo.errors import UsageError
from visionzoo.tasks.classify import TrainConfig
from visionzoo.training import distributed
from visionzoo.training.batches import _rank_batches

# Same seed and global batch for both runs; 100 validation images, so one image is one point.
# lfw crops are 25x25 pixels: 64-pixel inputs lose nothing, and freezing 5 of 8 blocks keeps it quick.
FINETUNE = dict(strategy="finetune", epochs=3, head_epochs=1, image_size=64, freeze=5, val_split=0.5,
                batch_size=16, workers=0, seed=0)


_history = history


@pytest.fixture(scope="module")
def one_process(lfw_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("ddp") / "one"
    return run, visionzoo.train(lfw_dir, run, log=None, **FINETUNE)


@pytest.mark.slow
def test_two_workers_killed_and_resumed_match_one_process(one_process, lfw_dir, tmp_path):
    """`--num-workers 2` from the CLI, killed (launcher and ranks) after its first epoch and resumed:
    epochs are seeded, so the resumed run is the uninterrupted one, and it must match one process."""
    run = tmp_path / "run"
    done = kill_after_first_epoch(["train", str(lfw_dir), "--num-workers=2", *cli_args(FINETUNE)], run)
    assert done == 1  # the launcher and both ranks were killed, as a crashed machine would

    lines: list[str] = []
    result = visionzoo.train(lfw_dir, run, resume=True, workers=0, num_workers=2, log=lines.append)
    # metrics logged once: one log line and one history row per epoch, figures over both ranks' images
    assert [ln.split()[1] for ln in lines if ln.startswith("epoch ")] == [f"{e}/3" for e in range(done + 1, 4)]
    assert any(ln.startswith(f"resuming after epoch {done}") for ln in lines)
    assert sum(ln.startswith("saved run:") for ln in lines) == 1
    assert [r["epoch"] for r in _history(run)] == ["1", "2", "3"]
    # validation accuracy within 2 points of one process with the same seed and global batch
    run1, result1 = one_process
    acc1, acc2 = result1["report"]["accuracy"], result["report"]["accuracy"]
    assert result["report"]["n_images"] == 100 and acc2 >= 0.9
    assert abs(acc1 - acc2) <= 0.02 + 1e-9, (acc1, acc2)
    # in fact the same training: the same batches and per-image augmentations, up to float rounding
    for row1, row2 in zip(_history(run1), _history(run), strict=True):
        assert float(row2["val_loss"]) == pytest.approx(float(row1["val_loss"]), abs=0.01)
    # the same run folder as one process, with num_workers recorded; it predicts
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in run1.iterdir())
    assert result["config"].keys() == result1["config"].keys()
    assert result["config"]["training"]["num_workers"] == 2 and result1["config"]["training"]["num_workers"] == 1
    faces = sorted((lfw_dir / "face").glob("*.png"))[-4:]
    assert [r.predictions[0].label for r in visionzoo.predict(run, faces, top_k=1)] == ["face"] * 4


def _rank_fails(kind: str, *, log=None) -> None:
    """Rank 1 fails at once; rank 0 would go on for minutes (as if waiting in a collective)."""
    if os.environ["RANK"] == "1":
        raise (UsageError if kind == "usage" else ValueError)(f"{kind} on rank 1")
    time.sleep(300)


@pytest.mark.slow
def test_a_failing_rank_stops_the_run_with_its_error():
    with pytest.raises(RuntimeError, match=r"rank 1 of 2 failed, so every rank was stopped(.|\n)*ValueError: crash"):
        distributed.launch(_rank_fails, 2, "crash", log=None)
    with pytest.raises(UsageError, match="usage on rank 1"):
        distributed.launch(_rank_fails, 2, "usage", log=None)


def test_ranks_share_out_exactly_the_one_process_batches():
    for n, batch, shuffle in ((50, 16, True), (50, 16, False), (7, 16, True)):
        one = _rank_batches(n, batch, shuffle, torch.Generator().manual_seed(3), 0, 1)
        parts = [_rank_batches(n, batch, shuffle, torch.Generator().manual_seed(3), r, 2) for r in (0, 1)]
        assert len(parts[0]) == len(one)
        for k, whole in enumerate(one):
            assert parts[0][k] + (parts[1][k] if k < len(parts[1]) else []) == whole
            assert not set(parts[0][k]) & set(parts[1][k] if k < len(parts[1]) else [])
    assert len(one_epoch := _rank_batches(50, 16, True, torch.Generator(), 1, 2)) == 3  # last partial batch dropped
    assert all(len(b) == 8 for b in one_epoch)


def test_global_batch_must_split_evenly():
    with pytest.raises(UsageError, match="must split evenly"):
        TrainConfig(strategy="finetune", batch_size=30, num_workers=4)
    assert TrainConfig(strategy="linear", batch_size=30, num_workers=4).num_workers == 4


def test_linear_says_ddp_buys_nothing_and_runs_in_one_process(lfw_sample, tmp_path):
    data = tmp_path / "data"
    lfw_sample(data, 12)
    lines: list[str] = []
    result = visionzoo.train(data, tmp_path / "run", strategy="linear", epochs=5, image_size=32, num_workers=2,
                             log=lines.append)
    assert any("data parallelism buys nothing" in line for line in lines)
    assert result["config"]["training"]["num_workers"] == 1 and result["report"]["n_images"] > 0


@pytest.mark.slow
def test_scratch_with_two_workers_saves_a_run_that_predicts(lfw_sample, tmp_path):
    data = tmp_path / "data"
    lfw_sample(data, 16)
    run = tmp_path / "run"
    result = visionzoo.train(data, run, model="resnet18", strategy="scratch", epochs=2, image_size=32, batch_size=8,
                             val_split=0.25, workers=0, num_workers=2, log=None)
    assert result["config"]["training"]["num_workers"] == 2 and result["report"]["n_images"] == 8
    assert [r["epoch"] for r in _history(run)] == ["1", "2"]
    results = visionzoo.predict(run, data / "face", top_k=2)
    assert len(results) == 16 and all(r.error is None and len(r.predictions) == 2 for r in results)
