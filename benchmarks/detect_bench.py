"""Detection on real photos, every architecture, against a YOLO11n-sized speed reference, on this CPU, offline.

Per architecture: `visionzoo detect train` with its defaults (and `--arch`) on the raccoon set (160 photos
with Pascal VOC boxes, ../shared/datasets/raccoon; the seeded 20 % validation split is held out) as a whole
process: wall seconds, CPU seconds and peak memory. Then the saved run's figures on the validation photos:
COCO mAP@0.5 and mAP@0.5:0.95 (pycocotools) and, at the stored operating point (what `detect predict` draws
by default), precision, recall and boxes per photo beside the true count. Then `visionzoo detect predict
RUN FOLDER` as a whole process over --photos photos (the set's photos, the first ones again under new names
past 160): photos per second, CPU seconds per photo and peak memory; start-up is the same command over one
photo, and the rate after start-up is (photos - 1) / (the wall - that one-photo wall). The ONNX export is made by a first call and cached, as for a user's second call.

The reference (--yolo-onnx, see benchmarks/yolo_reference.py for how to make the graphs): a YOLO11n ONNX
graph run over the same photos by a minimal whole-process pipeline (decode, letterbox, ONNX Runtime, NMS).
Each predict measurement is the median of --repeat runs, ours and the reference's interleaved, so both see
the same load; the load average is printed beside them.

    .venv/bin/python benchmarks/detect_bench.py [--archs fasterrcnn,fcos,retinanet,ssdlite]
        [--yolo-onnx /tmp/yolo11n_384.onnx,/tmp/yolo11n_640.onnx] [--runs DIR] [--photos 200] [--pictures DIR]
        [--int8] [--masks-set DIR]

--runs DIR keeps the run folders (DIR/ARCH) and reuses those already there (their training figures from
DIR/ARCH.train.json when the benchmark trained them): with runs already there, only the predict rows are
measured again (about 10 minutes). --int8 adds the default arch with `detect predict --precision int8`
(calibrated on the run's own photos), its validation figures and speed measured the same way.

--masks-set DIR adds Mask R-CNN's row, on real polygon masks: the membrane cells
(benchmarks/membrane_instances.py, built in DIR unless there: 256 px tiles of 15 EM images to train, of 5
other images to test). `detect train --arch maskrcnn` with its defaults on the training tiles (whole process,
as above), `detect evaluate` on the held-out test tiles (box and mask mAP@0.5, mAP@0.5:0.95), `detect
predict` speed over the test tiles, and the first 8 test tiles as drawn by default.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VISIONZOO_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raccoon"
VZ = [sys.executable, "-m", "visionzoo"]


def measured(cmd: list[str]) -> dict[str, float]:
    """Wall seconds, CPU seconds (user + system, children included) and peak RSS (MB) of one process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        err.seek(0)
        stderr = err.read().decode(errors="replace")[-3000:]
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd[:6])} ...: exit {os.waitstatus_to_exitcode(status)}: {stderr}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024, "stderr": stderr}


def photo_folder(data: Path, n: int, out: Path) -> Path:
    """`n` photos: the set's, then the first ones again under new names."""
    files = sorted((data / "images").glob("*.jpg"))
    out.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        src = files[k % len(files)]
        shutil.copyfile(src, out / (src.name if k < len(files) else f"again{k}_{src.name}"))
    return out


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def train(arch: str, data: Path, runs: Path, time_budget: float | None,
          annotations: Path | None = None) -> tuple[Path, dict]:
    """The run folder of `arch`, trained by the whole `detect train` command unless already there."""
    run, sidecar = runs / arch, runs / f"{arch}.train.json"
    if not (run / "config.json").is_file():
        shutil.rmtree(run, ignore_errors=True)
        cmd = [*VZ, "detect", "train", str(data), "--out", str(run), "--arch", arch, "--quiet",
               *(["--annotations", str(annotations)] if annotations else [])]
        stats = {**measured(cmd + (["--time-budget", str(time_budget)] if time_budget else [])), "load": load()}
        if not (run / "report.json").is_file():     # a traceback exits 1 too, as "some inputs failed" does
            raise RuntimeError(f"detect train --arch {arch} saved no report: {stats.get('stderr', '')}")
        sidecar.write_text(json.dumps({k: v for k, v in stats.items() if k != "stderr"}))
    stats = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return run, stats


