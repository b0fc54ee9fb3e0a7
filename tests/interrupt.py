"""Interrupt a command in a state that is certain: it holds at a named point (VISIONZOO_HOLD_AT,
see visionzoo/holds.py) and says so, and only then is it killed, as a power cut would, or
interrupted, as Ctrl-C would. No sleep, no guess about how fast the machine is."""
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
GUARD_S = 1800  # only a guard against a hung command: no assertion depends on how long holding takes


def cli_args(options: dict) -> list[str]:
    return [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]


def history(run: Path) -> list[dict]:
    return list(csv.DictReader((run / "history.csv").open()))


def start_held(args: list[str], hold: str, log: Path, **popen) -> subprocess.Popen:
    """Start `visionzoo ARGS` in its own process group with VISIONZOO_HOLD_AT=HOLD; return once it
    holds there (its log says so). Fails with the log if it ends first."""
    out = log.open("w")
    # xdist's workers ignore SIGINT and children inherit that: restore it, so Ctrl-C means what it does for a user
    proc = subprocess.Popen([sys.executable, "-m", "visionzoo", *map(str, args)], env={**ENV, "VISIONZOO_HOLD_AT": hold},
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)
    deadline = time.monotonic() + GUARD_S
    while "held at" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_group(proc)
            raise AssertionError(f"the command ended (or hung) before it held at {hold}:\n{log.read_text()}")
        time.sleep(0.05)
    return proc


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> int:
    """Send SIG to the command and every process it started (ranks, workers); wait; its return code."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    return proc.wait()


def kill_after_first_epoch(args: list[str], run: Path) -> int:
    """`visionzoo ARGS --out RUN`, SIGKILLed (with every process it started) right after its first
    epoch's checkpoint is written; return the epochs the checkpoint holds."""
    proc = start_held([*args, "--out", str(run), "--quiet"], "epoch:1", run.with_suffix(".log"))
    assert kill_group(proc) == -signal.SIGKILL
    assert not (run / "config.json").exists(), "a killed run must not look finished"
    return int(torch.load(run / "checkpoint.pt", weights_only=True)["epoch"])
