"""Videos, measured in one run, on the real sample video (../shared/datasets/video) and on videos
made from the real raccoon photos:

  (1) speed: the model's forward-only rate on frames already decoded in memory, at the size the
      pipeline gives it, against the whole pipeline's rate on the same frames of the video file
      (decoding ahead in FFmpeg's threads, batching, rows, tracking): `detect predict VIDEO --track`
      with the raccoon detector, and `extract VIDEO` (EfficientNet-Lite0, ONNX Runtime);
  (2) peak memory (max RSS of the whole process) of `detect predict --track --draw --out X.jsonl`
      and of `extract`, on a 10 s and a 10 min input (the real video cut, and looped 15 times);
  (3) tracking: pan and zoom videos over raccoon photos of the detector's validation split whose raccoons
      stay at least half in view (the
      boxes known in every frame), `detect predict --track`, scored with motmetrics (MOTA, IDF1,
      ID switches).

The raccoon detector: `visionzoo detect train ../shared/datasets/raccoon --out RUN` (its defaults).

    .venv/bin/python benchmarks/video_bench.py --run RUN
    .venv/bin/python benchmarks/video_bench.py --run RUN --quick     # fewer frames, a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
VIDEO = SHARED / "video" / "bottle-detection.mp4"
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("VISIONZOO_OFFLINE", "1")


def remux(src: Path, out: Path, *, loops: int = 1, seconds: float | None = None) -> Path:
    """The video's packets copied (no re-encoding), `loops` times one after another, or its first `seconds`."""
    import av

    with av.open(str(src)) as inp, av.open(str(out), "w") as dst:
        s = inp.streams.video[0]
        o = dst.add_stream_from_template(s)
        span = None
        for k in range(loops):
            inp.seek(0, stream=s)
            last = 0
            for packet in inp.demux(s):
                if packet.pts is None or not packet.size:
                    continue
                if seconds is not None and packet.pts * s.time_base >= seconds:
                    break
                last = max(last, packet.pts + (packet.duration or 0))
                shift = k * (span or 0)
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = o
                dst.mux(packet)
            span = span or last
    return out


def forward_rate(predictor, images, batch: int) -> float:
    predictor(images[:batch])                                   # warm-up
    start = time.perf_counter()
    for i in range(0, len(images), batch):
        predictor(images[i:i + batch])
    return len(images) / (time.perf_counter() - start)


def detect_speed(run: Path, frames: int) -> tuple[float, float]:
    from visionzoo.data.video import Sampling
    from visionzoo.data.video_frames import iter_frames
    from visionzoo.tasks.detect import load_predictor
    from visionzoo.video import VideoOptions, run_sources

    predictor = load_predictor(run)
    end = frames / 29.83 + 0.01
    images = [f.image for f in iter_frames(str(VIDEO), Sampling(end=end))]
    model = forward_rate(predictor, images, predictor.batch_size)
    start = time.perf_counter()
    rows = list(run_sources("detect", predictor, [str(VIDEO)], VideoOptions(Sampling(end=end), predictor.batch_size,
                                                                           track=True)))
    pipeline = (len(rows) - 1) / (time.perf_counter() - start)
    return model, pipeline


