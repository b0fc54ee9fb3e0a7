"""`visionzoo train` on real photos, offline: the default (`--strategy auto`) against each of its
candidates and the older fixed recipes, per data set.

Data sets (all real photos, built on the fly):
- lfw: scikit-image's lfw_subset, 100 face / 100 non-face crops (25 px, easy);
- raccoon: /work/shared/datasets/raccoon (VOC boxes): a crop of each raccoon box (50-100 % of its
  sides) vs. the largest raccoon-free strip of the same photo;
- raccoon-parts: harder: two small pieces of each raccoon box (30-60 % of its sides: fur, a paw,
  an ear) vs. two pieces of the same photo's raccoon-free strip.
Each set is split 80/20 (stratified, seed 0), as `train` does by default.

Per set, one table:
- one row per auto candidate: its best C by 5-fold CV on the training split, the CV accuracy,
  and the held-out accuracy that candidate would have reached (fitted exactly as auto fits the
  winner), with the seconds its features took (images + mirrors);
- "auto pick": the whole `visionzoo train DATA --out RUN` command (no strategy or model flags) as a
  subprocess: its choice, held-out accuracy and macro-F1 of the saved run, wall seconds;
- "linear (old)": `--strategy linear --model efficientnet_lite0`; "finetune (old default)":
  `--strategy finetune --model efficientnet_lite0` (skip with --no-finetune).

    .venv/bin/python benchmarks/train_bench.py [--sets lfw,raccoon,raccoon-parts] [--no-finetune]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

os.environ.setdefault("VISIONZOO_OFFLINE", "1")
RACCOON = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raccoon"


def _raccoon_boxes():
    from PIL import Image

    for xml in sorted((RACCOON / "annotations").glob("*.xml")):
        tree = ET.parse(xml)
        img = Image.open(RACCOON / "images" / tree.findtext("filename")).convert("RGB")
        boxes = [[int(float(o.find("bndbox").findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")]
                 for o in tree.findall("object")]
        yield xml.stem, img, boxes


def _free_strip(size: tuple[int, int], boxes: list[list[int]], min_side: int = 64):
    """The largest full-width or full-height strip of the photo outside every box (None if too thin)."""
    w, h = size
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    strips = [s for s in ((0, 0, x0, h), (x1, 0, w, h), (0, 0, w, y0), (0, y1, w, h))
              if min(s[2] - s[0], s[3] - s[1]) >= min_side]
    return max(strips, key=lambda s: (s[2] - s[0]) * (s[3] - s[1])) if strips else None


def _piece(rng: random.Random, box, lo: float, hi: float, min_side: int = 32):
    bw, bh = box[2] - box[0], box[3] - box[1]
    cw = max(min(min_side, bw), int(bw * rng.uniform(lo, hi)))
    ch = max(min(min_side, bh), int(bh * rng.uniform(lo, hi)))
    left, top = box[0] + rng.randint(0, max(0, bw - cw)), box[1] + rng.randint(0, max(0, bh - ch))
    return left, top, left + cw, top + ch


def raccoon_folder(root: Path, *, parts: bool = False) -> Path:
    """Raccoon vs background crops of the raccoon photos (see the module docstring)."""
    rng = random.Random(0)
    for cls in ("raccoon", "background"):
        (root / cls).mkdir(parents=True, exist_ok=True)
    for stem, img, boxes in _raccoon_boxes():
        strip = _free_strip(img.size, boxes)
        n, lo, hi = (2, 0.3, 0.6) if parts else (1, 0.5, 1.0)
        for i in range(n):
            img.crop(_piece(rng, boxes[0], lo, hi)).save(root / "raccoon" / f"{stem}_{i}.jpg", quality=90)
            if strip is not None:
                crop = _piece(rng, strip, 0.5, 1.0, 48) if parts else strip
                img.crop(crop).save(root / "background" / f"{stem}_{i}.jpg", quality=90)
    return root


def build(name: str, root: Path) -> Path:
    if name == "lfw":
        from visionzoo.demo import lfw_folder

        return lfw_folder(root / name)
    if not RACCOON.is_dir():
        raise SystemExit(f"{RACCOON} is missing (the raccoon data set lives in shared/datasets)")
    return raccoon_folder(root / name, parts=name == "raccoon-parts")


def command(data: Path, out: Path, *flags: str) -> tuple[dict, dict, float]:
    """Run `visionzoo train DATA --out OUT FLAGS` as its own process: (report, config, wall seconds)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "visionzoo", "train", str(data), "--out", str(out), "--quiet",
                           *flags], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"train {' '.join(flags)} failed:\n{proc.stderr[-3000:]}")
    return (json.loads((out / "report.json").read_text()), json.loads((out / "config.json").read_text()), wall)


