"""Same data, same command, same model? One `visionzoo ... train` command run alone and with busy
processes beside it: what each run chose and reached, its whole-command seconds, and the saved
runs' predictions on the same photos compared.

    .venv/bin/python benchmarks/determinism_bench.py --out /tmp/det --images PHOTOS [--modes alone,busy]
        [--busy 2] [--limit 40] -- detect train /path/raccoon

Each mode runs the command as its own process with `--out OUT/MODE --quiet`; "busy" first starts
`--busy` processes spinning `while True: pass` and waits until each has written its marker, and kills
them when the command ends. The 1-minute load average is recorded before each run. Then
`visionzoo predict RUN` runs on the first `--limit` photos of `--images` for each run, and the
labels, boxes and scores are compared (equal labels, numbers within 1e-4). One JSON line per run,
then the comparison.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from threads_bench import busy_loops  # this folder: run as a script

os.environ.setdefault("VISIONZOO_OFFLINE", "1")
PHOTO = {".jpg", ".jpeg", ".png"}


def train(command: list[str], out: Path, busy: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        procs = busy_loops(busy, Path(tmp))
        try:
            load = os.getloadavg()[0]
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "visionzoo", *command, "--out", str(out), "--quiet"],
                                  capture_output=True, text=True, check=False)
            wall = time.perf_counter() - start
        finally:
            for p in procs:
                p.kill()
                p.wait()
    (out.parent / f"{out.name}.log").write_text(proc.stderr, "utf-8")
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    config = json.loads((out / "config.json").read_text())
    training = config["training"]
    metrics = {k: v for k, v in next(iter(m for s, m in config["metrics"].items() if s != "best_epoch")).items()
               if isinstance(v, float)}
    auto = config.get("auto")
    return {"run": str(out), "busy_processes": busy, "load_avg_before": round(load, 2), "wall_s": round(wall, 1),
            "chosen": auto["chosen"]["model"] if auto else None, "C": auto["chosen"]["C"] if auto else None,
            "candidates": sorted({r["model"] for r in auto["candidates"]}) if auto else None,
            "epochs_run": config.get("epochs_run"), "epochs_planned": training.get("epochs_planned"),
            "best_epoch": config.get("best_epoch"), "stopped_by": training.get("stopped_by"),
            "threads": training.get("threads"), "held_out": metrics}


def predict(run: Path, photos: list[str]) -> list:
    out = run.parent / f"{run.name}.predictions.json"
    subprocess.run([sys.executable, "-m", "visionzoo", "predict", str(run), *photos, "--out", str(out), "--quiet"],
                   check=True, capture_output=True)
    return json.loads(out.read_text())


def biggest_gap(a, b, path: str = "") -> tuple[float, str]:
    """The largest difference between two JSON values of the same shape (inf where the shapes or texts differ)."""
    if isinstance(a, (bool, str)) or a is None:
        return (0.0, path) if a == b else (float("inf"), path)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b), path
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return max((biggest_gap(a[k], b[k], f"{path}.{k}") for k in a), default=(0.0, path))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return max((biggest_gap(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b))), default=(0.0, path))
    return float("inf"), path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--images", type=Path, required=True, help="photos the saved runs predict (recursively)")
    ap.add_argument("--modes", default="alone,busy")
    ap.add_argument("--busy", type=int, default=2)
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("command", nargs="+", help="after --: the train command without --out")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    photos = sorted(str(p) for p in args.images.rglob("*") if p.suffix.lower() in PHOTO)[:args.limit]
    predictions = {}
    for mode in args.modes.split(","):
        run = args.out / mode
        row = train(args.command, run, args.busy if mode == "busy" else 0)
        predictions[mode] = predict(run, photos)
        row["mode"] = mode
        print(json.dumps(row), flush=True)
        (args.out / f"{mode}.json").write_text(json.dumps(row, indent=2))
    if len(predictions) == 2:
        (a, pa), (b, pb) = predictions.items()
        for p in (*pa, *pb):
            p.pop("seconds", None)
        gap, where = biggest_gap(pa, pb)
        print(json.dumps({"compared": f"{a} vs {b}", "photos": len(photos), "largest_difference": gap,
                          "where": where, "same": gap <= 1e-4}))


if __name__ == "__main__":
    main()
