"""`visionzoo audit` on real photos with planted errors: does it find them, how much else does it
flag, and what does the whole command cost on this CPU.

Two data sets, both built here from real photos and both with errors planted here:
(a) class folders (train/ + a seeded 20 % val/) of ~1,000 real image crops in three classes:
    raccoon (each box of the raccoon set with a margin), background (pieces of the same photos
    that touch no box) and membrane (tiles of the EM membrane images). Audited once clean, then
    with 5 % of the labels flipped to another class and 10 train images copied into val (resized
    0.5-0.9x, re-saved at JPEG quality 40-85). Also audited clean: scikit-image's lfw_subset
    (100 faces, 100 non-faces of 25x25 px), where distinct faces in one pose can hash alike.
(b) the raccoon boxes (Pascal VOC, train/ + a seeded 20 % val/) with 5 % of the images' boxes made
    wrong (a box removed, or moved off its raccoon onto background) and 10 train photos copied
    into val with their boxes. Boxes are judged by cross-fitted detectors (`detect train` on the
    other fold).
The raccoon set holds three copies of its own (11=116, 52=74, and a burst 186~199): the second of
each is left out, so that every copy the audit finds is one planted here.

Label errors: precision of the top k flagged (k = the number planted) and recall of everything
flagged. Copies: planted copies found, and pairs reported that were not planted ("false copies").
Time: the whole `visionzoo audit` process (start-up, features, every check, report, pictures).

    flock /work/notes/heavy.lock .venv/bin/python benchmarks/audit_bench.py [--skip-detect]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("VISIONZOO_OFFLINE", "1")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
RACCOON, MEMBRANE = SHARED / "raccoon", SHARED / "membrane" / "image"
OWN_COPIES = {"raccoon-116.jpg", "raccoon-74.jpg", "raccoon-199.jpg"}
FLIP, COPIES = 0.05, 10


# --------------------------------------------------------------------------- real photos
def raccoon_photos() -> list[tuple[Path, list[tuple[str, list[float]]]]]:
    """(image, [(class, box)]) of the raccoon set, its own copies left out."""
    out = []
    for xml in sorted((RACCOON / "annotations").glob("*.xml")):
        node = ET.parse(xml).getroot()
        name = node.findtext("filename")
        if name in OWN_COPIES:
            continue
        boxes = [(o.findtext("name"), [float(o.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")])
                 for o in node.findall("object")]
        out.append((RACCOON / "images" / name, boxes))
    return out


def _overlaps(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def photo_crops(dest: Path, seed: int = 0, background_per_photo: int = 6) -> None:
    """dest/CLASS/*.jpg|png: raccoon boxes, background pieces and membrane tiles."""
    rng = np.random.default_rng(seed)
    for cls in ("raccoon", "background", "membrane"):
        (dest / cls).mkdir(parents=True, exist_ok=True)
    for path, boxes in raccoon_photos():
        img = Image.open(path).convert("RGB")
        w, h = img.size
        for n, (_, (x1, y1, x2, y2)) in enumerate(boxes):
            mx, my = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
            box = (max(0, x1 - mx), max(0, y1 - my), min(w, x2 + mx), min(h, y2 + my))
            if min(box[2] - box[0], box[3] - box[1]) >= 40:
                img.crop(tuple(round(v) for v in box)).save(dest / "raccoon" / f"{path.stem}-{n}.jpg", quality=90)
        taken: list[tuple[float, ...]] = []
        for _ in range(80):
            side = rng.uniform(0.15, 0.35) * min(w, h)
            cw, ch = side * rng.uniform(0.8, 1.25), side
            if cw >= w or ch >= h:
                continue
            x, y = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
            cand = (x, y, x + cw, y + ch)
            if any(_overlaps(cand, b) for _, b in boxes) or any(_overlaps(cand, t) for t in taken):
                continue
            taken.append(cand)
            img.crop(tuple(round(v) for v in cand)).save(dest / "background" / f"{path.stem}-bg{len(taken)}.jpg",
                                                          quality=90)
            if len(taken) == background_per_photo:
                break
    # The membrane images are serial sections: the same tile of two neighbouring sections is a near-copy
    # (22-28 hash bits apart), so each section's 4x4 grid of 100 px tiles starts at another offset.
    for path in sorted(MEMBRANE.glob("*.png"), key=lambda p: int(p.stem)):
        img = Image.open(path).convert("L")
        off = (int(path.stem) % 4) * (img.width - 400) // 3
        for r in range(4):
            for c in range(4):
                img.crop((off + c * 100, off + r * 100, off + (c + 1) * 100, off + (r + 1) * 100)).save(
                    dest / "membrane" / f"em{path.stem}-{r}{c}.png")


def lfw_folders(dest: Path) -> Path:
    """scikit-image's lfw_subset (100 faces, 100 non-faces, 25x25 grey) as face/ and nonface/ folders."""
    from skimage import data

    for i, face in enumerate(data.lfw_subset()):
        folder = dest / ("face" if i < 100 else "nonface")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.clip(face, 0, 1) * 255).astype(np.uint8)).save(folder / f"lfw{i:03d}.png")
    return dest


def split_folders(flat: Path, root: Path, seed: int = 0, val: float = 0.2) -> list[Path]:
    """root/train/CLASS and root/val/CLASS from flat/CLASS, a seeded stratified split."""
    from visionzoo.data.splits import holdout

    files = sorted(p for p in flat.rglob("*") if p.is_file())
    kept, held = holdout(len(files), val, seed, strata=[sorted({f.parent.name for f in files}).index(f.parent.name)
                                                        for f in files])
    out = []
    for split, rows in (("train", kept), ("val", held)):
        for i in rows:
            target = root / split / files[i].parent.name / files[i].name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(files[i], target)
            out.append(target)
    return out


def plant_class_errors(root: Path, seed: int = 1) -> dict[str, set]:
    """Flip FLIP of the labels (move the file to another class folder) and copy COPIES train images into
    val; returns {"flipped": paths, "copies": {(copy, original)}} as the audit will name them."""
    rng = np.random.default_rng(seed)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    classes = sorted({p.parent.name for p in files})
    train = [p for p in files if p.parts[-3] == "train"]
    originals = [train[i] for i in rng.choice(len(train), COPIES, replace=False)]
    copies = set()
    for n, p in enumerate(originals):
        img = Image.open(p).convert("RGB")
        scale, quality = (0.5, 0.6, 0.7, 0.8, 0.9)[n % 5], (40, 60, 85)[n % 3]
        copy = root / "val" / p.parent.name / f"copy{n}-{p.stem}.jpg"
        img.resize((max(8, round(img.width * scale)), max(8, round(img.height * scale))), Image.LANCZOS).save(
            copy, quality=quality)
        copies.add((str(copy), str(p)))
    pool = [p for p in files if p not in originals]
    flipped = set()
    for i in rng.choice(len(pool), round(FLIP * len(files)), replace=False):
        p = pool[i]
        other = rng.choice([c for c in classes if c != p.parent.name])
        target = p.parent.parent / other / p.name
        p.rename(target)
        flipped.add(str(target))
    return {"flipped": flipped, "copies": copies}


# --------------------------------------------------------------------------- raccoon boxes
def _voc(path: Path, name: str, size: tuple[int, int], boxes: list[tuple[str, list[float]]]) -> None:
    objects = "".join(f"<object><name>{c}</name><difficult>0</difficult><bndbox><xmin>{b[0]:.0f}</xmin>"
                      f"<ymin>{b[1]:.0f}</ymin><xmax>{b[2]:.0f}</xmax><ymax>{b[3]:.0f}</ymax></bndbox></object>"
                      for c, b in boxes)
    path.write_text(f"<annotation><filename>{name}</filename><size><width>{size[0]}</width><height>{size[1]}"
                    f"</height><depth>3</depth></size>{objects}</annotation>", "utf-8")


def raccoon_voc_with_errors(root: Path, seed: int = 0) -> dict[str, set]:
    """root/train and root/val as VOC folders, FLIP of the images with a box removed or moved off its
    raccoon, COPIES train photos copied into val; returns {"box_errors": image paths, "copies": pairs}."""
    from visionzoo.data.splits import holdout

    rng = np.random.default_rng(seed)
    photos = raccoon_photos()
    kept, held = holdout(len(photos), 0.2, seed)
    split = {i: "train" for i in kept} | {i: "val" for i in held}
    where = {}
    for i, (path, boxes) in enumerate(photos):
        for sub in ("images", "annotations"):
            (root / split[i] / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / split[i] / "images" / path.name)
        where[i] = root / split[i] / "images" / path.name
    originals = [kept[j] for j in rng.choice(len(kept), COPIES, replace=False)]
    copies = set()
    for n, i in enumerate(originals):
        path, boxes = photos[i]
        img = Image.open(path).convert("RGB")
        scale, quality = (0.5, 0.6, 0.7, 0.8, 0.9)[n % 5], (40, 60, 85)[n % 3]
        small = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
        name = f"copy{n}-{path.name}"
        small.save(root / "val" / "images" / name, quality=quality)
        _voc(root / "val" / "annotations" / f"copy{n}-{path.stem}.xml", name, small.size,
             [(c, [v * scale for v in b]) for c, b in boxes])
        copies.add((str(root / "val" / "images" / name), str(where[i])))
    pool = [i for i in range(len(photos)) if i not in originals]
    wrong = set(int(i) for i in rng.choice(pool, round(FLIP * (len(photos) + COPIES)), replace=False))
    errors = set()
    for n, i in enumerate(sorted(wrong)):
        path, boxes = photos[i]
        w, h = Image.open(path).size
        boxes = [(c, list(b)) for c, b in boxes]
        if n % 2 == 0:  # a raccoon left without its box
            boxes.pop(int(rng.integers(len(boxes))))
        else:  # the box moved to the largest stretch of the image beside it (a third of its size)
            c, (x1, y1, x2, y2) = boxes[0]
            bw, bh = (x2 - x1) / 3, (y2 - y1) / 3
            gaps = [(x1, 0, "left"), (w - x2, 0, "right"), (y1, 1, "top"), (h - y2, 1, "bottom")]
            room, axis, side = max(gaps)
            if side == "left":
                box = [max(0, x1 - bw) / 2, y1, max(0, x1 - bw) / 2 + bw, y1 + bh]
            elif side == "right":
                box = [(x2 + w - bw) / 2, y1, (x2 + w - bw) / 2 + bw, y1 + bh]
            elif side == "top":
                box = [x1, max(0, y1 - bh) / 2, x1 + bw, max(0, y1 - bh) / 2 + bh]
            else:
                box = [x1, (y2 + h - bh) / 2, x1 + bw, (y2 + h - bh) / 2 + bh]
            boxes[0] = (c, box)
        photos[i] = (path, boxes)
        errors.add(str(where[i]))
    for i, (path, boxes) in enumerate(photos):
        _voc(root / split[i] / "annotations" / f"{path.stem}.xml", path.name, Image.open(path).size, boxes)
    return {"box_errors": errors, "copies": copies}


# --------------------------------------------------------------------------- measuring
def run_audit(data: Path, out: Path, *extra: str) -> tuple[dict, list[dict], float]:
    """The whole `visionzoo audit` process: (report.json, issues.csv rows, seconds)."""
    import csv

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "visionzoo", "audit", str(data), "--out", str(out), "--quiet",
                           *extra], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"audit failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    with (out / "issues.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return json.loads((out / "report.json").read_text("utf-8")), rows, seconds


def score(rows: list[dict], kind: str, planted: set[str], copies: set[tuple[str, str]]) -> dict:
    flagged = [r["path"] for r in rows if r["kind"] == kind]  # most certain first
    k = len(planted)
    pairs = {frozenset((r["path"], r["other_path"])) for r in rows if r["kind"] in ("leakage", "duplicate")}
    truth = {frozenset(c) for c in copies}
    return {"planted": k, "precision_at_k": len(set(flagged[:k]) & planted) / max(k, 1),
            "recall": len(set(flagged) & planted) / max(k, 1), "flagged": len(flagged),
            "copies_found": len(pairs & truth), "false_copies": len(pairs - truth)}


def _row(name: str, report: dict, s: dict, seconds: float) -> str:
    per = report["per_1000"]
    if not s["planted"]:  # a clean set: every finding is a false alarm or a flaw of the data itself
        return (f"| {name} | {report['images']} | - | - ({s['flagged']} flagged) | - | {s['false_copies']} | "
                f"{per:.1f} | {seconds:.0f} |")
    return (f"| {name} | {report['images']} | {s['precision_at_k']:.2f} (k={s['planted']}) | {s['recall']:.2f} "
            f"({s['flagged']} flagged) | {s['copies_found']}/{COPIES} | {s['false_copies']} | {per:.1f} | "
            f"{seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-detect", action="store_true", help="only the class-folder set (minutes less)")
    parser.add_argument("--keep", type=Path, help="build the sets and reports here and keep them")
    args = parser.parse_args()
    if not RACCOON.is_dir() or not MEMBRANE.is_dir():
        raise SystemExit(f"no real photos at {SHARED}")
    tmp = Path(tempfile.mkdtemp(prefix="vz-audit-bench-")) if args.keep is None else args.keep
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPU cores; data and reports in {tmp}\n")
    print("| data set | images | label errors: precision in top k | recall | planted copies found | false copies "
          "| findings per 1,000 images | whole audit s |")
    print("|---|---|---|---|---|---|---|---|")
    try:
        photo_crops(tmp / "crops")
        split_folders(tmp / "crops", tmp / "clean")
        report, rows, seconds = run_audit(tmp / "clean", tmp / "clean-audit")
        print(_row("class folders, clean", report, score(rows, "label_error", set(), set()), seconds), flush=True)
        clean_counts = {k: n for k, n in report["findings"].items() if n}
        lfw_report, lfw_rows, seconds = run_audit(lfw_folders(tmp / "lfw"), tmp / "lfw-audit")
        print(_row("lfw faces / non-faces (25 px), clean", lfw_report, score(lfw_rows, "label_error", set(), set()),
                   seconds), flush=True)
        shutil.copytree(tmp / "clean", tmp / "planted")
        truth = plant_class_errors(tmp / "planted")
        report, rows, seconds = run_audit(tmp / "planted", tmp / "planted-audit")
        print(_row("class folders, 5 % flipped + 10 copies", report, score(rows, "label_error", truth["flipped"],
                                                                           truth["copies"]), seconds), flush=True)
        planted_counts = {k: n for k, n in report["findings"].items() if n}
        planted_seconds = report["seconds"]
        if not args.skip_detect:
            truth = raccoon_voc_with_errors(tmp / "raccoon")
            report, rows, seconds = run_audit(tmp / "raccoon", tmp / "raccoon-audit")
            s = score(rows, "box_error", truth["box_errors"], truth["copies"])
            print(_row("raccoon boxes, 5 % of images' boxes wrong + 10 copies", report, s, seconds), flush=True)
            print(f"\nraccoon findings: { {k: n for k, n in report['findings'].items() if n} }; "
                  f"seconds: {report['seconds']}")
        print(f"\nclean class folders, findings by kind: {clean_counts}")
        print(f"lfw, findings by kind: { {k: n for k, n in lfw_report['findings'].items() if n} }")
        print(f"planted class folders, findings by kind: {planted_counts}; seconds: {planted_seconds}")
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
