"""The demo: each step runs one feature on the bundled sample photos and writes into one folder.

A step returns its exit status (0 ok, 1 partial); adding a feature to the demo is adding a step.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np
from rich.console import Console

from .samples import sample_images


def classify_step(out: Path, console: Console) -> int:
    import json

    from .batch import classify
    from .viz.grid import topk_grid

    results = classify(sample_images(), top_k=5)
    for r in results:
        best = r.predictions[0]
        console.print(f"  {Path(r.path).name:<14} {best.label} ({best.probability:.1%})", highlight=False)
    (out / "classify.json").write_text(json.dumps([r.to_dict() for r in results], indent=2), "utf-8")
    topk_grid(results, out / "classify_grid.png")
    console.print(f"  wrote {out / 'classify.json'} and {out / 'classify_grid.png'}", highlight=False)
    return 1 if any(r.error for r in results) else 0


def extract_step(out: Path, console: Console) -> int:
    from .batch import extract
    from .store import load_features, read_manifest

    work = out / "extract"
    shutil.rmtree(work, ignore_errors=True)  # this step's own folder: a re-run starts clean
    result = extract(sample_images(), work / "features.parquet")
    paths, matrix = load_features(result.outputs[0])
    manifest = read_manifest(result.outputs[0])
    console.print(
        f"  {result.count} images -> {matrix.shape[0]} x {matrix.shape[1]} {manifest['layer']} features of "
        f"{manifest['model']} ({result.backends[0]} backend, {result.seconds:.1f}s)", highlight=False)
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True).clip(min=1e-12)
    sim = unit @ unit.T
    first = Path(paths[0]).name
    others = ", ".join(f"{Path(p).name} {s:.2f}" for p, s in zip(paths[1:], sim[0, 1:]))
    console.print(f"  cosine similarity of {first} to: {others}", highlight=False)
    console.print(f"  wrote {result.outputs[0]}/ (part-*.parquet shards, _manifest.json, _failures.parquet); "
                  f"load with visionzoo.load_features(path)", highlight=False)
    return result.exit_code


def similar_step(out: Path, console: Console) -> int:
    from PIL import Image

    from .batch import extract
    from .downstream import build_index, find_duplicates, search
    from .downstream.dedup import write_csv
    from .viz.neighbours import neighbour_grid

    work = out / "similar"
    shutil.rmtree(work, ignore_errors=True)  # this step's own folder: a re-run starts clean
    photos = work / "photos"
    photos.mkdir(parents=True)
    samples = {Path(p).stem: p for p in sample_images()}
    for p in samples.values():
        shutil.copy(p, photos)
    cat = Image.open(samples["chelsea"])
    cat.resize((cat.width // 2, cat.height // 2)).save(photos / "chelsea_small.jpg", quality=90)
    Image.open(samples["coffee"]).save(photos / "coffee_q25.jpg", quality=25)
    console.print(f"  {len(samples)} photos + a half-size and a JPEG q=25 copy in {photos}", highlight=False)

    features = work / "features.parquet"
    extract([str(photos)], features)
    index = build_index(features, work / "index")
    results = search(index, [samples["chelsea"], samples["rocket"]], k=3)  # files outside the index: embedded
    for r in results:
        hits = ", ".join(f"{Path(n.path).name} ({n.score:.3f})" for n in r.neighbours)
        console.print(f"  similar to {Path(r.query).name}: {hits}", highlight=False)
    neighbour_grid(results, work / "neighbours.png")
    report = find_duplicates(features)
    for group in report.groups:
        console.print("  duplicates: " + ", ".join(f"{m.action} {Path(m.path).name}" for m in group),
                      highlight=False)
    write_csv(report, work / "duplicates.csv")
    console.print(f"  wrote {work / 'neighbours.png'} and {work / 'duplicates.csv'}", highlight=False)
    return 1 if report.unreadable or any(r.error for r in results) else 0


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
    from .tasks.classify import train
    from .tasks.classify.evaluation import summary_line

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


STEPS: list[tuple[str, Callable[[Path, Console], int]]] = [
    ("classify sample photos with efficientnet_lite0 (offline ImageNet weights)", classify_step),
    ("extract features of the sample photos to a Parquet feature folder", extract_step),
    ("find similar images and near-duplicates in stored features", similar_step),
    ("transfer learning: train a face / non-face classifier on lfw_subset (linear head)", train_step),
]


def run_demo(out: str | Path = "visionzoo-demo", console: Console | None = None) -> int:
    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    status = 0
    for n, (title, step) in enumerate(STEPS, 1):
        console.rule(f"[bold]{n}/{len(STEPS)}[/bold] {title}")
        status = max(status, step(out, console))
    console.rule(f"demo outputs are in {out.resolve()}")
    return status
