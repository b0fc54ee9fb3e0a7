"""Hold points: named places in long work where a process can be told to stop and wait.

`VISIONZOO_HOLD_AT=shard:3` makes the process wait for a signal right after its third shard is
written (`epoch:1` after the first epoch's checkpoint, `row:5` after the fifth result row is
written). It says so on stderr first, so whoever watches it (a test that kills the run the way a
power cut would, a user checking what an interrupted run keeps) acts on a state that is certain,
not on a guess about timing. Unset, a hold point costs one dictionary look-up.
"""
from __future__ import annotations

import os
import sys
import time
from collections import Counter

ENV = "VISIONZOO_HOLD_AT"
_reached: Counter = Counter()


def _wanted() -> dict[str, int]:
    spec = os.environ.get(ENV, "")
    wanted = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        wanted[name] = int(count or 1)
    return wanted


def hold_point(name: str) -> None:
    """Count one more `name`; when the count is the one VISIONZOO_HOLD_AT names, wait for a signal."""
    if ENV not in os.environ:
        return
    _reached[name] += 1
    if _wanted().get(name) != _reached[name]:
        return
    print(f"held at {name} {_reached[name]} ({ENV}): waiting for a signal", file=sys.stderr, flush=True)
    while True:  # Ctrl-C raises KeyboardInterrupt here; SIGTERM / SIGKILL end the process
        time.sleep(3600)
