"""Segmentation on real microscopy: `segment train` with its defaults on the membrane set (20 EM images
512x512 with binary masks from the U-Net challenge, ../shared/datasets/membrane), on this CPU,
offline (bundled EfficientNet-Lite0 encoder). The seeded 20 % validation split (4 images) is the
held-out set; the table gives the whole command's wall time and the saved run's val mIoU and pixel
accuracy, as `segment evaluate` computes them, at the stored operating point (the foreground
probability threshold chosen on those images) beside argmax (0.5). A second table runs the saved
run on every membrane image with each backend: PyTorch eager and ONNX Runtime (the default on a CPU).

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
    from visionzoo.tasks.segment.data import load_seg_dataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--archs", default="unet")
    parser.add_argument("--epochs", type=int, default=None, help="[default: the command's default]")
    args = parser.parse_args()
    options = {"epochs": args.epochs} if args.epochs else {}
    print(f"{args.data}: defaults of `visionzoo segment train`, {os.cpu_count()} CPU cores\n")
    print("| arch | encoder | epochs run (best) | train + eval s | val mIoU (at 0.5) | threshold | "
          "val pixel accuracy |")
    print("|---|---|---|---|---|---|---|")
    runs = []
    with tempfile.TemporaryDirectory(prefix="vz-segment-bench-") as tmp:
        for arch in args.archs.split(","):
            start = time.perf_counter()
            result = segment.train(args.data, Path(tmp) / arch, arch=arch, log=None, **options)
            seconds = time.perf_counter() - start
            cfg, r = result["config"], result["report"]
            point = cfg.get("operating_point") or {"threshold": 0.5, "miou_at_half": r["miou"]}
            print(f"| {arch} | {cfg['backbone']} | {cfg['epochs_run']} ({cfg['best_epoch']}) | {seconds:.0f} | "
                  f"{r['miou']:.3f} ({point['miou_at_half']:.3f}) | {point['threshold']:.2f} | "
                  f"{r['pixel_accuracy']:.3f} |", flush=True)
            runs.append((arch, result["run_dir"]))
        ds = load_seg_dataset(args.data)
        speed_table(runs, [s.image for s in ds.train + ds.val])


def speed_table(runs: list[tuple[str, str]], files: list[str]) -> None:
    """`segment predict`'s work (decode ahead, model, mask) per backend on the same images, same run."""
    import numpy as np

    from visionzoo.tasks.segment.predictor import iter_masks, load_predictor

    print(f"\n| arch | backend | images/s ({len(files)} images) | pixels agreeing with PyTorch |")
    print("|---|---|---|---|")
    for arch, run in runs:
        masks = {}
        for backend in ("torch", "onnx"):
            predictor = load_predictor(run, backend=backend)           # the ONNX export happens here, once
            start = time.perf_counter()
            masks[backend] = [m for _, _, m, _ in iter_masks(predictor, files, workers=1)]
            rate = len(files) / (time.perf_counter() - start)
            agree = np.mean([(a == b).mean() for a, b in zip(masks["torch"], masks[backend])])
            print(f"| {arch} | {backend} | {rate:.2f} | {agree:.5f} |", flush=True)


if __name__ == "__main__":
    main()
