"""Crash a training command the way a power cut would, for every task's --resume test."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

# One intra-op thread, as the xdist workers run the unbroken runs: the same arithmetic, the same result.
ENV = {**os.environ, "VISIONZOO_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def cli_args(options: dict) -> list[str]:
    return [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]


def history(run: Path) -> list[dict]:
    return list(csv.DictReader((run / "history.csv").open()))


def kill_after_first_epoch(args: list[str], run: Path, timeout: float = 300) -> int:
    """Start `visionzoo ARGS --out RUN`, SIGKILL it (and every process it started) as soon as its
    first epoch's checkpoint is written, i.e. inside the next epoch; return the epochs it finished."""
    log = run.with_suffix(".log")
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "visionzoo", *args, "--out", str(run), "--quiet"], env=ENV,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + timeout
            while not (run / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.05)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended on its own (the assertions below say how)
                pass
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    assert not (run / "config.json").exists(), "the run finished before it could be killed"
    return int(torch.load(run / "checkpoint.pt", weights_only=True)["epoch"])
