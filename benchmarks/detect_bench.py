"""Detection on real photos: `detect train` with its defaults on the raccoon set (160 photos with
Pascal VOC boxes, ../shared/datasets/raccoon), on this CPU, offline (bundled EfficientNet-Lite0
backbone). The seeded 20 % validation split is the held-out set; the table gives the whole
command's wall time (data reading, training, saving, the final evaluation of the saved run) and
the saved run's COCO mAP@0.5 and mAP@0.5:0.95 (pycocotools).

    .venv/bin/python benchmarks/detect_bench.py [--archs fasterrcnn,fcos] [--epochs N]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VISIONZOO_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raccoon"


def main() -> None:
    from visionzoo.tasks import detect

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--archs", default="fasterrcnn")
    parser.add_argument("--epochs", type=int, default=None, help="[default: the command's default]")
    args = parser.parse_args()
    options = {"epochs": args.epochs} if args.epochs else {}
    print(f"{args.data}: defaults of `visionzoo detect train`, {os.cpu_count()} CPU cores\n")
    print("| arch | backbone | epochs run (best) | train + eval s | val mAP50 | val mAP50-95 |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="vz-detect-bench-") as tmp:
        for arch in args.archs.split(","):
            start = time.perf_counter()
            result = detect.train(args.data, Path(tmp) / arch, arch=arch, log=None, **options)
            seconds = time.perf_counter() - start
            cfg, r = result["config"], result["report"]
            print(f"| {arch} | {cfg['backbone']} | {cfg['epochs_run']} ({cfg['best_epoch']}) | {seconds:.0f} | "
                  f"{r['map50']:.3f} | {r['map']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
