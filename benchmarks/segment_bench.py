"""Segmentation on real microscopy: `segment train` with its defaults on the membrane set (20 EM images
512x512 with binary masks from the U-Net challenge, ../shared/datasets/membrane), on this CPU,
offline (bundled EfficientNet-Lite0 encoder). The seeded 20 % validation split (4 images) is the
held-out set; the table gives the whole command's wall time and the saved run's val mIoU and pixel
accuracy, as `segment evaluate` computes them.

    .venv/bin/python benchmarks/segment_bench.py [--archs unet,deeplabv3plus,fpn] [--epochs N]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VISIONZOO_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "membrane"


def main() -> None:
    from visionzoo.tasks import segment

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--archs", default="unet")
    parser.add_argument("--epochs", type=int, default=None, help="[default: the command's default]")
    args = parser.parse_args()
    options = {"epochs": args.epochs} if args.epochs else {}
    print(f"{args.data}: defaults of `visionzoo segment train`, {os.cpu_count()} CPU cores\n")
    print("| arch | encoder | epochs run (best) | train + eval s | val mIoU | val pixel accuracy |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="vz-segment-bench-") as tmp:
        for arch in args.archs.split(","):
            start = time.perf_counter()
            result = segment.train(args.data, Path(tmp) / arch, arch=arch, log=None, **options)
            seconds = time.perf_counter() - start
            cfg, r = result["config"], result["report"]
            print(f"| {arch} | {cfg['backbone']} | {cfg['epochs_run']} ({cfg['best_epoch']}) | {seconds:.0f} | "
                  f"{r['miou']:.3f} | {r['pixel_accuracy']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
