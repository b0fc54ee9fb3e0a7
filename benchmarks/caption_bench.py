"""Captioning on a generated set of simple scenes with exact captions, on this CPU, offline.

Each image shows one shape ("a large red circle on a blue background"); captions name its size,
colour, shape and background, so a captioner that works gets them word for word. The set is split
by image (80 / 10 / 10); the table gives, per decoder, the whole `caption train` wall time
(feature extraction included) and the held-out test split's corpus BLEU-1..4 and CIDEr.

    .venv/bin/python benchmarks/caption_bench.py [--images 600] [--epochs 30]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VISIONZOO_OFFLINE", "1")


def main() -> None:
    from visionzoo.tasks import caption
    from visionzoo.tasks.caption.scenes import make_scenes

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--decoders", default="lstm,transformer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vz-caption-bench-") as tmp:
        data = Path(tmp) / "scenes"
        make_scenes(data, args.images)
        print(f"{args.images} generated scenes, 80/10/10 split by image, {args.epochs} epochs max, "
              f"encoder efficientnet_lite0 (frozen, bundled weights), {os.cpu_count()} CPU cores\n")
        print("| decoder | train s (whole command) | best epoch | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | CIDEr |")
        print("|---|---|---|---|---|---|---|---|")
        for decoder in args.decoders.split(","):
            start = time.perf_counter()
            result = caption.train(data, Path(tmp) / decoder, decoder=decoder, epochs=args.epochs, log=lambda _: None)
            seconds = time.perf_counter() - start
            r = result["report"]
            print(f"| {decoder} | {seconds:.0f} | {result['config'].get('best_epoch', '?')} | {r['bleu1']:.3f} | "
                  f"{r['bleu2']:.3f} | {r['bleu3']:.3f} | {r['bleu4']:.3f} | {r['cider']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
