"""Does `--precision int8` keep the answers, and what does it buy? The offline models at int8
(as `visionzoo extract --precision int8` makes them: default calibration on the bundled photos)
against fp32, on real photos the calibration never saw:

  - top-1 agreement with fp32 (all photos / those fp32 is >= 50 % sure of), top-5 overlap
  - pre_logits features (what extract writes): cosine to fp32, min and median
  - search: recall@10 of fp32's 10 nearest neighbours (cosine) among the test photos
  - a linear probe (logistic regression, 5-fold CV) on lfw_subset face / non-face features
  - speed: ONNX Runtime alone (one single-thread session per core, batch 8, as extract runs it),
    and the whole `visionzoo extract FOLDER` process, fp32 and int8 back to back on the same
    photos, caches warm (the export and the quantized model are made once, before timing)

The photos: every real photo of ../shared/datasets (raccoon, faces, membrane), frames of its
videos (one per second, every 0.25 s for the short sign-language clips), and random crops
(70-100 %), flips and rescales of those to make up --photos.

    .venv/bin/python benchmarks/int8_bench.py                 # lite0, lite1, lite2 on 600 photos
    .venv/bin/python benchmarks/int8_bench.py --models efficientnet_lite0 --photos 120   # a smoke run
    .venv/bin/python benchmarks/int8_bench.py --methods       # also compare the range methods on lite0
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("VISIONZOO_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
from extract_bench import DATASETS, _crop_flip  # noqa: E402

# Videos of objects ImageNet has classes for (water / pop bottles; book jackets, binders): their frames
# are the test photos whose labels are not near ties between classes that do not fit.
IMAGENET_VIDEOS = ("bottle-detection", "book")


def real_photos(folder: Path, n: int, seed: int = 0) -> tuple[list[str], int, int, list[str]]:
    """n JPEGs (long side 400-640 px): the real photos and video frames first, then crops of them.
    Returns (paths, distinct photos, video frames, each path's source: a dataset or a video's name)."""
    import av
    from PIL import Image

    files = sorted(p for sub in ("raccoon/images", "faces", "membrane/image") for p in (DATASETS / sub).rglob("*")
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    sources = [Image.open(p).convert("RGB") for p in files]
    kinds = [p.relative_to(DATASETS).parts[0] for p in files]
    distinct = len(sources)
    for video in sorted(p for p in (DATASETS / "video").glob("*") if p.suffix in (".mp4", ".mkv")):
        step = 1.0 if video.suffix == ".mp4" else 0.25
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            next_t = 0.0
            for frame in container.decode(stream):
                if frame.time is not None and frame.time >= next_t:
                    sources.append(frame.to_image().convert("RGB"))
                    kinds.append(video.stem)
                    next_t += step
    frames = len(sources) - distinct
    rng = random.Random(seed)
    paths, origin = [], []
    for i in range(n):
        origin.append(kinds[i % len(sources)])
        img = sources[i % len(sources)]
        if i >= len(sources):
            img = _crop_flip(img, rng, 0.7)
        scale = rng.randint(400, 640) / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
        path = folder / f"photo_{i:05d}.jpg"
        img.save(path, quality=rng.randint(75, 95))
        paths.append(str(path))
    return paths, distinct, frames, origin


def rate(runner, x: np.ndarray, pipelines: int) -> float:
    batches = [x[i:i + 8] for i in range(0, len(x), 8)]
    runner(batches[0])
    start = time.perf_counter()
    with ThreadPoolExecutor(pipelines) as pool:
        list(pool.map(runner, batches))
    return len(x) / (time.perf_counter() - start)


def run_all(runner, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """Outputs for every row of x, a batch at a time (all at once would hold GBs of activations)."""
    return np.concatenate([runner(x[i:i + batch]) for i in range(0, len(x), batch)])


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def neighbours(x: np.ndarray, k: int = 10) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1)[:, :k]


def probe_accuracy(features: np.ndarray, y: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(cross_val_score(clf, features, y, cv=5).mean())


def extract_seconds(folder: str, out: str, model: str, precision: str) -> float:
    """Wall seconds of one whole `visionzoo extract` process (a fresh output file each time)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "visionzoo", "extract", folder, "--out", out, "-m", model, "--quiet",
           "--precision", precision]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(name: str, folder: str, paths: list[str], lfw, y, tmp: Path, method: str = "percentile",
            speed: bool = True, objects: np.ndarray | None = None) -> dict:
    import visionzoo
    from visionzoo.data import eval_array_transform, load_rgb
    from visionzoo.data.calibration import calibration_batches, calibration_set
    from visionzoo.runtime.onnx_session import OnnxRunner
    from visionzoo.runtime.quantize import DEFAULT_METHOD, cached_int8, prepare_graph
    from visionzoo.tasks.embed import feature_runner, int8_export

    model = visionzoo.load_model(name)
    pre = model.zoo_spec.preprocessing
    transform = eval_array_transform(pre)
    x = np.stack([transform(load_rgb(p, pre.resize_size)) for p in paths])
    lfw_x = np.stack([transform(img) for img in lfw])
    cal = calibration_set()
    start = time.perf_counter()
    fp32, int8 = {}, {}
    for layer in ("pre_logits", "logits"):
        path = feature_runner(model, layer, backend="onnx", device="cpu")[0].path
        fp32[layer] = OnnxRunner(path, 1)
        if method == DEFAULT_METHOD:
            int8[layer] = OnnxRunner(int8_export(path, pre, cal), 1)
        else:
            int8[layer] = OnnxRunner(cached_int8(path, cal.sha256, lambda: calibration_batches(cal, pre), method), 1)
    made = time.perf_counter() - start
    ref = {layer: run_all(r, x) for layer, r in fp32.items()}
    got = {layer: run_all(r, x) for layer, r in int8.items()}
    probs = np.exp(ref["logits"] - ref["logits"].max(1, keepdims=True))
    sure = (probs / probs.sum(1, keepdims=True)).max(1) >= 0.5
    top1 = got["logits"].argmax(1) == ref["logits"].argmax(1)
    top5 = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(np.argsort(-got["logits"], 1)[:, :5],
                                                             np.argsort(-ref["logits"], 1)[:, :5])])
    cos = cosine(got["pre_logits"], ref["pre_logits"])
    nn32, nn8 = neighbours(ref["pre_logits"]), neighbours(got["pre_logits"])
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(nn32, nn8)])
    srt = np.sort(probs / probs.sum(1, keepdims=True), 1)
    clear = srt[:, -1] - srt[:, -2] >= 0.05  # fp32's first label at least 5 points ahead of its second
    row = {"model": name, "method": method, "top1": float(top1.mean()), "top1_sure": float(top1[sure].mean()),
           "sure": int(sure.sum()), "top1_clear": float(top1[clear].mean()), "clear": int(clear.sum()),
           "top5": float(top5), "objects": int(objects.sum()) if objects is not None else 0,
           "top1_objects": float(top1[objects].mean()) if objects is not None and objects.any() else float("nan"), "cos_min": float(cos.min()), "cos_med": float(np.median(cos)),
           "recall10": float(recall), "probe32": probe_accuracy(run_all(fp32["pre_logits"], lfw_x), y),
           "probe8": probe_accuracy(run_all(int8["pre_logits"], lfw_x), y), "made_s": made}
    if speed:
        cpus = len(os.sched_getaffinity(0))
        folded = tmp / f"{name}-fp32-folded.onnx"
        prepare_graph(fp32["pre_logits"].path, folded, np.ascontiguousarray(x[:2]))
        row["fwd32"], row["fwd32f"] = rate(fp32["pre_logits"], x, cpus), rate(OnnxRunner(folded, 1), x, cpus)
        row["fwd8"] = rate(int8["pre_logits"], x, cpus)
        warm = tmp / "warm"
        if not warm.is_dir():
            warm.mkdir()
            for p in paths[:4]:
                shutil.copy(p, warm)
        for precision in ("fp32", "int8"):  # warm: the export index and the quantized model cached
            extract_seconds(str(warm), str(tmp / f"warm-{name}-{precision}.parquet"), name, precision)
        pairs = [(extract_seconds(folder, str(tmp / f"{name}-fp32.parquet"), name, "fp32"),
                  extract_seconds(folder, str(tmp / f"{name}-int8.parquet"), name, "int8")) for _ in range(2)]
        row["ext32"], row["ext8"] = (len(paths) / np.mean([p[i] for p in pairs]) for i in (0, 1))
        row["ext_ratios"] = [t32 / t8 for t32, t8 in pairs]
        row["load"] = os.getloadavg()[0]
    return row


