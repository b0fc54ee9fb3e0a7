"""Demo step: similar-image search and near-duplicates on the sample photos plus planted copies."""
from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console


def similar_step(out: Path, console: Console) -> int:
    from PIL import Image

    from .. import extract
    from ..samples import sample_images
    from ..viz.neighbours import neighbour_grid
    from . import build_index, find_duplicates, search
    from .dedup import write_csv

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
