"""Feature-extraction throughput on a folder of photos, three ways, measured in one run.

  (a) ONNX Runtime alone on pre-decoded tensors (no decoding at all): one session with every
      core at batch 32, and (a') as extract runs it, one single-thread call per core at once
  (b) the whole `visionzoo extract FOLDER` process as a user runs it: start-up, listing,
      decoding, inference, Parquet shards, manifest; with the ONNX export cached by an earlier
      run (b0: that first run, export included), its cores busy and its peak memory
  (c) the classic script: PIL open + timm transform + PyTorch eager, one image at a time, into a
      {path: feature} dict pickled at the end, as a whole process like (b)

Default folder: 800 ordinary ~500 px JPEGs made from the real photos in ../shared/datasets
(crops, flips, long side 400-640 px, quality 75-95). `--mixed`: crops of scikit-image's photos at
mixed sizes, 10% of them 3000+ px on the short side (draft-mode decoding matters there).

    .venv/bin/python benchmarks/extract_bench.py              # 800 real ~500 px photos
    .venv/bin/python benchmarks/extract_bench.py --mixed      # 800 mixed-size crops
    .venv/bin/python benchmarks/extract_bench.py --quick      # 120 images, a smoke run
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _crop_flip(img: Image.Image, rng: random.Random, smallest: float) -> Image.Image:
    """A random crop of `smallest`..100 % of each side, mirrored half of the time."""
    w, h = img.size
    cw, ch = int(w * rng.uniform(smallest, 1.0)), int(h * rng.uniform(smallest, 1.0))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = img.crop((x, y, x + cw, y + ch))
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else img


def make_photos(folder: Path, n: int, seed: int = 0) -> list[str]:
    """n JPEGs: random crops of the skimage photos, resized to short sides 300..1600 px, 10% 3000..4000 px."""
    from skimage import data

    rng = random.Random(seed)
    sources = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field",
                 "immunohistochemistry", "retina", "colorwheel", "logo"):
        try:
            img = getattr(data, name)()
        except Exception:  # some need pooch downloads; the bundled ones are enough
            continue
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        sources.append(Image.fromarray(img.astype(np.uint8)))
    paths = []
    for i in range(n):
        img = _crop_flip(sources[i % len(sources)], rng, 0.6)
        short = rng.randint(3000, 4000) if i % 10 == 0 else rng.randint(300, 1600)
        scale = short / min(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
        path = folder / f"img_{i:05d}.jpg"
        img.convert("RGB").save(path, quality=rng.randint(80, 95))
        paths.append(str(path))
    return paths


DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def make_real_photos(folder: Path, n: int, seed: int = 0) -> list[str]:
    """n ordinary ~500 px JPEGs from the real photos in shared/datasets (raccoon, faces, membrane):
    the originals as they are, then random crops (70-100%), flips and resizes (long side 400-640),
    re-saved at quality 75-95, so every file costs what a phone/web photo costs to decode."""
    sources = sorted(p for sub in ("raccoon/images", "faces", "membrane/image")
                     for p in (DATASETS / sub).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not sources:
        raise SystemExit(f"no real photos under {DATASETS}")
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        img = Image.open(sources[i % len(sources)]).convert("RGB")
        if i >= len(sources):
            img = _crop_flip(img, rng, 0.7)
        long_side = rng.randint(400, 640)
        scale = long_side / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
        path = folder / f"photo_{i:05d}.jpg"
        img.save(path, quality=rng.randint(75, 95))
        paths.append(str(path))
    return paths


def forward_limit(model, tensors, batch_size: int, threads: int | None = None, pipelines: int = 1) -> float:
    """Images/s of ONNX Runtime alone on tensors already decoded and preprocessed: one session
    with `threads` threads, called from `pipelines` threads at once (each with its own batches)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from visionzoo.runtime.onnx_session import OnnxRunner
    from visionzoo.tasks.embed import feature_runner

    path = feature_runner(model, backend="onnx", device="cpu")[0].path
    runner = OnnxRunner(path, threads)
    x = np.stack([np.asarray(t) for t in tensors])
    batches = [x[i:i + batch_size] for i in range(0, len(x), batch_size)]
    runner(batches[0])  # warm-up
    start = time.perf_counter()
    with ThreadPoolExecutor(pipelines) as pool:
        list(pool.map(runner, batches))
    return len(x) / (time.perf_counter() - start)


CLASSIC = """
import glob, pickle, sys
import timm, torch
from PIL import Image
from timm.data import create_transform
import visionzoo  # only for the offline weights: a user online writes timm.create_model(name, pretrained=True)

model = visionzoo.load_model(sys.argv[2]).eval()
transform = create_transform(**model.zoo_spec.preprocessing.as_timm(), is_training=False)
feats = {}
with torch.no_grad():
    for p in sorted(glob.glob(sys.argv[1] + "/*.jpg")):
        x = transform(Image.open(p).convert("RGB")).unsqueeze(0)
        feats[p] = model.forward_head(model.forward_features(x), pre_logits=True)[0].numpy()
pickle.dump(feats, open(sys.argv[3], "wb"))
"""


def classic(folder: Path, model: str, out: Path, env: dict | None = None) -> float:
    """The classic script as a whole process: PIL + timm transform + eager forward per image, into
    a {path: feature} dict pickled at the end; wall seconds, start-up included (as for (b))."""
    import subprocess
    import sys

    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", CLASSIC, str(folder), model, str(out)], check=True, env=env)
    return time.perf_counter() - start


