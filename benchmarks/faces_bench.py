"""Faces: which detector finds the faces, how fast detect and embed run, and verify/find accuracy.

Data: /work/shared/datasets/faces (four portraits, a group photo with six faces; MIT, from
facenet-pytorch) and variants made from it with known boxes: the group photo at 1/2 and 1/4
size (faces ~45 and ~22 px), a 3000 x 2000 collage of all of them shrunk (ten faces of 25-90
px), the group photo turned 20 degrees, mirrored / grayscale / JPEG-quality-15 portraits, and
two photos without faces (scikit-image's coffee and cat). Reference boxes: the faces found in
the originals (checked by eye), carried through each variant's geometry.

    python benchmarks/faces_bench.py            # everything (~3 minutes on 2 cores, CNN included)
    python benchmarks/faces_bench.py --no-cnn   # skip dlib's slow CNN detector
    python benchmarks/faces_bench.py --no-cnn --no-variants --repeats 1   # speed + verify/find only (~1 min)
"""
from __future__ import annotations

import argparse
import io
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "faces"
if not DATA.is_dir():
    DATA = Path("/work/shared/datasets/faces")
PORTRAITS = ["angelina_jolie", "kate_siegel", "paul_rudd", "shea_whigham"]


def _load(name: str) -> Image.Image:
    from visionzoo.data.decode import load_rgb

    return load_rgb(str(DATA / name))


def reference_boxes() -> dict[str, np.ndarray]:
    """Faces of the five originals, found by BlazeFace and dlib HOG alike (checked by eye)."""
    from visionzoo.tasks.faces.detectors import detect_faces

    out = {}
    for name in [f"{p}/1.jpg" for p in PORTRAITS] + ["multiface.jpg"]:
        faces = detect_faces(_load(name), "blazeface")
        hog = detect_faces(_load(name), "hog")
        assert len(faces) == len(hog) == (6 if name == "multiface.jpg" else 1), (name, len(faces), len(hog))
        out[name] = np.array([f.box for f in faces])
    return out


def _shrink(img: Image.Image, boxes: np.ndarray, s: float) -> tuple[Image.Image, np.ndarray]:
    return img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS), boxes * s


def _rotate(img: Image.Image, boxes: np.ndarray, deg: float) -> tuple[Image.Image, np.ndarray]:
    out = img.rotate(deg, resample=Image.BICUBIC, expand=True, fillcolor=(128, 128, 128))
    cx, cy = img.width / 2, img.height / 2
    a = math.radians(deg)
    new = []
    for x1, y1, x2, y2 in boxes:
        mx, my = (x1 + x2) / 2 - cx, (y1 + y2) / 2 - cy
        rx, ry = mx * math.cos(a) + my * math.sin(a), -mx * math.sin(a) + my * math.cos(a)
        rx, ry = rx + out.width / 2, ry + out.height / 2
        h = (x2 - x1) / 2
        new.append([rx - h, ry - h, rx + h, ry + h])
    return out, np.array(new)


def variants(ref: dict[str, np.ndarray]) -> list[tuple[str, Image.Image, np.ndarray]]:
    """(name, image, reference boxes) for the originals and every variant."""
    from skimage import data as skdata

    out = [(n, _load(n), b) for n, b in ref.items()]
    group, gboxes = _load("multiface.jpg"), ref["multiface.jpg"]
    out.append(("group 1/2 (faces ~45 px)", *_shrink(group, gboxes, 0.5)))
    out.append(("group 1/4 (faces ~22 px)", *_shrink(group, gboxes, 0.25)))
    out.append(("group turned 20 deg", *_rotate(group, gboxes, 20)))
    canvas = Image.new("RGB", (3000, 2000), (150, 150, 150))
    boxes, x = [], 60
    for p in PORTRAITS:
        img, b = _shrink(_load(f"{p}/1.jpg"), ref[f"{p}/1.jpg"], 260 / _load(f"{p}/1.jpg").height)
        canvas.paste(img, (x, 1500))
        boxes.append(b + [x, 1500, x, 1500])
        x += img.width + 150
    img, b = _shrink(group, gboxes, 0.4)
    canvas.paste(img, (1900, 300))
    boxes.append(b + [1900, 300, 1900, 300])
    out.append(("collage 3000x2000, 10 small faces", canvas, np.concatenate(boxes)))
    for p in PORTRAITS[:2]:
        img, b = _load(f"{p}/1.jpg"), ref[f"{p}/1.jpg"]
        out.append((f"{p} mirrored", ImageOps.mirror(img), np.array([[img.width - b[0, 2], b[0, 1], img.width - b[0, 0], b[0, 3]]])))
    img = _load(f"{PORTRAITS[2]}/1.jpg")
    out.append((f"{PORTRAITS[2]} grayscale", img.convert("L").convert("RGB"), ref[f"{PORTRAITS[2]}/1.jpg"]))
    buf = io.BytesIO()
    _load(f"{PORTRAITS[3]}/1.jpg").save(buf, "JPEG", quality=15)
    out.append((f"{PORTRAITS[3]} JPEG q15", Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), ref[f"{PORTRAITS[3]}/1.jpg"]))
    out.append(("no face: coffee", Image.fromarray(skdata.coffee()), np.zeros((0, 4))))
    out.append(("no face: cat", Image.fromarray(skdata.chelsea()), np.zeros((0, 4))))
    return out


