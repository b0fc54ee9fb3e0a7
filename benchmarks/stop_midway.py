"""kill -TERM and kill -9 in the middle of `detect predict VIDEO --track --draw`, `extract` and
`faces index` (issue 34): what is left on disk, whether each file opens, and what --resume does.
The state is made certain before each signal (20 rows written, two shards finished).

    .venv/bin/python benchmarks/stop_midway.py --run DETECTION_RUN [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pyarrow.parquet as pq

ENV = {**os.environ, "VISIONZOO_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
BOTTLE = str(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "video" / "bottle-detection.mp4")

def hidden_rows(out: Path) -> int:
    """Rows of a running command's --out FILE.jsonl (a hidden temporary beside it until the end)."""
    try:
        return sum(len(p.read_text().splitlines()) for p in out.parent.glob(f".{out.name}.*.tmp"))
    except FileNotFoundError:
        return 0


def opens(f: Path) -> str:
    """Whether a file left behind opens, and what it holds."""
    try:
        if f.name.endswith(".tmp"):
            return "(hidden temporary)"
        if f.suffix == ".jsonl":
            return f"opens: {len([json.loads(line) for line in f.read_text().splitlines()])} JSON rows"
        if f.suffix == ".mp4":
            with av.open(str(f)) as c:
                return f"opens: {sum(1 for _ in c.decode(video=0))} frames"
        if f.suffix == ".parquet":
            return f"opens: {pq.read_table(f).num_rows} rows"
        if f.suffix == ".json":
            d = json.loads(f.read_text())
            return f"opens: status={d.get('status') if isinstance(d, dict) else '-'}"
    except Exception as exc:  # noqa: BLE001 - the report says it
        return f"DOES NOT OPEN: {exc}"
    return ""


def stop(name: str, args: list, ready, sig: int, folder: Path) -> None:
    """Start `visionzoo ARGS`, wait until `ready()`, send `sig` (SIGTERM to the command as `kill PID`
    does; SIGKILL to it and every process it started, as a crash), then list what is left."""
    log = folder / "log.txt"
    p = subprocess.Popen([sys.executable, "-m", "visionzoo", *map(str, args), "--quiet"], env=ENV,
                         stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    while not ready():
        if p.poll() is not None:
            raise SystemExit(f"{name} ended before the signal:\n{log.read_text()}")
        time.sleep(0.05)
    (os.kill if sig == signal.SIGTERM else os.killpg)(p.pid, sig)
    p.wait()
    print(f"\n## {name}: {signal.Signals(sig).name}, exit {p.returncode}")
    for line in log.read_text().splitlines():
        print("   log:", line)
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != "log.txt":
            print(f"   {f.relative_to(folder)}  {f.stat().st_size:,} B  {opens(f)}")


def photos(folder: Path, n: int = 60) -> Path:
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(getattr(data, name)()) for name in ("chelsea", "coffee", "astronaut", "rocket")]
    for i in range(n):
        images[i % len(images)].save(folder / f"{i:03d}.jpg", quality=90)
    return folder


def measure(run_dir: Path, ph: Path, work: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        tag = signal.Signals(sig).name
        f = work / f"detect-{tag}"
        (f / "d").mkdir(parents=True)
        out = f / "boxes.jsonl"
        out.write_text('{"earlier": true}\n')
        stop("detect predict VIDEO --track --draw d/ --out boxes.jsonl (which held 1 earlier row)",
             ["detect", "predict", run_dir, BOTTLE, "--track", "--draw", f / "d", "--out", out],
             lambda out=out: hidden_rows(out) >= 20, sig, f)
        for cmd in ("extract", "faces index"):
            f = work / f"{cmd.replace(' ', '_')}-{tag}"
            f.mkdir(parents=True)
            out = f / "out.parquet"
            args = [*cmd.split(), ph, "--out", out, "--partition-size", "2"]
            stop(f"{cmd} PHOTOS --partition-size 2", args,
                 lambda out=out: len(list(out.glob("part-*.parquet"))) >= 2, sig, f)
            r = subprocess.run([sys.executable, "-m", "visionzoo", *map(str, args), "--resume", "--quiet"], env=ENV,
                               capture_output=True, text=True, check=False)
            status = json.loads((out / "_manifest.json").read_text()).get("status")
            print(f"   --resume: exit {r.returncode}; manifest status {status}; {r.stderr.strip().splitlines()[-1:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a detection run folder (`visionzoo detect train ...`)")
    ap.add_argument("--work", default="stop_midway", help="scratch folder (emptied first)")
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    measure(Path(args.run).resolve(), photos(work / "photos"), work)


if __name__ == "__main__":
    main()
