"""Same data, same command, same model: the default training schedule is the data's, not the clock's,
so a run beside CPU-burning processes ends exactly as one alone; `--time-budget` is the user's
explicit choice, checked every step, and a run it ends says so."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import visionzoo
from visionzoo.cpus import default_threads
from visionzoo.errors import UsageError
from visionzoo.tasks.classify.config import TrainConfig
from visionzoo.tasks.detect.training import EPOCH_STEPS, MAX_EPOCHS, MIN_EPOCHS, DetectTrainConfig, default_epochs
from visionzoo.training.batches import epochs_for

TWO = "efficientnet_lite0,efficientnet_lite1"
# Small but real: the new head and the last blocks train on 64 px lfw crops; patience 1 lets the
# validation plateau end the run, so the epoch count and the best epoch are the data's to decide.
FINETUNE = {"strategy": "finetune", "epochs": 4, "head_epochs": 1, "image_size": 64, "freeze": 5, "patience": 1,
            "batch_size": 8, "workers": 0}
SPIN = "import pathlib, sys; pathlib.Path(sys.argv[1]).touch()\nwhile True: pass"


@contextmanager
def busy_cores(folder: Path, n: int = 2):
    """`n` processes spinning on the CPU, each known to be in its loop (it wrote its marker) before the body runs."""
    procs = [subprocess.Popen([sys.executable, "-c", SPIN, str(folder / f"spin{i}")]) for i in range(n)]
    try:
        while not all((folder / f"spin{i}").exists() for i in range(n)):
            assert all(p.poll() is None for p in procs), "a busy-loop process ended before it started spinning"
            time.sleep(0.02)
        yield procs
        assert all(p.poll() is None for p in procs), "the busy loops must spin for the whole run"
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _outcome(run: Path, images: list[str]) -> dict:
    """What a user gets from a run: the choices, the epochs, and the saved model's answers."""
    from visionzoo.data import eval_transform, iter_batches

    config = json.loads((run / "config.json").read_text())
    model = visionzoo.load_model(str(run)).eval()
    pre = model.zoo_spec.preprocessing
    with torch.inference_mode():
        probs = torch.cat([model(b.tensor).softmax(1) for b in iter_batches(images, eval_transform(pre),
                                                                            batch_size=16, workers=0)])
    auto = config.get("auto") or {}
    return {"chosen": auto.get("chosen"), "candidates": list(dict.fromkeys(r["model"] for r in auto.get("candidates", []))),
            "epochs_run": config["epochs_run"], "best_epoch": config["best_epoch"],
            "stopped_by": config["training"]["stopped_by"], "threads": config["training"]["threads"],
            "time_budget": config["training"]["time_budget"], "probs": probs}


def _train_both(data: Path, out: Path) -> dict[str, dict]:
    images = sorted(str(p) for p in data.rglob("*.png"))
    outcomes = {}
    for name, opts in {"auto": {"model": TWO, "image_size": 64, "workers": 0}, "finetune": FINETUNE}.items():
        visionzoo.train(data, out / name, log=None, **opts)
        outcomes[name] = _outcome(out / name, images)
    return outcomes


@pytest.mark.slow
def test_a_run_beside_busy_processes_trains_the_same_model(lfw_sample, tmp_path):
    data = lfw_sample(tmp_path / "data", 16)
    alone = _train_both(data, tmp_path / "alone")
    with busy_cores(tmp_path):
        busy = _train_both(data, tmp_path / "busy")
    assert alone["auto"]["candidates"] == ["efficientnet_lite0", "efficientnet_lite1"]  # both tried, no clock
    for name in ("auto", "finetune"):
        a, b = alone[name], busy[name]
        assert a["time_budget"] is None and a["threads"] == default_threads()
        for key in ("chosen", "candidates", "epochs_run", "best_epoch", "stopped_by", "threads"):
            assert a[key] == b[key], (name, key, a[key], b[key])
        assert torch.allclose(a["probs"], b["probs"], atol=1e-5), (name, (a["probs"] - b["probs"]).abs().max())
    assert alone["finetune"]["stopped_by"] in ("plateau", "epochs")


def test_time_budget_stops_at_a_step_and_the_run_says_so(lfw_sample, tmp_path, monkeypatch, capsys):
    from visionzoo.cli import main

    data = lfw_sample(tmp_path / "data", 8)  # 12 training images: 3 steps of 4 per epoch
    run = tmp_path / "run"
    opts = {**FINETUNE, "epochs": 3, "batch_size": 4, "patience": 5}
    args = [f"--{k.replace('_', '-')}={v}" for k, v in opts.items()]
    monkeypatch.setattr(sys, "argv", ["visionzoo", "train", str(data), "--out", str(run), *args,
                                      "--time-budget", "0.001", "--threads", "1", "--quiet"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0
    training = json.loads((run / "config.json").read_text())["training"]
    # The first step always runs; the budget is spent by the time the second would start.
    assert training["stopped_by"] == "time budget" and training["threads"] == 1
    assert (training["epochs_planned"], training["epochs_done"]) == (3, 1)
    assert training["budget_cut"] == {"epoch": 1, "steps_done": 1, "steps": 3}
    report = json.loads((run / "report.json").read_text())["training"]
    assert report["stopped_by"] == "time budget" and report["epochs_planned"] == 3
    assert "stopped by time budget after 1 of 3 planned epochs (epoch 1 cut after 1 of 3 steps)" in (
        run / "report.md").read_text()
    err = capsys.readouterr().err
    assert "stopped by the time budget after 1/3 steps" in err and "3 epochs were planned" in err


def test_default_schedules_have_no_clock():
    assert TrainConfig().time_budget is None and DetectTrainConfig().time_budget is None
    assert DetectTrainConfig().epochs is None  # set from the data when training starts
    assert epochs_for(128, 4, steps=EPOCH_STEPS, least=MIN_EPOCHS, most=MAX_EPOCHS) == 10  # the raccoons
    assert epochs_for(10, 4, steps=EPOCH_STEPS, least=MIN_EPOCHS, most=MAX_EPOCHS) == MAX_EPOCHS
    assert epochs_for(100_000, 4, steps=EPOCH_STEPS, least=MIN_EPOCHS, most=MAX_EPOCHS) == MIN_EPOCHS
    assert default_epochs("fasterrcnn", 128, 4)[0] == 10
    assert default_epochs("maskrcnn", 48, 4)[0] == 54  # the membrane cells' 48 training tiles: --epochs 54's run
    assert default_threads(1) == default_threads(2) == default_threads(3) == 1 and default_threads(16) == 8
    with pytest.raises(UsageError, match="--threads"):
        TrainConfig(threads=0)
    with pytest.raises(UsageError, match="--time-budget"):
        DetectTrainConfig(time_budget=0).check()
