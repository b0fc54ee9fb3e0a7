"""Every picture in the docs, made by real `visionzoo` runs on the example data sets.

    python docs/gallery.py              # make the pictures that are missing (runs are cached)
    python docs/gallery.py --force      # make every picture again from the cached runs
    python docs/gallery.py --only detect,segment

The pictures go to docs/gallery/ and are what the commands draw with their default settings
(strips put several of them side by side; nothing is retouched). Training runs are short
(time budgets / epoch limits below) and cached in .cache/docs/runs, so a second build trains
nothing; delete that folder to train again. Data: ../shared/datasets beside the repository
(or $VISIONZOO_DATASETS) and scikit-image's photos.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "gallery"
CACHE = Path(os.environ.get("VISIONZOO_DOCS_CACHE", ROOT / ".cache" / "docs")).resolve()
RUNS = CACHE / "runs"
DATASETS = Path(os.environ.get("VISIONZOO_DATASETS", ROOT.parent / "shared" / "datasets")).resolve()

STEPS: dict[str, tuple[tuple[str, ...], Callable[[], None]]] = {}


def step(*pictures: str) -> Callable:
    """Register a step that makes `pictures` (names under docs/gallery/)."""
    def register(fn: Callable[[], None]) -> Callable[[], None]:
        STEPS[fn.__name__] = (pictures, fn)
        return fn
    return register


def vz(*args: object, ok: tuple[int, ...] = (0,)) -> None:
    """`visionzoo ARGS` as a user runs it (this interpreter, so the checkout's package)."""
    cmd = [sys.executable, "-m", "visionzoo", *map(str, args)]
    print("  $ visionzoo " + " ".join(map(str, args)), flush=True)
    proc = subprocess.run(cmd, cwd=CACHE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode not in ok:
        sys.exit(f"gallery: `visionzoo {' '.join(map(str, args))}` exited {proc.returncode}:\n{proc.stdout[-3000:]}")


def trained(name: str, *args: object) -> Path:
    """A cached run folder: trained with `visionzoo ARGS --out RUNS/name` the first time only."""
    run = RUNS / name
    if not (run / "config.json").exists():
        shutil.rmtree(run, ignore_errors=True)
        vz(*args, "--out", run, "--quiet", ok=(0, 1))
    return run


def strip(images: list[Image.Image | Path], out: str, height: int = 300, gap: int = 6) -> None:
    """Pictures side by side at one height, on white (a strip of what the commands drew)."""
    tiles = []
    for im in images:
        im = ImageOps.exif_transpose(Image.open(im)) if isinstance(im, Path) else im
        im = im.convert("RGB")
        tiles.append(im.resize((max(1, round(im.width * height / im.height)), height), Image.LANCZOS))
    canvas = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), height), "white")
    x = 0
    for t in tiles:
        canvas.paste(t, (x, 0))
        x += t.width + gap
    save(canvas, out)


def save(im: Image.Image, out: str) -> None:
    path = OUT / out
    if path.suffix == ".jpg":
        im.convert("RGB").save(path, quality=88, optimize=True)
    else:
        im.save(path, optimize=True)


def copy(src: Path, out: str, width: int | None = None) -> None:
    im = Image.open(src)
    if width and im.width > width:
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    save(im, out)


