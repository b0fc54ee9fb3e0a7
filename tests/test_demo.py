"""The main job: `visionzoo demo` runs offline on the bundled photos and writes its outputs."""
from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image


def test_demo_runs_offline_and_writes_outputs(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "visionzoo", "demo", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads((out / "classify.json").read_text())}
    assert results["coffee.jpg"]["predictions"][0]["label"] == "espresso"
    assert {p["index"] for p in results["chelsea.jpg"]["predictions"]} & set(range(281, 286))
    assert Image.open(out / "classify_grid.png").size[0] > 800
    assert "espresso" in proc.stdout