def extract_speed(frames: int) -> tuple[float, float]:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from visionzoo.batch import extract
    from visionzoo.batch.models import feature_model
    from visionzoo.data.transforms import eval_array_transform
    from visionzoo.data.video import Sampling
    from visionzoo.data.video_frames import iter_frames

    fm = feature_model(None, "pre_logits", None, False, threads=os.cpu_count())
    end = frames / 29.83 + 0.01
    prep = eval_array_transform(fm.preprocessing)
    x = np.stack([prep(f.image) for f in iter_frames(str(VIDEO), Sampling(end=end))])
    batches = [x[i:i + 8] for i in range(0, len(x), 8)]
    fm.runner(batches[0])
    start = time.perf_counter()
    with ThreadPoolExecutor(fm.parallel) as pool:                # as extract calls it: one batch per core at once
        list(pool.map(fm.runner, batches))
    model = len(x) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:   # the first run exports the model to ONNX once (cached)
        extract([str(VIDEO)], Path(tmp) / "warm.parquet", sampling=Sampling(end=0.5))
        result = extract([str(VIDEO)], Path(tmp) / "f.parquet", sampling=Sampling(end=end))
    return model, result.count / result.seconds


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """(peak resident memory in MB, seconds) of `visionzoo ARGS` as its own process, measured by GNU time:
    a child forked from this (large) process would report this process's memory as its own peak."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "visionzoo", *args, "--quiet"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    if proc.returncode != 0:
        raise SystemExit(f"visionzoo {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return int(proc.stderr.strip().splitlines()[-1]) / 1024, time.perf_counter() - start


def tracking(run: Path, tmp: Path, n_photos: int, n_frames: int) -> list[dict]:
    """The first `n_photos` validation photos whose raccoons all stay at least half in view through the pan
    and the zoom (in a photo that a raccoon fills, the 60 % pan window cuts it in part: the truth would
    have no raccoon where a detector rightly sees one), each as a pan and a zoom video."""
    from videos import mot_scores, pan_zoom, voc_boxes

    config = json.loads((run / "config.json").read_text())
    val = sorted(config["dataset"]["val_split"]["files"])
    source = Path(config["dataset"]["source"])
    rows, used, skipped = [], 0, []
    for photo in [Path(p) for p in val]:
        if used == n_photos:
            break
        boxes = voc_boxes(source / "annotations" / f"{photo.stem}.xml")
        photo = photo if photo.is_absolute() else source / photo
        videos = {kind: tmp / f"{photo.stem}_{kind}.mp4" for kind in ("pan", "zoom")}
        truths = {kind: pan_zoom(photo, boxes, video, kind, n=n_frames) for kind, video in videos.items()}
        if any(len(objects) < len(boxes) for truth in truths.values() for objects in truth):
            skipped.append(photo.stem)
            continue
        used += 1
        for kind, video in videos.items():
            out = tmp / f"{video.stem}.jsonl"
            r = subprocess.run([sys.executable, "-m", "visionzoo", "detect", "predict", str(run), str(video), "--track",
                                "--out", str(out), "--quiet"], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO / "src")})
            if r.returncode:
                raise SystemExit(r.stderr[-2000:])
            found = [json.loads(line) for line in out.read_text().splitlines()]
            rows.append({"video": video.name, **mot_scores(truths[kind], found), "objects": len(boxes)})
            r = rows[-1]
            print(f"| {r['video']} | {r['objects']} | {r['mota']:.3f} | {r['idf1']:.3f} | {r['id_switches']} | "
                  f"{r['max_switches_per_track']} |", flush=True)
    print(f"(validation photos left out, a raccoon less than half in view at some moment: {', '.join(skipped) or 'none'})")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the raccoon detector's run folder")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    frames = 60 if args.quick else 240
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"video {VIDEO.name} (640x360, 29.8 fps, h264)\n")
    with tempfile.TemporaryDirectory(prefix="vz-video-bench-") as tmp:
        tmp = Path(tmp)
        print("| video (validation photo) | raccoons | MOTA | IDF1 | ID switches | most switches of one raccoon |")
        print("|---|---|---|---|---|---|")
        table = tracking(args.run, tmp, 2 if args.quick else 5, 30 if args.quick else 60)
        idf1 = sum(r["idf1"] for r in table) / len(table)
        print(f"| mean of {len(table)} | | {sum(r['mota'] for r in table) / len(table):.3f} | {idf1:.3f} | "
              f"{sum(r['id_switches'] for r in table)} | {max(r['max_switches_per_track'] for r in table)} |", flush=True)

        print("\n| pipeline | frames | model forward-only (frames/s) | whole pipeline (frames/s) | ratio |")
        print("|---|---|---|---|---|")
        for name, n, measure in (("detect predict --track (raccoon detector)", frames, lambda: detect_speed(args.run, frames)),
                                 ("extract (efficientnet_lite0, ONNX Runtime)", 4 * frames, lambda: extract_speed(4 * frames))):
            model, pipe = measure()
            print(f"| {name} | {n} | {model:.1f} | {pipe:.1f} | {pipe / model:.2f} |", flush=True)
        memory(args, tmp)


def memory(args: argparse.Namespace, tmp: Path) -> None:
    from visionzoo.data.video import Sampling, probe

    short = remux(VIDEO, tmp / "ten_seconds.mp4", seconds=10)
    long = remux(VIDEO, tmp / "ten_minutes.mp4", loops=1 if args.quick else 15)
    print("\n| command | input | frames looked at | peak memory (MB) | seconds |")
    print("|---|---|---|---|---|")
    fps = "2" if args.quick else "1"
    for label, path in (("10 s", short), ("10 min" if not args.quick else "40 s", long)):
        for name, cmd in (("detect predict --track --draw --out X.jsonl",
                           ["detect", "predict", str(args.run), str(path), "--track", "--fps", fps, "--draw",
                            str(tmp / "drawn" / label.replace(" ", "")), "--out", str(tmp / f"{label}.jsonl")]),
                          ("extract --fps 5", ["extract", str(path), "--fps", "5", "--out",
                                               str(tmp / f"{label.replace(' ', '')}.parquet")])):
            looked = len(probe(str(path)).sampled(Sampling(fps=float(cmd[cmd.index("--fps") + 1]))))
            mb, seconds = peak_rss_mb(cmd)
            print(f"| {name} | {label} | {looked} | {mb:.0f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
