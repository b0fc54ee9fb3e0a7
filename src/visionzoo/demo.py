"""The demo: each step runs one feature on the bundled sample photos and writes into one folder.

Later features add a step function to STEPS; a step returns its exit status (0 ok, 1 partial).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from rich.console import Console

from .batch.demo_step import extract_step
from .downstream.demo_step import similar_step
from .samples import sample_images
from .training.demo_step import train_step


def classify_step(out: Path, console: Console) -> int:
    import json

    from . import classify
    from .viz.grid import topk_grid

    results = classify(sample_images(), top_k=5)
    for r in results:
        best = r.predictions[0]
        console.print(f"  {Path(r.path).name:<14} {best.label} ({best.probability:.1%})", highlight=False)
    (out / "classify.json").write_text(json.dumps([r.to_dict() for r in results], indent=2), "utf-8")
    topk_grid(results, out / "classify_grid.png")
    console.print(f"  wrote {out / 'classify.json'} and {out / 'classify_grid.png'}", highlight=False)
    return 1 if any(r.error for r in results) else 0


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