def predict_speed(runs: dict[str, Path], yolos: list[str], folder: Path, one: Path,
                  repeat: int, int8: list[str] = ()) -> dict[str, dict[str, float]]:
    """Median whole-process figures per model (`detect predict` per run, the reference per ONNX graph);
    `int8`: runs also measured with `--precision int8` (as "NAME int8")."""
    reference = str(Path(__file__).with_name("yolo_reference.py"))
    commands = {name: [*VZ, "detect", "predict", str(run), "{photos}", "--out", "{out}", "--quiet"]
                for name, run in runs.items()}
    commands.update({f"{name} int8": [*commands[name], "--precision", "int8"] for name in int8})
    commands.update({Path(y).name: [sys.executable, reference, y, "{photos}", "--out", "{out}"] for y in yolos})
    n = sum(1 for _ in folder.iterdir())
    with tempfile.TemporaryDirectory() as tmp:
        def run(name: str, photos: Path) -> dict[str, float]:
            cmd = [a.replace("{photos}", str(photos)).replace("{out}", f"{tmp}/{name}.json") for a in commands[name]]
            return measured(cmd)

        for name in [*runs, *(f"{name} int8" for name in int8)]:
            run(name, one)                     # the ONNX export (and its int8 version), made and cached once
        rows: dict[str, list[dict]] = {name: [] for name in commands}
        starts: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(repeat):
            for name in commands:
                before = load()
                rows[name].append({**run(name, folder), "load": f"{before} -> {load()}"})
                starts[name].append(run(name, one)["wall"])
    out = {}
    for name, measurements in rows.items():
        wall, start = statistics.median(m["wall"] for m in measurements), statistics.median(starts[name])
        out[name] = {"photos_s": n / wall, "after_startup_s": (n - 1) / max(wall - start, 1e-9),
                     "cpu_per_photo": statistics.median(m["cpu"] for m in measurements) / n,
                     "peak_mb": max(m["peak_mb"] for m in measurements), "startup_s": start,
                     "walls": [round(m["wall"], 2) for m in measurements], "loads": [m["load"] for m in measurements]}
    return out


def int8_accuracy(run: Path) -> dict[str, float]:
    """The run's validation figures (as report.json has them for fp32) with `--precision int8`."""
    from visionzoo.tasks.detect.datasets import load_detection_data
    from visionzoo.tasks.detect.detector import load_detector
    from visionzoo.tasks.detect.evaluation import predict_samples, score_samples
    from visionzoo.tasks.detect.operating import EVAL_CONF, OperatingPoint
    from visionzoo.tasks.detect.predictor import Predictor

    detector = load_detector(run)
    dataset = detector.config["dataset"]
    val = set(dataset["val_split"]["files"])
    samples = [s for s in load_detection_data(dataset["source"], classes=detector.classes).samples
               if Path(s.path).relative_to(dataset["source"]).as_posix() in val]
    point = OperatingPoint.from_config(detector.config)
    predictor = Predictor(detector, point=point.with_conf(EVAL_CONF), device="cpu", precision="int8")
    return score_samples(samples, predict_samples(predictor, samples), detector.classes, point=point)