def candidates(data: Path) -> list[dict]:
    """Each auto candidate's CV and held-out accuracy, computed as auto computes them."""
    import numpy as np
    import torch

    from visionzoo.tasks.classify.auto import _best, candidate_models, cross_validate, extract_candidate, fit_head
    from visionzoo.tasks.classify.config import TrainConfig
    from visionzoo.tasks.classify.data import load_dataset

    cfg = TrainConfig()
    ds = load_dataset(data, val_split=cfg.val_split, seed=cfg.seed)
    rows = []
    for name in candidate_models("auto"):
        train = extract_candidate(name, ds.train.paths, cfg, failures={})
        held = extract_candidate(name, ds.val.paths, cfg, failures={})
        target = dict(zip(ds.train.paths + ds.val.paths, ds.train.targets + ds.val.targets))
        y = np.asarray([target[p] for p in train.paths])
        k = int(min(5, np.bincount(y).min()))
        best = _best(cross_validate(train, y, k, cfg.seed))
        weight, bias = fit_head(*train.training_rows(y), best["C"], len(ds.labels))
        pred = (torch.from_numpy(held.features) @ weight.T + bias).argmax(1).numpy()
        acc = float((pred == np.asarray([target[p] for p in held.paths])).mean())
        rows.append({"model": name, "size": train.image_size, "C": best["C"], "cv": best["cv_accuracy"],
                     "cv_std": best["cv_accuracy_std"], "held_out": acc, "seconds": train.seconds + held.seconds})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="lfw,raccoon,raccoon-parts")
    parser.add_argument("--no-finetune", action="store_true", help="skip the (slow) old default finetune rows")
    args = parser.parse_args()

    import torch

    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            data = build(name, Path(tmp) / "data")
            counts = {d.name: len(list(d.iterdir())) for d in sorted(data.iterdir())}
            rows = [(f"{r['model']} (candidate)", r["size"], f"{r['C']:g}", f"{r['cv']:.4f} ± {r['cv_std']:.4f}",
                     f"{r['held_out']:.4f}", "", f"{r['seconds']:.1f} (features)") for r in candidates(data)]
            report, config, wall = command(data, Path(tmp) / f"{name}-auto")
            pick = config["auto"]["chosen"]
            best = next(r for r in config["auto"]["candidates"] if (r["model"], r["C"]) == (pick["model"], pick["C"]))
            rows.append((f"auto pick: {pick['model']}", pick["image_size"], f"{pick['C']:g}",
                         f"{best['cv_accuracy']:.4f} ± {best['cv_accuracy_std']:.4f}", f"{report['accuracy']:.4f}",
                         f"{report['macro_f1']:.4f}", f"{wall:.1f} (whole command)"))
            old = [("linear (old)", ["--strategy", "linear", "--model", "efficientnet_lite0"])]
            if not args.no_finetune:
                old.append(("finetune (old default)", ["--strategy", "finetune", "--model", "efficientnet_lite0"]))
            for label, flags in old:
                report, config, wall = command(data, Path(tmp) / f"{name}-{flags[1]}", *flags)
                rows.append((label, config["preprocessing"]["input_size"][-1], "", "", f"{report['accuracy']:.4f}",
                             f"{report['macro_f1']:.4f}", f"{wall:.1f} (whole command)"))
            tables.append((name, counts, rows))

    print(f"\nvisionzoo train on real photos, 80/20 split, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads")
    for name, counts, rows in tables:
        print(f"\n### {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        print("| run | size | C | CV accuracy (train split) | held-out accuracy | held-out macro-F1 | seconds |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(str(c) for c in r) + " |")


if __name__ == "__main__":
    main()