def photos() -> Path:
    """scikit-image's real photos and a few raccoons, as JPEG files."""
    folder = CACHE / "photos"
    if not folder.exists():
        from skimage import data

        tmp = folder.with_name("photos.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for name in ("chelsea", "coffee", "astronaut"):
            Image.fromarray(getattr(data, name)()).save(tmp / f"{name}.jpg", quality=92)
        shutil.copy(DATASETS / "raccoon" / "images" / "raccoon-12.jpg", tmp / "raccoon-12.jpg")
        tmp.rename(folder)
    return folder


def collection() -> Path:
    """A mixed photo collection (raccoons, microscopy, portraits, scikit-image photos) and its features."""
    folder = CACHE / "collection"
    if not folder.exists():
        tmp = folder.with_name("collection.tmp")
        for sub, src in (("raccoon", DATASETS / "raccoon" / "images"), ("microscopy", DATASETS / "membrane" / "image")):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
            for f in sorted(src.iterdir()):
                shutil.copy(f, tmp / sub / f.name)
        (tmp / "portraits").mkdir()
        for person in sorted(p for p in (DATASETS / "faces").iterdir() if p.is_dir()):
            shutil.copy(person / "1.jpg", tmp / "portraits" / f"{person.name}.jpg")
        shutil.copytree(photos(), tmp / "photos", ignore=shutil.ignore_patterns("raccoon-*"))
        tmp.rename(folder)
    feats = CACHE / "collection.parquet"
    if not (feats / "_manifest.json").exists():
        shutil.rmtree(feats, ignore_errors=True)
        vz("extract", folder, "--out", feats, "--quiet")
    return feats


@step("classify.jpg")
def classify() -> None:
    vz("classify", photos(), "--top-k", 3, "--grid", CACHE / "classify.png", "--quiet")
    copy(CACHE / "classify.png", "classify.jpg")


@step("neighbours.jpg")
def search() -> None:
    feats = collection()
    query = CACHE / "collection" / "raccoon" / "raccoon-41.jpg"
    vz("search", feats, query, "--top-k", 5, "--grid", CACHE / "neighbours.png", "--quiet")
    copy(CACHE / "neighbours.png", "neighbours.jpg")


@step("map.png", "cluster.jpg")
def cluster() -> None:
    feats = collection()
    vz("map", feats, "--out", OUT / "map.png", "--quiet")
    out = CACHE / "clusters"
    shutil.rmtree(out, ignore_errors=True)
    vz("cluster", feats, "--clusters", "auto", "--out", out, "--quiet")
    summary = json.loads((out / "clusters.json").read_text())
    sizes = summary.get("sizes") or []
    biggest = max(range(len(sizes)), key=sizes.__getitem__) if sizes else 0
    copy(out / f"cluster_{biggest:02d}.png", "cluster.jpg", width=900)


@step("train_confusion.png", "train_curves.png")
def train() -> None:
    from skimage import data

    folder = CACHE / "lfw"
    if not folder.exists():
        import numpy as np

        for i, img in enumerate(data.lfw_subset()):
            cls = folder / ("face" if i < 100 else "nonface")
            cls.mkdir(parents=True, exist_ok=True)
            Image.fromarray((np.clip(img, 0, 1) * 255).astype("uint8")).save(cls / f"{i:03d}.png")
    auto = trained("lfw", "train", folder)
    copy(auto / "confusion_matrix.png", "train_confusion.png", width=700)
    finetune = trained("lfw_finetune", "train", folder, "--strategy", "finetune", "--epochs", 4, "--image-size", 96)
    copy(finetune / "curves.png", "train_curves.png", width=1000)


def held_out(run: Path, data: Path) -> list[Path]:
    """The run's validation images (never trained on), as the run's config.json lists them."""
    dataset = json.loads((run / "config.json").read_text()).get("dataset", {})
    files = dataset.get("val_files") or (dataset.get("val_split") or {}).get("files") or []
    return sorted(Path(f) if os.path.isabs(f) else data / f for f in files)


@step("detect.jpg", "detect_curves.png")
def detect() -> None:
    data = DATASETS / "raccoon"
    run = trained("raccoon", "detect", "train", data)  # the defaults, as a user runs it
    picks = held_out(run, data)[:4]
    drawn = CACHE / "detect_drawn"
    shutil.rmtree(drawn, ignore_errors=True)
    vz("detect", "predict", run, *picks, "--draw", drawn, "--out", CACHE / "detect.json", "--quiet")
    strip(sorted(drawn.rglob("*.jpg")), "detect.jpg", height=320)
    copy(run / "threshold_curves.png", "detect_curves.png", width=700)


@step("segment.jpg")
def segment() -> None:
    import numpy as np

    from visionzoo.tasks.segment.predictor import overlay

    data = DATASETS / "membrane"
    run = trained("membrane", "segment", "train", data, "--epochs", 12)
    picks = held_out(run, data)[:2]
    masks = CACHE / "segment_masks"
    shutil.rmtree(masks, ignore_errors=True)
    vz("segment", "predict", run, *picks, "--masks", masks, "--out", CACHE / "segment.json", "--quiet")
    tiles: list[Image.Image | Path] = []
    for p in picks:
        truth = np.asarray(Image.open(data / "label" / p.name).convert("L")) > 127
        image = Image.open(p).convert("RGB")
        tiles += [image, overlay(image, truth.astype(np.uint8), 2), masks / f"{p.stem}.overlay.png"]
    strip(tiles, "segment.jpg", height=280)


def _portrait_variants() -> Path:
    """Each gallery person's photo mirrored and shrunk: new photos of known people."""
    folder = CACHE / "faces_queries"
    if not folder.exists():
        folder.mkdir(parents=True)
        for person in sorted(p for p in (DATASETS / "faces").iterdir() if p.is_dir()):
            im = ImageOps.mirror(ImageOps.exif_transpose(Image.open(person / "1.jpg")).convert("RGB"))
            im.resize((round(im.width * 0.5), round(im.height * 0.5)), Image.LANCZOS).save(
                folder / f"{person.name}_mirrored.jpg", quality=85)
        shutil.copy(DATASETS / "faces" / "multiface.jpg", folder / "multiface.jpg")
    return folder


@step("faces_names.jpg")
def faces_names() -> None:
    gallery = CACHE / "faces_gallery"
    if not gallery.exists():
        gallery.mkdir(parents=True)
        for person in sorted(p for p in (DATASETS / "faces").iterdir() if p.is_dir()):
            shutil.copytree(person, gallery / person.name)
    drawn = CACHE / "faces_named"
    shutil.rmtree(drawn, ignore_errors=True)
    vz("faces", "find", gallery, _portrait_variants(), "--draw", drawn, "--out", CACHE / "faces.json", "--quiet")
    strip(sorted(drawn.glob("*.jpg")), "faces_names.jpg", height=300)


@step("face_mesh.png")
def face_mesh() -> None:
    out = CACHE / "meshes"
    shutil.rmtree(out, ignore_errors=True)
    vz("faces", "mesh", DATASETS / "faces" / "kate_siegel" / "1.jpg", "--out", out, "--quiet")
    copy(sorted(out.glob("*_face0.png"))[0], "face_mesh.png", width=1000)


@step("captions.jpg")
def captions() -> None:
    from visionzoo.tasks.caption.scenes import make_scenes

    data = CACHE / "scenes"
    if not (data / "captions.csv").exists():
        make_scenes(data, 600)
    run = trained("captions", "caption", "train", data)
    test = json.loads((run / "splits.json").read_text()).get("test", [])[:4]
    drawn = CACHE / "captions_drawn"
    shutil.rmtree(drawn, ignore_errors=True)
    vz("caption", "predict", run, *[data / t for t in test], "--draw", drawn, "--out", CACHE / "captions.json",
       "--quiet")
    strip(sorted(drawn.glob("*.png")), "captions.jpg", height=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="make every picture again (runs stay cached)")
    parser.add_argument("--only", default="", help="comma-separated steps: " + ", ".join(STEPS))
    args = parser.parse_args()
    if not DATASETS.is_dir():
        sys.exit(f"gallery: no example data sets at {DATASETS} (set VISIONZOO_DATASETS)")
    OUT.mkdir(parents=True, exist_ok=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("VISIONZOO_OFFLINE", "1")
    only = set(filter(None, args.only.split(",")))
    for name, (pictures, fn) in STEPS.items():
        if only and name not in only:
            continue
        if not args.force and all((OUT / p).exists() for p in pictures):
            continue
        start = time.perf_counter()
        print(f"gallery: {name} -> {', '.join(pictures)}", flush=True)
        fn()
        missing = [p for p in pictures if not (OUT / p).exists()]
        if missing:
            sys.exit(f"gallery: step {name} did not make {', '.join(missing)}")
        print(f"gallery: {name} done in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