def main() -> None:
    import logging

    from PIL import Image
    from skimage.data import lfw_subset

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2")
    parser.add_argument("--photos", type=int, default=600)
    parser.add_argument("--methods", action="store_true", help="also compare percentile / entropy / minmax on lite0")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ.setdefault("VISIONZOO_ONNX_CACHE", str(tmp / "cache"))  # a fresh cache unless told otherwise
        (tmp / "photos").mkdir()
        paths, distinct, frames, origin = real_photos(tmp / "photos", args.photos)
        objects = np.array([o in IMAGENET_VIDEOS for o in origin])
        lfw = [Image.fromarray((f * 255).astype(np.uint8)).convert("RGB") for f in lfw_subset()]
        y = np.array([1] * 100 + [0] * 100)
        rows = []
        for m in args.models.split(","):
            rows.append(measure(m, str(tmp / "photos"), paths, lfw, y, tmp, objects=objects))
            print(rows[-1], flush=True)
        if args.methods:
            rows += [measure("efficientnet_lite0", str(tmp / "photos"), paths, lfw, y, tmp, method, speed=False, objects=objects)
                     for method in ("entropy", "minmax")]
    print(f"\nint8 vs fp32 on {len(paths)} photos ({distinct} distinct real photos + {frames} video frames, the rest "
          f"crops/flips/rescales of them), none used for calibration (the bundled photos); "
          f"{len(os.sched_getaffinity(0))} CPU cores, batch 8")
    print("| model | method | top-1 agreement: all / fp32 >= 50 % sure (n) / fp32 top-2 gap >= 5 points (n) "
          "/ bottle and book video frames and their crops (n) "
          "| top-5 overlap | feature cosine min / median | recall@10 of fp32's neighbours | lfw probe fp32 / int8 "
          "| ONNX Runtime img/s fp32 / fp32 folded / int8 | `extract` img/s fp32 / int8 (pair ratios) | load "
          "| quantize s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        speed = (f"{r['fwd32']:.0f} / {r['fwd32f']:.0f} / {r['fwd8']:.0f} ({r['fwd8'] / r['fwd32']:.2f}x, "
                 f"{r['fwd8'] / r['fwd32f']:.2f}x) | {r['ext32']:.0f} / {r['ext8']:.0f} ({r['ext8'] / r['ext32']:.2f}x; "
                 f"{', '.join(f'{v:.2f}' for v in r['ext_ratios'])}) | {r['load']:.1f}") if "fwd32" in r else "- | - | -"
        print(f"| {r['model']} | {r['method']} | {r['top1']:.3f} / {r['top1_sure']:.3f} ({r['sure']}) / "
              f"{r['top1_clear']:.3f} ({r['clear']}) / {r['top1_objects']:.3f} ({r['objects']}) "
              f"| {r['top5']:.3f} | {r['cos_min']:.3f} / {r['cos_med']:.4f} | {r['recall10']:.3f} "
              f"| {r['probe32']:.3f} / {r['probe8']:.3f} | {speed} | {r['made_s']:.0f} |")


if __name__ == "__main__":
    main()
