"""A generated captioning set with exact captions: one shape per image, described by its size,
colour, shape and background ("a large red circle on a blue background").

It is the offline check that the whole pipeline learns (benchmarks/caption_bench.py, the tests)
and a quick smoke test for users: `make_scenes(folder, 400)` writes PNGs and captions.csv.
"""
from __future__ import annotations

import csv
import os
import random
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220), "yellow": (240, 210, 20)}
BACKGROUNDS = {"white": (245, 245, 245), "black": (15, 15, 15), "blue": (40, 80, 200), "green": (40, 150, 60)}
SIZES = {"small": 0.16, "large": 0.34}          # radius as a fraction of the image side
TEMPLATES = ("a {size} {colour} {shape} on a {background} background",
             "there is a {size} {colour} {shape} on {background}")


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int = 18) -> tuple[int, ...]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def draw_scene(shape: str, colour: str, size: str, background: str, rng: random.Random, side: int = 128) -> Image.Image:
    img = Image.new("RGB", (side, side), _jitter(BACKGROUNDS[background], rng))
    r = SIZES[size] * side * rng.uniform(0.9, 1.1)
    margin = r + 0.07 * side                       # stays inside the encoder's centre crop
    cx, cy = rng.uniform(margin, side - margin), rng.uniform(margin, side - margin)
    fill = _jitter(COLOURS[colour], rng)
    d = ImageDraw.Draw(img)
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        s = r * 0.9
        d.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    else:
        d.polygon([(cx, cy - r), (cx - r * 0.95, cy + r * 0.75), (cx + r * 0.95, cy + r * 0.75)], fill=fill)
    return img


def make_scenes(folder: str | os.PathLike, n: int = 400, *, seed: int = 0, captions_per_image: int = 1,
                side: int = 128) -> Path:
    """Write `n` scene PNGs and FOLDER/captions.csv (image,caption; `captions_per_image` rows
    per image from TEMPLATES). The object colour never equals the background."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    combos = [(s, c, z, b) for s in SHAPES for c in COLOURS for z in SIZES for b in BACKGROUNDS if b != c]
    rows = []
    for i in range(n):
        shape, colour, size, background = combos[i % len(combos)] if i < len(combos) else rng.choice(combos)
        name = f"images/scene_{i:04d}.png"
        draw_scene(shape, colour, size, background, rng, side).save(folder / name)
        for template in TEMPLATES[:captions_per_image]:
            rows.append((name, template.format(size=size, colour=colour, shape=shape, background=background)))
    path = folder / "captions.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption"])
        writer.writerows(rows)
    return path