def matches(found: np.ndarray, ref: np.ndarray) -> int:
    """Reference faces hit: a found box whose centre lies in the reference box and vice versa
    (fair to detectors whose boxes are drawn tighter or looser), each used once."""
    used, hits = set(), 0
    for r in ref:
        rc = (r[:2] + r[2:]) / 2
        for j, f in enumerate(found):
            fc = (f[:2] + f[2:]) / 2
            if j not in used and (r[:2] <= fc).all() and (fc <= r[2:]).all() and (f[:2] <= rc).all() and (rc <= f[2:]).all():
                used.add(j)
                hits += 1
                break
    return hits


def detector_table(cases, detectors: list[str]) -> None:
    from visionzoo.tasks.faces.detectors import detect_faces

    print("\n## Detectors on the faces data set and its variants (found / reference faces, false boxes)\n")
    print("| image | faces | " + " | ".join(detectors) + " |")
    print("|---|---|" + "---|" * len(detectors))
    totals = {d: [0, 0, 0.0] for d in detectors}
    n_ref = 0
    for name, img, ref in cases:
        cells = []
        for d in detectors:
            t = time.perf_counter()
            found = np.array([f.box for f in detect_faces(img, d)]).reshape(-1, 4)
            totals[d][2] += time.perf_counter() - t
            hit = matches(found, ref)
            totals[d][0] += hit
            totals[d][1] += len(found) - hit
            cells.append(f"{hit}" + (f" (+{len(found) - hit} false)" if len(found) > hit else ""))
        n_ref += len(ref)
        print(f"| {name} | {len(ref)} | " + " | ".join(cells) + " |")
    print(f"| **total** | {n_ref} | " + " | ".join(f"**{t[0]}** ({t[1]} false)" for t in totals.values()) + " |")
    print(f"| seconds for all {len(cases)} images | | " + " | ".join(f"{t[2]:.1f}" for t in totals.values()) + " |")


def speed_table(detectors: list[str], repeats: int) -> None:
    """images/s of `faces detect` (decode + detect + landmarks) and `faces embed` (+ 128-d
    descriptors) over the five original photos (1200 x 630 to 2048 x 1991 px, 10 faces)."""
    from visionzoo.tasks.faces import detect, embed

    files = [str(DATA / f"{p}/1.jpg") for p in PORTRAITS] + [str(DATA / "multiface.jpg")]
    print(f"\n## Speed on this CPU (the five original photos x {repeats}, one process)\n")
    print("| detector | detect (images/s) | embed (images/s) | embed (faces/s) |")
    print("|---|---|---|---|")
    for d in detectors:
        reps = 1 if d == "cnn" else repeats
        detect(files, detector=d)  # warm-up: models loaded once per process
        t = time.perf_counter()
        for _ in range(reps):
            detect(files, detector=d)
        det = len(files) * reps / (time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            for k in range(reps):
                result = embed(files, Path(tmp) / f"e{k}", detector=d)
            dt = time.perf_counter() - t
        print(f"| {d} | {det:.2f} | {len(files) * reps / dt:.2f} | {result['count'] * reps / dt:.2f} |")


def recognition_table() -> None:
    """verify on held-out variants: distance of each variant to its own original and to the
    other people; find over the group photo with a gallery of the four portraits."""
    from visionzoo.tasks.faces import find, verify

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        same, diff = [], []
        for i, p in enumerate(PORTRAITS):
            img = _load(f"{p}/1.jpg")
            w, h = img.size
            crop = img.crop((w * 0.1, h * 0.05, w * 0.9, h * 0.8)).resize((int(w * 0.4), int(h * 0.75 * 0.4)))
            path = tmp / f"{p}_variant.jpg"
            ImageOps.mirror(crop).save(path, quality=40)
            for j, q in enumerate(PORTRAITS):
                r = verify(str(path), str(DATA / f"{q}/1.jpg"))
                (same if i == j else diff).append(r["distance"])
        print("\n## verify: mirrored, cropped, shrunk, JPEG q40 portraits vs the originals\n")
        print(f"same person: {len(same)} pairs, distance max {max(same):.3f} (mean {np.mean(same):.3f}); "
              f"different: {len(diff)} pairs, min {min(diff):.3f} (mean {np.mean(diff):.3f}); threshold 0.6")
        from skimage import data as skdata

        Image.fromarray(skdata.astronaut()).save(tmp / "stranger_astronaut.jpg")
        _load("multiface.jpg").save(tmp / "strangers_group.jpg")
        right = total = 0
        for r in find(DATA, [str(tmp)]):
            stem = Path(r["path"]).stem
            for f in r["faces"]:
                want = stem[: -len("_variant")] if stem.endswith("_variant") else "unknown"
                right += f["identity"] == want
                total += 1
        print(f"\nfind (gallery: the four originals; queries: the four variants, the astronaut, the six people "
              f"of the group photo who are not in the gallery): {right} of {total} faces named right")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-cnn", action="store_true", help="skip dlib's CNN detector (seconds per image)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-variants", action="store_true", help="skip the detector table over the variants")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"faces data set not found at {DATA}", file=sys.stderr)
        return 2
    detectors = ["blazeface", "hog"] + ([] if args.no_cnn else ["cnn"])
    if not args.no_variants:
        detector_table(variants(reference_boxes()), detectors)
    speed_table(detectors, args.repeats)
    recognition_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
