"""Detection on real photos, every architecture: `detect train` with its defaults on the raccoon set
(160 photos with Pascal VOC boxes, ../shared/datasets/raccoon), on this CPU, offline (bundled
EfficientNet-Lite0 backbone). The seeded 20 % validation split is the held-out set.

Per architecture: epochs run (best) and what stopped training, the whole command's wall time (data,
training, saving, choosing the operating point, the final evaluation), COCO mAP@0.5 and
mAP@0.5:0.95 (pycocotools), and at the stored operating point (what `detect predict` draws by
default): precision, recall and boxes per photo beside the true count. Then `detect predict` on the
validation photos as a whole process (start-up, decode, model, boxes) with PyTorch eager and with
ONNX Runtime (the default on a CPU), and the default architecture's 8 first validation photos as
drawn by default, in one picture (--pictures).

    .venv/bin/python benchmarks/detect_bench.py [--archs fasterrcnn,retinanet,fcos,ssdlite,maskrcnn]
        [--time-budget S] [--pictures DIR]
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

os.environ.setdefault("VISIONZOO_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raccoon"
PREDICT = ("import sys, json; from visionzoo.tasks import detect; "
           "rows = detect.predict(sys.argv[1], json.loads(sys.argv[2]), backend=sys.argv[3]); "
           "print(sum(len(r['detections']) for r in rows))")


def predict_rate(run: str, files: list[str], backend: str) -> float:
    """Images per second of a whole `detect predict` process (the ONNX export cached by a first call)."""
    args = [sys.executable, "-c", PREDICT, run, json.dumps(files), backend]
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return len(files) / (time.perf_counter() - start)


def picture(run: str, files: list[str], out: Path) -> Path:
    """The photos as `detect predict --draw` draws them with its defaults, 4 per row."""
    from PIL import Image

    from visionzoo.tasks import detect

    with tempfile.TemporaryDirectory() as drawn:
        detect.predict(run, files, draw=drawn)
        tiles = []
        for path in sorted(Path(drawn).rglob("*.jpg")):
            img = Image.open(path).convert("RGB")
            img.thumbnail((320, 320))
            tiles.append(img)
    sheet = Image.new("RGB", (4 * 320, -(-len(tiles) // 4) * 320), "white")
    for i, img in enumerate(tiles):
        sheet.paste(img, ((i % 4) * 320 + (320 - img.width) // 2, (i // 4) * 320 + (320 - img.height) // 2))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=90)
    return out


def main() -> None:
    from visionzoo.errors import VisionZooError
    from visionzoo.tasks import detect

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--archs", default="fasterrcnn,retinanet,fcos,ssdlite,maskrcnn")
    parser.add_argument("--time-budget", type=float, default=None, help="[default: the command's default]")
    parser.add_argument("--pictures", type=Path, default=Path(tempfile.gettempdir()) / "vz-detect-bench")
    args = parser.parse_args()
    options = {"time_budget": args.time_budget} if args.time_budget else {}
    print(f"{args.data}: defaults of `visionzoo detect train`, {os.cpu_count()} CPU cores\n")
    print("| arch | epochs run (best), stopped by | train + eval s | val mAP50 | val mAP50-95 | precision | recall | "
          "boxes / photo (true) | predict img/s PyTorch | predict img/s ONNX Runtime |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    from visionzoo.tasks.detect.training import DetectTrainConfig

    default_arch = DetectTrainConfig().arch
    with tempfile.TemporaryDirectory(prefix="vz-detect-bench-") as tmp:
        for arch in args.archs.split(","):
            start = time.perf_counter()
            try:
                result = detect.train(args.data, Path(tmp) / arch, arch=arch, log=None, **options)
            except VisionZooError as exc:
                print(f"| {arch} | not trained: {exc} | | | | | | | | |", flush=True)
                continue
            seconds = time.perf_counter() - start
            cfg, r = result["config"], result["report"]
            files = [e["path"] for e in r["per_image"]]
            predict_rate(result["run_dir"], files[:1], "onnx")           # export once, as a user's first call does
            rates = [predict_rate(result["run_dir"], files, b) for b in ("torch", "onnx")]
            print(f"| {arch} | {cfg['epochs_run']} ({cfg['best_epoch']}), {cfg['training']['stopped_by']} | "
                  f"{seconds:.0f} | {r['map50']:.3f} | {r['map']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                  f"{r['boxes_per_image']:.2f} ({r['true_boxes_per_image']:.2f}) | {rates[0]:.2f} | {rates[1]:.2f} |",
                  flush=True)
            if arch == default_arch:
                shown = picture(result["run_dir"], files[:8], args.pictures / f"{arch}_val8.jpg")
                print(f"  ({arch}: the first 8 validation photos as drawn by default: {shown})", flush=True)


if __name__ == "__main__":
    main()
