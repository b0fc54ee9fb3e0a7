"""Feature-extraction throughput on real photos, three ways, measured in one run.

  (a) forward-only limit: the fastest backend on pre-decoded tensors (no decoding at all)
  (b) `visionzoo.extract` end to end: listing, decoding, inference, Parquet shards, manifest;
      printed over the whole call and as the marginal rate a large job sustains (the whole
      call minus a one-batch call: model loading, ONNX session and worker start-up are paid
      once per run). The ONNX export is cached by (a) beforehand.
  (c) the classic script: PIL open + timm transform + PyTorch eager, one image at a time, into a dict
      (timed on the first 150 images, which have the same size mix, for 60 s at most)

The images are >= 500 JPEGs of mixed sizes made from scikit-image's photos (random crops,
flips and scales; about 10% are 3000+ px on the short side), so decoding costs what real
folders cost. Prints images/s for each and the ratios b/a and b/c.

    .venv/bin/python benchmarks/extract_bench.py            # 600 images, a few minutes on 2 cores
    .venv/bin/python benchmarks/extract_bench.py --quick    # 120 images, a smoke run
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
        src = sources[i % len(sources)]
        w, h = src.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img = src.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        short = rng.randint(3000, 4000) if i % 10 == 0 else rng.randint(300, 1600)
        scale = short / min(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
        path = folder / f"img_{i:05d}.jpg"
        img.convert("RGB").save(path, quality=rng.randint(80, 95))
        paths.append(str(path))
    return paths


def forward_limit(model, tensors, batch_size: int) -> tuple[float, str]:
    """Images/s of the fastest backend on tensors already decoded and preprocessed."""
    import torch

    from visionzoo.tasks.embed import feature_runner

    best, best_name = 0.0, ""
    for backend in ("onnx", "torch"):
        runner, used = feature_runner(model, backend=backend, device="cpu")
        batches = [torch.stack(tensors[i:i + batch_size]) for i in range(0, len(tensors), batch_size)]
        if backend == "torch":
            batches = batches[:3]  # eager is several times slower on CPU; 3 batches show it
        runner(batches[0])  # warm-up
        start = time.perf_counter()
        n = 0
        for b in batches:
            runner(b)
            n += len(b)
        rate = n / (time.perf_counter() - start)
        print(f"  (a) forward only, {used:5s} batch {batch_size}: {rate:7.1f} img/s", flush=True)
        if rate > best:
            best, best_name = rate, used
    return best, best_name


def classic(model, paths: list[str], budget_s: float = 60.0) -> float:
    """The classic script: PIL + timm transform + eager forward per image, features in a dict
    (stops after `budget_s` seconds: the rate is known well by then, and the run stays short)."""
    import torch
    from timm.data import create_transform

    transform = create_transform(**model.zoo_spec.preprocessing.as_timm(), is_training=False)
    feats = {}
    start = time.perf_counter()
    with torch.no_grad():
        for p in paths:
            x = transform(Image.open(p).convert("RGB")).unsqueeze(0)
            feats[p] = model.forward_head(model.forward_features(x), pre_logits=True)[0].numpy()
            if time.perf_counter() - start > budget_s:
                break
    return len(feats) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-images", type=int, default=600)
    ap.add_argument("--quick", action="store_true", help="120 images, a smoke run (ratios less stable)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--keep", type=Path, default=None, help="make the images in this folder and keep them")
    args = ap.parse_args()
    n = 120 if args.quick else args.n_images
    os.environ.setdefault("VISIONZOO_OFFLINE", "1")

    import torch

    import visionzoo
    from visionzoo.data import eval_transform, load_rgb

    work = Path(tempfile.mkdtemp(prefix="vz-bench-"))
    folder = args.keep or work / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        paths = sorted(str(p) for p in folder.glob("*.jpg")) if args.keep else []
        if len(paths) < n:
            paths = make_photos(folder, n)
        paths = paths[:n]
        big = sum(1 for p in paths if min(Image.open(p).size) >= 3000)
        print(f"{n} JPEGs ({big} of 3000+ px) in {folder} made in {time.perf_counter() - t:.0f}s; "
              f"{os.cpu_count()} CPU(s), torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

        model = visionzoo.load_model(args.model)
        transform = eval_transform(model.zoo_spec.preprocessing)
        size = model.zoo_spec.preprocessing.image_size
        sample = paths[: min(len(paths), 256)]
        tensors = [transform(load_rgb(p, size)) for p in sample]
        a, a_backend = forward_limit(model, tensors, args.batch_size)

        from visionzoo.batch.reader import default_workers

        workers = default_workers(len(paths), args.batch_size)  # the same for the one-batch call

        def timed_extract(files, out, **kw):
            start = time.perf_counter()
            res = visionzoo.extract(files, out, model=args.model, batch_size=args.batch_size, workers=workers, **kw)
            return res, time.perf_counter() - start

        # Start-up (model loading, weights hash, ONNX session, decoding processes) is paid once per
        # run; a one-batch run measures it, so the marginal rate is what a large job sustains.
        head = paths[: args.batch_size]
        _, t_head = timed_extract(head, work / "head")
        result, t_all = timed_extract(paths, work / "features")
        b_total = result.count / t_all
        b = (len(paths) - len(head)) / max(t_all - t_head, 1e-9)
        print(f"  (b) visionzoo extract end to end ({result.backends[0]}): {b_total:7.1f} img/s over the whole call, "
              f"{b:.1f} img/s marginal (start-up {t_head:.1f}s for one batch); "
              f"{result.count} rows, {len(result.failures)} failed", flush=True)
        # The same with inference on every core beside the decoders (oversubscribed): shows whether
        # the default split of cores suits this machine.
        alt, t_alt = timed_extract(paths, work / "features_all", threads=os.cpu_count())
        print(f"  (b') the same with --threads {os.cpu_count()}: {alt.count / t_alt:7.1f} img/s over the whole call",
              flush=True)

        torch.set_num_threads(os.cpu_count() or 1)
        subset = paths[: min(len(paths), 150)]  # same size mix; the classic way is 10-30x slower
        c = classic(model, subset)
        print(f"  (c) classic PIL + timm + eager, one at a time (first {len(subset)} images, 60 s at most): "
              f"{c:7.1f} img/s", flush=True)

        print("\n| measure | img/s |\n|---|---|")
        print(f"| (a) forward-only limit ({a_backend}, batch {args.batch_size}) | {a:.1f} |")
        print(f"| (b) `visionzoo extract` end to end, marginal (whole call incl. start-up) | {b:.1f} ({b_total:.1f}) |")
        print(f"| (c) classic one-at-a-time PIL + timm + eager | {c:.1f} |")
        print(f"| ratio b/a (target >= 0.85), marginal (whole call) | {b / a:.2f} ({b_total / a:.2f}) |")
        print(f"| ratio b/c (target >= 3), marginal (whole call) | {b / c:.2f} ({b_total / c:.2f}) |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
