"""Demo step: features of the sample photos into a Parquet feature folder, and what it holds."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from rich.console import Console


def extract_step(out: Path, console: Console) -> int:
    from ..samples import sample_images
    from ..store import load_features, read_manifest
    from .runner import extract

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