def whole_cli(folder: Path, out: Path, model: str, *extra: str, env: dict | None = None) -> dict:
    """`visionzoo extract FOLDER` as a user runs it: a fresh process, start-up included; wall time,
    CPU cores busy on average and the peak memory (RSS) of that process alone."""
    import json
    import subprocess
    import sys

    args = ["extract", str(folder), "-o", str(out), "-m", model, "-q", *extra]
    stats = out.with_suffix(".rusage.json")
    # `python -m visionzoo ARGS`, reporting its own rusage when it exits
    code = ("import atexit, json, resource, runpy, sys\n"
            "def report():\n"
            "    r = resource.getrusage(resource.RUSAGE_SELF)\n"
            f"    open({str(stats)!r}, 'w').write(json.dumps([r.ru_utime + r.ru_stime, r.ru_maxrss]))\n"
            "atexit.register(report)\n"
            f"sys.argv = ['visionzoo', *{args!r}]\n"
            "runpy.run_module('visionzoo', run_name='__main__')\n")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    cpu, rss_kb = json.loads(stats.read_text())
    return {"wall": wall, "cores": cpu / wall, "rss_mb": rss_kb / 1024, "cmd": "visionzoo " + " ".join(args)}


def help_seconds() -> float:
    import subprocess
    import sys

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "visionzoo", "--help"], check=True, capture_output=True)
    return time.perf_counter() - start


def measure(args) -> None:
    """Whole `visionzoo extract` processes against ONNX Runtime alone and the classic loop, in one run."""
    import visionzoo
    from visionzoo.data import eval_array_transform, load_rgb

    work = Path(tempfile.mkdtemp(prefix="vz-bench-"))
    folder = args.keep or work / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    cpus = len(os.sched_getaffinity(0))
    # A cache of exports of its own, so the first run really is a first run.
    env = {**os.environ, "VISIONZOO_OFFLINE": "1", "VISIONZOO_ONNX_CACHE": str(work / "onnx")}
    os.environ["VISIONZOO_ONNX_CACHE"] = env["VISIONZOO_ONNX_CACHE"]
    try:
        paths = sorted(str(p) for p in folder.glob("*.jpg"))
        if len(paths) < args.n_images:
            paths = (make_photos if args.mixed else make_real_photos)(folder, args.n_images)
        n = len(paths)
        kind = "mixed-size JPEGs (short side 300-1600 px, 10% 3000+ px)" if args.mixed else \
            "real JPEGs (long side 400-640 px)"
        print(f"{n} {kind} in {folder}; {cpus} CPU(s)", flush=True)
        h = help_seconds()
        first = whole_cli(folder, work / "first.parquet", args.model, env=env)
        whole = whole_cli(folder, work / "f.parquet", args.model, env=env)
        b = n / whole["wall"]
        print(f"  (b) {whole['cmd']}: {whole['wall']:.1f} s, {b:.1f} img/s, {whole['cores']:.2f} cores busy, "
              f"peak RSS {whole['rss_mb']:.0f} MB (first run, export included: {first['wall']:.1f} s)", flush=True)
        model = visionzoo.load_model(args.model)
        pre = model.zoo_spec.preprocessing
        transform = eval_array_transform(pre)
        tensors = [transform(load_rgb(p, pre.resize_size)) for p in paths[:256]]
        a = forward_limit(model, tensors, 32, threads=cpus)
        a_best = forward_limit(model, tensors, 8, threads=1, pipelines=cpus)
        print(f"  (a) ONNX Runtime forward only: {a:.1f} img/s (1 session, {cpus} threads, batch 32); "
              f"{a_best:.1f} img/s ({cpus} calls at once on 1 thread each, batch 8)", flush=True)
        c_wall = classic(folder, args.model, work / "classic.pkl", env=env)
        c = n / c_wall
        print(f"  (c) classic loop, whole process: {c_wall:.1f} s, {c:.1f} img/s", flush=True)
        print(f"\n| measure ({n} {kind.split(' (')[0]}, {cpus} cores) | value |\n|---|---|")
        print(f"| (a) ONNX Runtime forward only, pre-decoded: 1 session x {cpus} threads, batch 32 | {a:.1f} img/s |")
        print(f"| (a') the same as {cpus} single-thread calls at once, batch 8 (how extract runs it) | {a_best:.1f} img/s |")
        print(f"| (b) whole `visionzoo extract` process, start-up included (export cached) | {b:.1f} img/s ({whole['wall']:.1f} s) |")
        print(f"| (b0) the same, first run ever (ONNX export included) | {n / first['wall']:.1f} img/s ({first['wall']:.1f} s) |")
        print(f"| (c) classic one-at-a-time PIL + timm + eager loop, whole process | {c:.1f} img/s ({c_wall:.1f} s) |")
        print(f"| b/a (target >= 0.75) | {b / a:.2f} |")
        print(f"| b/a' | {b / a_best:.2f} |")
        print(f"| b/c (target >= 2.5) | {b / c:.2f} |")
        print(f"| CPU cores busy during (b) | {whole['cores']:.2f} of {cpus} |")
        print(f"| peak RSS of (b) (target < 1 GB) | {whole['rss_mb']:.0f} MB |")
        print(f"| `visionzoo --help` (target < 0.5 s) | {h:.2f} s |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-images", type=int, default=800)
    ap.add_argument("--quick", action="store_true", help="120 images, a smoke run (ratios less stable)")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--keep", type=Path, default=None, help="make the images in this folder and keep them")
    ap.add_argument("--mixed", action="store_true", help="skimage crops of mixed sizes, 10%% of them 3000+ px "
                    "(default: ordinary ~500 px real photos)")
    args = ap.parse_args()
    if args.quick:
        args.n_images = 120
    measure(args)


if __name__ == "__main__":
    main()
