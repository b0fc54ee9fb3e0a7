"""Time-to-accuracy of `train --strategy linear` vs `finetune` on this CPU, offline.

Data: scikit-image's lfw_subset (100 face / 100 non-face crops), 80/20 stratified split.
For each strategy: wall seconds until the first epoch whose validation accuracy reaches the
target (feature extraction / model loading included), the whole run's wall seconds (report and
saving included), epochs run and the held-out accuracy of the saved run.

    .venv/bin/python benchmarks/train_bench.py [--target 0.95] [--finetune-size 128]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VISIONZOO_OFFLINE", "1")


def run(data: Path, out: Path, **options) -> dict:
    import visionzoo

    marks: list[float] = []
    start = time.perf_counter()
    result = visionzoo.train(data, out, log=lambda m: marks.append(time.perf_counter()) if m.startswith("epoch ")
                             else None, **options)
    total = time.perf_counter() - start
    history = [r for r in _read_history(out)]
    return {"history": history, "epoch_end": [t - start for t in marks], "total": total,
            "accuracy": result["report"]["accuracy"]}


def _read_history(run_dir: Path) -> list[dict]:
    import csv

    return list(csv.DictReader((run_dir / "history.csv").open()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--linear-size", type=int, default=None, help="[default: the model's own, 224]")
    parser.add_argument("--finetune-size", type=int, default=128)
    args = parser.parse_args()

    import torch

    from visionzoo.training.demo_step import lfw_folder

    with tempfile.TemporaryDirectory() as tmp:
        data = lfw_folder(Path(tmp) / "lfw")
        setups = [
            ("linear", dict(strategy="linear", image_size=args.linear_size)),
            ("finetune", dict(strategy="finetune", image_size=args.finetune_size)),
        ]
        rows = []
        for name, options in setups:
            r = run(data, Path(tmp) / name, **options)
            reached = next((t for t, h in zip(r["epoch_end"], r["history"]) if float(h["val_acc"]) >= args.target), None)
            size = options["image_size"] or 224
            rows.append((name, size, len(r["history"]), reached, r["total"], r["accuracy"]))

    print(f"\ntime-to-accuracy on lfw_subset (160 train / 40 val), efficientnet_lite0, "
          f"{torch.get_num_threads()} torch threads, target val acc {args.target}")
    print(f"{'strategy':<10}{'size':>6}{'epochs':>8}{'s to target':>13}{'s total':>10}{'held-out acc':>14}")
    for name, size, epochs, reached, total, acc in rows:
        print(f"{name:<10}{size:>6}{epochs:>8}{(f'{reached:.1f}' if reached else 'never'):>13}{total:>10.1f}{acc:>14.3f}")
    (lin, ft) = rows
    if lin[3] and ft[3]:
        print(f"finetune / linear time-to-target ratio: {ft[3] / lin[3]:.1f}x")


if __name__ == "__main__":
    main()
