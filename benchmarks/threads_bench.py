"""One training step's time against PyTorch's intra-op thread count, alone and with busy processes
beside it: the numbers behind `cpus.default_threads`.

The step: EfficientNet-Lite0 (bundled weights, every layer trainable), a batch of 224 px images,
forward + backward + AdamW, as `train --strategy finetune` takes it. Each thread count runs in its
own process (a process's OpenMP pool is fixed once it has run), one warm-up step, then the median of
`--steps` timed steps. "busy": `--busy` processes spinning `while True: pass` are started (and known
to be running) before the step process starts, and killed after.

    .venv/bin/python benchmarks/threads_bench.py [--threads 1,2] [--busy 2] [--batch-size 16] [--steps 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VISIONZOO_OFFLINE", "1")

STEP = r"""
import json, sys, time, torch, visionzoo
torch.set_num_threads(int(sys.argv[1]))
batch, steps = int(sys.argv[2]), int(sys.argv[3])
model = visionzoo.load_model("efficientnet_lite0", num_classes=5).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
x, y = torch.randn(batch, 3, 224, 224), torch.arange(batch) % 5
times = []
for i in range(steps + 1):
    t = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - t)
print(json.dumps(times[1:]))
"""

SPIN = "import sys, pathlib; pathlib.Path(sys.argv[1]).touch()\nwhile True: pass"


def busy_loops(n: int, folder: Path) -> list[subprocess.Popen]:
    """`n` spinning processes, returned once each has written its marker (so each is in its loop)."""
    procs = [subprocess.Popen([sys.executable, "-c", SPIN, str(folder / f"spin{i}")]) for i in range(n)]
    while not all((folder / f"spin{i}").exists() for i in range(n)):
        time.sleep(0.05)
    return procs


def step_seconds(threads: int, batch: int, steps: int) -> list[float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", STEP, str(threads), str(batch), str(steps)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--busy", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for load in ("quiet", "busy"):
        for n in [int(t) for t in args.threads.split(",")]:
            with tempfile.TemporaryDirectory() as tmp:
                procs = busy_loops(args.busy, Path(tmp)) if load == "busy" else []
                try:
                    avg = os.getloadavg()[0]
                    times = step_seconds(n, args.batch_size, args.steps)
                finally:
                    for p in procs:
                        p.kill()
                        p.wait()
            rows.append({"load": load, "threads": n, "median_s": round(statistics.median(times), 2),
                         "steps_s": [round(t, 2) for t in times], "loadavg_1min_before": round(avg, 2)})
            print(json.dumps(rows[-1]), flush=True)
    print(f"| machine | threads | one step, s (median of {args.steps}) | load avg before |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['load']} | {r['threads']} | {r['median_s']} | {r['loadavg_1min_before']} |")


if __name__ == "__main__":
    main()
