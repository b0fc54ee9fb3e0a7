"""Faces over a photo library: speed of `faces index` against the pipeline it replaces and against
the sum of its stages' limits, the ONNX embedder against dlib, and find / cluster / resume on a
library where 14 known people appear in many photos among many without faces.

Data: shared/datasets/faces (the five photos, 1200 x 630 to 2048 x 1991 px, x 8 copies), a
folder of ordinary 2-12 MP photos (benchmarks/faces_library.py: faceless photos at 2, 5, 8 and
12 MP with 0-3 people pasted in, JPEG q90) and the library of faces_library.py.

    python benchmarks/faces_index_bench.py              # everything, ~8 minutes on 2 cores
    python benchmarks/faces_index_bench.py --quick      # fewer photos (~4 minutes)
    python benchmarks/faces_index_bench.py --parts speed,library   # some tables only

Figures, all from one run:
- before: decode (3072 px working copy) + detect + dlib's landmarks and dlib's own 128-d
  descriptor per face in one process: what `faces embed` did before the ONNX embedder.
- after: `faces index` (photos/s, all cores, shards written).
- stage limits, each on one core on the same photos: decode at reduced size (draft), the
  detector (every BlazeFace pass a photo needs), the embedder's forward per face; limit =
  cores / (decode + detect + faces per photo x embed) photos/s.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faces_library as fl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _machine() -> str:
    from visionzoo.cpus import usable_cpus

    model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    return f"{usable_cpus()} cores ({model}), load average {os.getloadavg()[0]:.1f}"


# --------------------------------------------------------------------------- embedder
def _recognition_cases():
    """The shared photos and, per portrait, a held-out copy (cropped, mirrored, 40%, JPEG q40)."""
    from PIL import ImageOps

    from visionzoo.data.decode import load_rgb

    photos = [fl.SHARED / "faces" / p / "1.jpg" for p in fl.PORTRAITS] + [fl.SHARED / "faces" / "multiface.jpg"]
    images = [load_rgb(str(p)) for p in photos]
    for img in images[:4]:
        w, h = img.size
        crop = img.crop((w * 0.1, h * 0.05, w * 0.9, h * 0.8)).resize((int(w * 0.4), int(h * 0.3)))
        images.append(fl.recompress(ImageOps.mirror(crop), 40))
    return images


def embedder_table() -> None:
    """The ONNX graph against dlib on the same chips: descriptors, speed, and every verify answer
    between the shared faces and held-out copies of the portraits."""
    from visionzoo.tasks.faces.detectors import detect_faces
    from visionzoo.tasks.faces.models import face_recognizer
    from visionzoo.tasks.faces.recognize import THRESHOLD, align, distances, embed_chips

    chips = []
    for img in _recognition_cases():
        faces = detect_faces(img)
        chips.append(align(np.asarray(img), [f.box for f in faces], [f.points for f in faces])[1])
    chips = np.concatenate(chips)
    ours = embed_chips(chips)
    ref = np.stack([np.asarray(face_recognizer().compute_face_descriptor(c), np.float32) for c in chips])
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    d_ours, d_ref = distances(ours, ours), distances(ref, ref)
    pairs = np.triu_indices(len(chips), 1)
    same = int(((d_ours <= THRESHOLD) == (d_ref <= THRESHOLD))[pairs].sum())
    t = time.perf_counter()
    for _ in range(3):
        for a in range(0, len(chips), 8):
            embed_chips(chips[a:a + 8])
    onnx_ms = (time.perf_counter() - t) / 3 / len(chips) * 1000
    t = time.perf_counter()
    for chip in chips:
        face_recognizer().compute_face_descriptor(chip)
    dlib_ms = (time.perf_counter() - t) / len(chips) * 1000
    print("\n## The embedder: dlib's ResNet rebuilt in ONNX Runtime vs dlib, on the same aligned chips\n")
    print("| faces | cosine min | largest difference | verify answers equal | ONNX Runtime ms/face (1 core, batches of 8) "
          "| dlib ms/face | speed-up |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {len(chips)}: every face of shared/datasets/faces + 4 held-out copies | {cos.min():.7f} | "
          f"{np.abs(ours - ref).max():.1e} | {same} of {len(pairs[0])} pairs (max distance change "
          f"{np.abs(d_ours - d_ref)[pairs].max():.1e}) | {onnx_ms:.1f} | {dlib_ms:.1f} | {dlib_ms / onnx_ms:.1f}x |")


# --------------------------------------------------------------------------- speed
def _cpu() -> float:
    """CPU seconds of this process so far, every thread (a loaded machine's waits not counted)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def before_rate(files: list[str]) -> tuple[float, float]:
    """(photos/s, CPU s/photo) of the pipeline `faces embed` ran before: 3072 px working copy,
    detection, dlib's landmarks and dlib's descriptor per face, one process."""
    from visionzoo.tasks.faces.detectors import detect_faces
    from visionzoo.tasks.faces.images import iter_images
    from visionzoo.tasks.faces.recognize import reference_descriptors

    t, c = time.perf_counter(), _cpu()
    for item in iter_images(files):
        faces = detect_faces(item.image, "blazeface")
        reference_descriptors(np.asarray(item.image), [f.box for f in faces])
    return len(files) / (time.perf_counter() - t), (_cpu() - c) / len(files)


def stage_times(files: list[str]) -> dict[str, float]:
    """CPU seconds per photo of each stage on one thread (and faces per photo), each photo going
    through the stages in turn as in `faces index`."""
    from visionzoo.tasks.faces.detectors import face_boxes
    from visionzoo.tasks.faces.indexing import DETECT_MIN_TILE, DETECT_TILE_RATIO, align_faces, detection_copy
    from visionzoo.tasks.faces.recognize import embed_chips

    total = collections.Counter()
    chips = []
    for f in files:
        t0 = time.thread_time()
        det, decoded, size = detection_copy(f)
        t1 = time.thread_time()
        boxes, scores = face_boxes(det, "blazeface", min_tile=DETECT_MIN_TILE, tile_ratio=DETECT_TILE_RATIO)
        t2 = time.thread_time()
        photo = align_faces(f, decoded, size, boxes * (size[0] / det.width), np.asarray(scores, np.float32))
        t3 = time.thread_time()
        total.update(decode=t1 - t0, detect=t2 - t1, align_other=t3 - t2)
        chips.append(photo.chips)
    chips = np.concatenate(chips)
    t = time.thread_time()
    for a in range(0, len(chips), 8):
        embed_chips(chips[a:a + 8])
    n = len(files)
    return {"decode": total["decode"] / n, "detect": total["detect"] / n, "align_other": total["align_other"] / n,
            "embed_face": (time.thread_time() - t) / len(chips), "faces": len(chips) / n}


def after_rate(files: list[str], tmp: Path) -> tuple[float, float]:
    """(photos/s, CPU s/photo) of `faces index` on every core, shards written."""
    from visionzoo.batch.faces_index import index_faces

    out = tmp / "speed.parquet"
    shutil.rmtree(out, ignore_errors=True)
    t, c = time.perf_counter(), _cpu()
    index_faces(files, out)
    return len(files) / (time.perf_counter() - t), (_cpu() - c) / len(files)


def speed_table(sets: dict[str, list[str]], tmp: Path) -> None:
    from visionzoo.cpus import usable_cpus
    from visionzoo.tasks.faces.indexing import index_photos

    cores = usable_cpus()
    index_photos(sets[next(iter(sets))][:2])  # models loaded once, as in a long run
    print(f"\n## Speed: detect + embed every face (this machine: {_machine()})\n")
    print("Stages: CPU time on one thread, per photo (decode at reduced size, every BlazeFace pass, the embedder's "
          "forward per face); limit = cores / (decode + detector + faces x embedder). CPU columns: the whole "
          "process's CPU time per photo, which other jobs on the machine do not inflate.\n")
    print("| photos | faces/photo | before (photos/s) | after: `faces index` (photos/s) | after / before | "
          "decode reduced (ms) | detector (ms) | embedder (ms/face) | limit (photos/s) | after / limit | "
          "CPU ms/photo: before, after | stages / after CPU | align, crops, JPEG (ms, not in the limit) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, files in sets.items():
        before, before_cpu = before_rate(files)
        st = stage_times(files)
        after, after_cpu = after_rate(files, tmp)
        stages = st["decode"] + st["detect"] + st["faces"] * st["embed_face"]
        limit = cores / stages
        print(f"| {name} | {st['faces']:.2f} | {before:.2f} | **{after:.2f}** | **{after / before:.1f}x** | "
              f"{st['decode'] * 1000:.1f} | {st['detect'] * 1000:.1f} | {st['embed_face'] * 1000:.1f} | {limit:.2f} | "
              f"**{after / limit:.2f}** | {before_cpu * 1000:.0f}, {after_cpu * 1000:.0f} | "
              f"**{stages / after_cpu:.2f}** | {st['align_other'] * 1000:.1f} |")


# --------------------------------------------------------------------------- accuracy
def _inside(p, b) -> bool:
    return b[0] <= p[0] <= b[2] and b[1] <= p[1] <= b[3]


def _person(truth: dict, photo: str, box) -> str | None:
    box = np.asarray(box, float)
    c = (box[:2] + box[2:]) / 2
    for person, gb in truth.get(photo, []):
        gb = np.asarray(gb, float)
        if _inside(c, gb) and _inside((gb[:2] + gb[2:]) / 2, box):
            return person
    return None


def library_tables(lib: Path, gal: Path, truth: dict, tmp: Path, max_distance: float, group_distance: float) -> None:
    from visionzoo.batch.faces_index import index_faces
    from visionzoo.tasks.faces.faceindex import load_index
    from visionzoo.tasks.faces.groups import group_faces
    from visionzoo.tasks.faces.people import find_people

    out = tmp / "library.parquet"
    t = time.perf_counter()
    r = index_faces([lib], out)
    rate = r.photos / (time.perf_counter() - t)
    ix = load_index(out)
    gt = [_person(truth, p, b) for p, b in zip(ix.photos, ix.boxes)]
    want = collections.Counter(p for faces in truth.values() for p, _ in faces)
    found = sum(1 for g in gt if g)
    print(f"\n## The library: {r.photos} photos ({sum(1 for f in truth.values() if not f)} without faces), "
          f"{len(want)} people, {sum(want.values())} faces\n")
    print(f"`faces index`: {rate:.2f} photos/s; {len(ix)} faces found: {found} of the {sum(want.values())} "
          f"true faces ({found / sum(want.values()):.3f}), {len(ix) - found} other (animals, patterns).")
    rows = find_people(gal, out, max_distance)
    right = [r for r in rows if _person(truth, r["path"], r["box"]) == r["person"]]
    named = [p for p in want if (gal / p).is_dir()]
    total = sum(want[p] for p in named)
    per = collections.Counter(r["person"] for r in right)
    print(f"\n### find (gallery: {sum(1 for _ in gal.rglob('*.jpg'))} held-out photos of the {len(named)} people; "
          f"--max-distance {max_distance})\n")
    print("| person | appearances | found | wrong |")
    print("|---|---|---|---|")
    for p in sorted(named):
        wrong = sum(1 for r in rows if r["person"] == p) - per[p]
        print(f"| {p} | {want[p]} | {per[p]} | {wrong} |")
    print(f"| **all** | {total} | **recall {len(right) / total:.3f}** | **precision {len(right) / max(1, len(rows)):.3f}** |")
    from sklearn.cluster import DBSCAN

    print(f"\n### cluster (--max-distance {group_distance}, --min-faces 2)\n")
    print("| grouping | groups | purity (the people's faces) | most groups for one person | people's faces in no "
          "group | non-faces (false detections) in groups |")
    print("|---|---|---|---|---|---|")
    chinese = group_faces(ix.embeddings, group_distance).labels
    dbscan = DBSCAN(eps=group_distance, min_samples=2).fit_predict(ix.embeddings)
    for name, labels in (("**Chinese whispers** (`faces cluster`)", chinese), ("DBSCAN (scikit-learn), for "
                                                                                "comparison", dbscan)):
        print(_grouping_row(name, labels, gt, len(ix) - found))


def _grouping_row(name: str, labels: np.ndarray, gt: list, non_faces: int) -> str:
    majority = members = with_fp = 0
    for k in set(labels.tolist()) - {-1}:
        mem = [gt[i] for i in np.flatnonzero(labels == k)]
        people = [m for m in mem if m]
        if people:
            majority += collections.Counter(people).most_common(1)[0][1]
            members += len(people)
        with_fp += sum(1 for m in mem if m is None)
    people = {g for g in gt if g}
    splits = {p: len({labels[i] for i in range(len(gt)) if gt[i] == p and labels[i] >= 0}) for p in people}
    alone = sum(1 for i in range(len(gt)) if gt[i] and labels[i] < 0)
    return (f"| {name} | {len(set(labels.tolist()) - {-1})} | **{majority / max(1, members):.3f}** | "
            f"**{max(splits.values())}** | {alone} | {with_fp} of {non_faces} |")


def resume_check(lib: Path, tmp: Path) -> None:
    """kill -9 a `faces index` run after its first shard, --resume it, compare with a whole run."""
    import pyarrow.parquet as pq

    def rows(index: Path) -> list:
        tables = [pq.read_table(p) for p in sorted(index.glob("part-*.parquet"))]
        return sorted((r for t in tables for r in zip(*(t.column(c).to_pylist() for c in t.column_names))),
                      key=lambda r: r[0])

    cmd = [sys.executable, "-m", "visionzoo", "faces", "index", str(lib), "--partition-size", "32", "--quiet", "--out"]
    whole, crashed = tmp / "whole.parquet", tmp / "crashed.parquet"
    subprocess.run(cmd + [str(whole)], check=True, capture_output=True)
    proc = subprocess.Popen(cmd + [str(crashed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    while not list(crashed.glob("part-*.parquet")) and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = len(list(crashed.glob("part-*.parquet")))
    subprocess.run(cmd + [str(crashed), "--resume"], check=True, capture_output=True)
    same = rows(crashed) == rows(whole)
    stamps = {p.name: p.stat().st_mtime_ns for p in crashed.iterdir()}
    again = subprocess.run(cmd + [str(crashed)], capture_output=True, text=True)
    unchanged = {p.name: p.stat().st_mtime_ns for p in crashed.iterdir()} == stamps
    print("\n## Resume and adding photos\n")
    print(f"kill -9 after {kept} of {len(list(whole.glob('part-*.parquet')))} shards, then --resume: rows identical "
          f"to an uninterrupted run: **{same}** ({len(rows(whole))} faces, every column); a second `faces index` "
          f"over the same folder: exit {again.returncode}, '{again.stderr.strip().splitlines()[-1]}', files "
          f"untouched: **{unchanged}**.")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer photos")
    ap.add_argument("--root", type=Path, help="keep the generated photos here (default: a temporary folder)")
    ap.add_argument("--max-distance", type=float, default=0.6)
    ap.add_argument("--group-distance", type=float, default=0.45)
    ap.add_argument("--parts", default="embedder,speed,library,resume",
                    help="which tables, comma-separated (default: all)")
    args = ap.parse_args()
    if not (fl.SHARED / "faces").is_dir():
        print(f"faces data set not found at {fl.SHARED / 'faces'}", file=sys.stderr)
        return 2
    os.environ.setdefault("VISIONZOO_CACHE", tempfile.mkdtemp(prefix="vz-faces-cache-"))
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        root = Path(os.path.abspath(args.root or tmp / "photos"))  # the index names photos by absolute path
        copies = 4 if args.quick else 8
        shared = root / f"shared_x{copies}"
        shared.mkdir(parents=True, exist_ok=True)
        for k in range(copies):
            for src in [fl.SHARED / "faces" / p / "1.jpg" for p in fl.PORTRAITS] + [fl.SHARED / "faces" / "multiface.jpg"]:
                dst = shared / f"{src.parent.name if src.name == '1.jpg' else 'group'}_{k}.jpg"
                if not dst.exists():
                    shutil.copy(src, dst)
        big = sorted((root / "big").glob("*.jpg")) or fl.big_photos(root / "big", per_size=3 if args.quick else 6)
        print(f"# faces index benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {_machine()})")
        parts = set(args.parts.split(","))
        if "embedder" in parts:
            embedder_table()
        if "speed" in parts:
            speed_table({f"shared/datasets/faces, 5 photos x {copies}": sorted(map(str, shared.glob("*.jpg"))),
                         f"ordinary 2-12 MP photos ({len(big)})": [str(p) for p in big]}, tmp)
        if (root / "truth.json").is_file():
            lib, gal, truth = root / "library", root / "gallery", json.loads((root / "truth.json").read_text())
        else:
            lib, gal, truth = fl.build(root, per_person=12 if args.quick else 24, faceless=80 if args.quick else 200)
        if "library" in parts:
            library_tables(lib, gal, truth, tmp, args.max_distance, args.group_distance)
        if "resume" in parts:
            resume_check(lib, tmp)
        print(f"\n(load average at the end: {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
