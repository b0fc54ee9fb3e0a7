"""Demo step: a real transfer-learning run on scikit-image's face / non-face crops, offline."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from rich.console import Console


def lfw_folder(root: Path) -> Path:
    """skimage's lfw_subset (100 faces, 100 non-faces, 25x25 gray) as class folders face/ nonface/."""
    from PIL import Image
    from skimage import data

    images = data.lfw_subset()
    for i, img in enumerate(images):
        folder = root / ("face" if i < 100 else "nonface")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return root


def train_step(out: Path, console: Console) -> int:
    from ..eval.report import summary_line
    from .run import train

    data = lfw_folder(out / "lfw_faces")
    run = out / "train_lfw"
    shutil.rmtree(run, ignore_errors=True)  # the demo starts its run afresh each time
    result = train(data, run, strategy="linear", image_size=128, log=lambda m: None)
    report = result["report"]
    console.print("  linear head on efficientnet_lite0 features, 160 training / 40 held-out images", highlight=False)
    console.print(f"  held-out {summary_line(report)}", highlight=False)
    for label, m in report["per_class"].items():
        console.print(f"    {label:<8} precision {m['precision']:.3f}  recall {m['recall']:.3f}  F1 {m['f1']:.3f}",
                      highlight=False)
    console.print(f"  wrote {run}/ (model.safetensors, config.json, history.csv, curves.png, report.json, ...);"
                  f" try: visionzoo predict {run} {data / 'face'}", highlight=False)
    return 1 if report["failures"] else 0