def picture(run: Path, files: list[str], out: Path) -> Path:
    """The photos as `detect predict --draw` draws them with its defaults, 4 per row."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as drawn:
        subprocess.run([*VZ, "detect", "predict", str(run), *files, "--draw", drawn, "--quiet"], check=False)
        tiles = []
        for path in sorted(Path(drawn).rglob("*.jpg")):   # --draw writes JPEG whatever the input
            img = Image.open(path).convert("RGB")
            img.thumbnail((320, 320))
            tiles.append(img)
    sheet = Image.new("RGB", (4 * 320, -(-len(tiles) // 4) * 320), "white")
    for i, img in enumerate(tiles):
        sheet.paste(img, ((i % 4) * 320 + (320 - img.width) // 2, (i // 4) * 320 + (320 - img.height) // 2))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=90)
    return out


def masks_row(masks_set: Path, runs_dir: Path, time_budget: float | None, repeat: int, pictures: Path) -> None:
    """Mask R-CNN with its defaults on the membrane cells: train, evaluate on the held-out test tiles, predict."""
    sys.path.insert(0, str(Path(__file__).parent))
    from membrane_instances import build

    if not (masks_set / "test.json").is_file():
        build(masks_set)
    run, t = train("maskrcnn", masks_set / "train", runs_dir, time_budget, masks_set / "train.json")
    print(f"  maskrcnn: {run} ({t})", flush=True)
    evaluated = runs_dir / "maskrcnn.test"
    shutil.rmtree(evaluated, ignore_errors=True)
    subprocess.run([*VZ, "detect", "evaluate", str(run), str(masks_set / "test"), "--annotations",
                    str(masks_set / "test.json"), "--out", str(evaluated), "--quiet"], check=True)
    r, cfg = json.loads((evaluated / "report.json").read_text()), json.loads((run / "config.json").read_text())
    test = masks_set / "test"
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one"
        one.mkdir()
        shutil.copy(min(test.glob("*.png")), one)
        s = predict_speed({"maskrcnn": run}, [], test, one, repeat)["maskrcnn"]
    shown = picture(run, [str(p) for p in sorted(test.glob("*.png"))[:8]], pictures / "maskrcnn_test8.jpg")
    print(f"\nMask R-CNN on the membrane cells ({masks_set}): test = {r['n_images']} tiles of held-out images\n")
    print("| arch | epochs run (best), stopped by | whole `detect train` s (CPU-s, peak MB) | test mask mAP50 | "
          "mask mAP50-95 | box mAP50 | box mAP50-95 | precision | recall | boxes / tile (true) | proposals | "
          "predict tiles/s | CPU-s / tile | peak MB | start-up s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| maskrcnn | {cfg['epochs_run']} ({cfg['best_epoch']}), {cfg['training']['stopped_by']} | "
          f"{t['wall']:.0f} ({t['cpu']:.0f}, {t['peak_mb']:.0f}) | {r['mask']['map50']:.3f} | {r['mask']['map']:.3f} | "
          f"{r['map50']:.3f} | {r['map']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
          f"{r['boxes_per_image']:.1f} ({r['true_boxes_per_image']:.1f}) | {cfg['detector'].get('proposals')} | "
          f"{s['photos_s']:.2f} | {s['cpu_per_photo']:.3f} | {s['peak_mb']:.0f} | {s['startup_s']:.2f} |")
    print(f"  walls {s['walls']} s; load {s['loads']}; the first 8 test tiles as drawn by default: {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--archs", default="fasterrcnn,fcos,retinanet,ssdlite")
    parser.add_argument("--yolo-onnx", default="", help="comma-separated YOLO ONNX graphs (yolo_reference.py)")
    parser.add_argument("--runs", type=Path, default=None, help="keep (and reuse) the run folders here")
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--time-budget", type=float, default=None, help="[default: the command's default]")
    parser.add_argument("--masks-set", type=Path, default=None,
                        help="also Mask R-CNN on the membrane cells, built here (membrane_instances.py) unless there")
    parser.add_argument("--pictures", type=Path, default=Path(tempfile.gettempdir()) / "vz-detect-bench")
    parser.add_argument("--int8", action="store_true", help="also the default arch with `--precision int8`")
    args = parser.parse_args()
    from visionzoo.tasks.detect.config import DEFAULT_ARCH as default_arch  # no torch here: a child's peak RSS
                                                                              # counts its parent's at the fork
    runs_dir = args.runs or Path(tempfile.mkdtemp(prefix="vz-detect-bench-"))
    runs_dir.mkdir(parents=True, exist_ok=True)
    print(f"{args.data}: defaults of `visionzoo detect train`, {os.cpu_count()} CPU cores, load {load()}\n")
    runs, trained = {}, {}
    if args.masks_set:
        masks_row(args.masks_set, runs_dir, args.time_budget, args.repeat, args.pictures)
        if not args.archs:
            return
    for arch in args.archs.split(","):
        runs[arch], trained[arch] = train(arch, args.data, runs_dir, args.time_budget)
        print(f"  {arch}: {runs[arch]} ({trained[arch]})", flush=True)
    yolos = [y for y in args.yolo_onnx.split(",") if y]
    with tempfile.TemporaryDirectory() as tmp:
        folder = photo_folder(args.data, args.photos, Path(tmp) / "photos")
        one = Path(tmp) / "one"
        one.mkdir()
        shutil.copy(next(iter(sorted(folder.iterdir()))), one)
        int8 = [default_arch] if args.int8 and default_arch in runs else []
        speed = predict_speed(runs, yolos, folder, one, args.repeat, int8)
    (runs_dir / "speed.json").write_text(json.dumps(speed, indent=1))
    print(f"\n`detect predict` whole process over {args.photos} photos (median of {args.repeat}); load after: {load()}\n")
    print("| arch | epochs run (best), stopped by | whole `detect train` s (CPU-s, peak MB) | val mAP50 | val mAP50-95 | "
          "precision | recall | boxes / photo (true) | proposals | predict photos/s | CPU-s / photo | peak MB | "
          "start-up s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for arch, run in runs.items():
        cfg = json.loads((run / "config.json").read_text())
        r = json.loads((run / "report.json").read_text())
        t, s = trained[arch], speed[arch]
        train_s = (f"{t['wall']:.0f} ({t['cpu']:.0f}, {t['peak_mb']:.0f})" if t else
                   f"{cfg['training']['seconds']:.0f} (training only)")
        print(f"| {arch}{' (default)' if arch == default_arch else ''} | {cfg['epochs_run']} ({cfg['best_epoch']}), "
              f"{cfg['training']['stopped_by']} | {train_s} | {r['map50']:.3f} | {r['map']:.3f} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} | {r['boxes_per_image']:.2f} ({r['true_boxes_per_image']:.2f}) | "
              f"{cfg['detector'].get('proposals', '-') if arch in ('fasterrcnn', 'maskrcnn') else '-'} | "
              f"{s['photos_s']:.2f} | {s['cpu_per_photo']:.3f} | {s['peak_mb']:.0f} | {s['startup_s']:.2f} |", flush=True)
    for arch in int8:
        r, s = int8_accuracy(runs[arch]), speed[f"{arch} int8"]
        print(f"| {arch} `--precision int8` | | | {r['map50']:.3f} | {r['map']:.3f} | {r['precision']:.3f} | "
              f"{r['recall']:.3f} | {r['boxes_per_image']:.2f} ({r['true_boxes_per_image']:.2f}) | | "
              f"{s['photos_s']:.2f} | {s['cpu_per_photo']:.3f} | {s['peak_mb']:.0f} | {s['startup_s']:.2f} |")
    for y in yolos:
        s = speed[Path(y).name]
        print(f"| reference: {Path(y).name} (random weights, speed only) | | | | | | | | | {s['photos_s']:.2f} | "
              f"{s['cpu_per_photo']:.3f} | {s['peak_mb']:.0f} | {s['startup_s']:.2f} |")
    print("\nwhole-process walls and load averages per repeat:")
    for name, s in speed.items():
        print(f"  {name}: walls {s['walls']} s; load {s['loads']}")
    for name in [default_arch, *(f"{arch} int8" for arch in int8)] if default_arch in runs else []:
        ours = speed[name]
        for y in yolos:
            ref = speed[Path(y).name]
            print(f"  {name} / {Path(y).name}: {ours['photos_s'] / ref['photos_s']:.2f}x photos/s whole process; "
                  f"{ours['after_startup_s'] / ref['after_startup_s']:.2f}x after start-up (the one-photo run's wall); "
                  f"{ref['cpu_per_photo'] / ours['cpu_per_photo']:.2f}x in CPU-s per photo (reference / ours)")
    if default_arch in runs:
        cfg = json.loads((runs[default_arch] / "config.json").read_text())
        files = [str(Path(cfg["dataset"]["source"]) / f) for f in cfg["dataset"]["val_split"]["files"][:8]]
        shown = picture(runs[default_arch], files, args.pictures / f"{default_arch}_val8.jpg")
        print(f"\n({default_arch}: the first 8 validation photos as drawn by default: {shown})")


if __name__ == "__main__":
    main()
