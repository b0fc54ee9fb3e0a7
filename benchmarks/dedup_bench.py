"""`dedup` on a real photo folder with planted copies: how many copies are found, how many
distinct photos are wrongly paired, and what it costs.

The folder: the 160 real raccoon photos of ../shared/datasets (which hold two byte-identical
pairs and one burst of two frames: 3 true pairs of their own), plus copies of 16 of them of each
kind users make: resized 2/3 and re-saved at quality 60 (the case first reported), resized
0.4x, re-saved at quality 30, and cropped 5% then resized 0.9x. Features: the default model.

    .venv/bin/python benchmarks/dedup_bench.py
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VISIONZOO_OFFLINE", "1")

RACCOON = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raccoon" / "images"
OWN_PAIRS = {("raccoon-11.jpg", "raccoon-116.jpg"), ("raccoon-52.jpg", "raccoon-74.jpg"),
             ("raccoon-186.jpg", "raccoon-199.jpg")}


def copy_kinds(img):
    """(name, copy, JPEG quality) for each kind of copy."""
    from PIL import Image

    w, h = img.size

    def scaled(im, s):
        return im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)

    crop = img.crop((round(w * 0.025), round(h * 0.025), w - round(w * 0.025), h - round(h * 0.025)))
    return [("r067q60", scaled(img, 2 / 3), 60), ("r040", scaled(img, 0.4), 85), ("q30", img, 30),
            ("crop5", scaled(crop, 0.9), 80)]


def main() -> None:
    from PIL import Image

    import visionzoo

    if not RACCOON.is_dir():
        raise SystemExit(f"no real photos at {RACCOON}")
    originals = sorted(RACCOON.glob("*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        truth: set[tuple[str, str]] = set(OWN_PAIRS)
        for p in originals:
            (folder / p.name).write_bytes(p.read_bytes())
        chosen = originals[::10][:16]
        for p in chosen:
            img = Image.open(p).convert("RGB")
            for kind, copy, quality in copy_kinds(img):
                name = f"{kind}_{p.name}"
                copy.save(folder / name, quality=quality)
                truth.add(tuple(sorted((p.name, name))))
        start = time.perf_counter()
        visionzoo.extract([folder], Path(tmp) / "f.parquet")
        extracted = time.perf_counter() - start
        report = visionzoo.find_duplicates(Path(tmp) / "f.parquet")
        seconds = time.perf_counter() - start - extracted
    kinds = ("r067q60", "r040", "q30", "crop5")

    def source(name: str) -> str:
        return name.split("_", 1)[1] if name.startswith(tuple(k + "_" for k in kinds)) else name

    found = set()
    for group in report.groups:
        names = sorted(Path(m.path).name for m in group)
        found |= {(a, b) for i, a in enumerate(names) for b in names[i + 1:]}
    false = [(a, b) for a, b in found
             if source(a) != source(b) and tuple(sorted((source(a), source(b)))) not in OWN_PAIRS]
    print(f"\n{len(originals)} real photos + {len(truth) - len(OWN_PAIRS)} planted copies "
          f"({len(chosen)} photos x {len(kinds)} kinds); a copy is found when it is grouped with its original")
    print("| kind of copy | found |\n|---|---|")
    for kind in kinds:
        pairs = {pair for pair in truth if any(n.startswith(kind + "_") for n in pair)}
        print(f"| {kind} | {len(pairs & found)} / {len(pairs)} |")
    print(f"| the set's own (2 byte-identical pairs, 1 burst) | {len(OWN_PAIRS & found)} / {len(OWN_PAIRS)} |")
    print(f"| distinct photos paired | {len(false)} {sorted(false)[:5] if false else ''} |")
    print(f"\nextract {extracted:.1f} s, dedup {seconds:.1f} s ({report.pairs_checked} candidate pairs hashed)")


if __name__ == "__main__":
    main()
