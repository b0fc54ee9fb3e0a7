"""Data-parallel training (`train --num-workers N`, DDP over gloo) against one process, on this CPU.

Data: scikit-image's lfw_subset (100 face / 100 non-face crops) as class folders, half held out
for validation (100 images: one image is one point of accuracy). Every run has the same seed and
global batch. Columns: wall seconds of the whole `train` call (process start-up, model loading,
final evaluation and saving included), the epochs' own seconds (training + validation, from
history.csv), training images/s over those epochs, and the saved run's validation accuracy.

On a machine with only two cores both ranks share the cores one process already uses, so no
speed-up is expected here: the table shows correctness (same accuracy) and DDP's overhead.

    .venv/bin/python benchmarks/ddp_bench.py [--workers 1 2] [--strategies finetune scratch] [--device cpu]
"""
from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VISIONZOO_OFFLINE", "1")

RECIPES = {  # lfw crops are 25x25 pixels: 96-pixel inputs are plenty
    "finetune": dict(strategy="finetune", epochs=4, head_epochs=1, image_size=96),
    "scratch": dict(strategy="scratch", model="resnet18", epochs=6, image_size=64),
}


def main() -> None:
    import visionzoo
    from visionzoo.demo import lfw_folder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="--num-workers values to compare")
    parser.add_argument("--strategies", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", help="cpu to time gloo ranks on a machine with GPUs too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vz-ddp-bench-") as tmp:
        data = lfw_folder(Path(tmp) / "lfw")
        print(f"lfw_subset: 100 training / 100 validation images, global batch {args.batch_size}, seed 0, "
              f"{os.cpu_count()} CPU cores, device {args.device}\n")
        print("| strategy | model | --num-workers | wall s | epoch s | train images/s | val accuracy |")
        print("|---|---|---|---|---|---|---|")
        for strategy in args.strategies:
            recipe = RECIPES[strategy]
            for n in args.workers:
                out = Path(tmp) / f"{strategy}{n}"
                start = time.perf_counter()
                result = visionzoo.train(data, out, log=None, val_split=0.5, batch_size=args.batch_size, seed=0,
                                         num_workers=n, device=args.device, **recipe)
                wall = time.perf_counter() - start
                rows = list(csv.DictReader((out / "history.csv").open()))
                epoch_s = sum(float(r["seconds"]) for r in rows)
                seen = len(rows) * (100 // args.batch_size) * args.batch_size  # full batches only
                print(f"| {strategy} | {result['config']['training']['model']} | {n} | {wall:.1f} | {epoch_s:.1f} | "
                      f"{seen / epoch_s:.1f} | {result['report']['accuracy']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
