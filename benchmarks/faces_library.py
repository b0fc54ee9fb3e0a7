"""A photo library with known people in it, built from the real photos this machine has.

People (14): the four portraits of shared/datasets/faces, the six people of its group photo
(group_a..group_f, left to right), scikit-image's astronaut, and the three people of the sign-
language clips of shared/datasets/video (video_book: the woman of book.mkv, video_thanks: the man
of thanks.mkv, video_yesno: the man of yes.mkv and no.mkv). Each appears in many photos: the
source transformed (scaled, cropped, turned, mirrored, recompressed, grey, darker, blurred, noisy),
pasted (head and shoulders, feathered) into other photos at several sizes beside other people,
and for the clips, their own frames. Faceless photos: the raccoon photos of
shared/datasets/raccoon, the bottle clip's frames, and scikit-image's coffee, cat, rocket and
microscopy images, many of them transformed too.

Truth: every face's person and box in each photo, carried through each transform from the boxes
found in the sources (the portraits' and the group photo's checked by eye). The gallery holds
held-out photos of every person: transforms the library does not contain, and for the clips,
frames the library does not contain (video_yesno: the no.mkv clip only).
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/datasets")
PORTRAITS = ["angelina_jolie", "kate_siegel", "paul_rudd", "shea_whigham"]
GROUP = [f"group_{c}" for c in "abcdef"]


@dataclass
class Photo:
    image: Image.Image
    faces: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (person, x1 y1 x2 y2)

    def map(self, image: Image.Image, fn) -> "Photo":
        return Photo(image, [(p, fn(b)) for p, b in self.faces])


def _boxes(img: Image.Image) -> np.ndarray:
    from visionzoo.tasks.faces.detectors import face_boxes

    boxes, _ = face_boxes(img, "blazeface", min_score=0.75)  # sure faces only: the sources' truth
    return np.clip(boxes, 0, [img.width, img.height] * 2)


def _frames(name: str) -> list[Image.Image]:
    import av

    with av.open(str(SHARED / "video" / name)) as c:
        return [f.to_image().convert("RGB") for f in c.decode(video=0)]


def sources() -> tuple[dict[str, list[Photo]], list[Image.Image]]:
    """({person or 'group': [source photos]}, faceless photos)."""
    from skimage import data as skdata

    people: dict[str, list[Photo]] = {}
    for p in PORTRAITS:
        img = Image.open(SHARED / "faces" / p / "1.jpg").convert("RGB")
        (box,) = _boxes(img)
        people[p] = [Photo(img, [(p, box)])]
    group = Image.open(SHARED / "faces" / "multiface.jpg").convert("RGB")
    boxes = sorted(_boxes(group), key=lambda b: b[0])
    assert len(boxes) == 6, len(boxes)
    people["group"] = [Photo(group, list(zip(GROUP, boxes)))]
    astro = Image.fromarray(skdata.astronaut())
    people["astronaut"] = [Photo(astro, [("astronaut", _boxes(astro)[0])])]
    for person, clip in (("video_book", "book.mkv"), ("video_thanks", "thanks.mkv"), ("video_yesno", "yes.mkv"),
                         ("video_yesno_held", "no.mkv")):
        people[person] = []
        for img in _frames(clip)[::3]:
            found = _boxes(img)
            if len(found) == 1:  # frames where the face is hidden by the hands are left out
                people[person].append(Photo(img, [(person.replace("_held", ""), found[0])]))
    faceless = [Image.open(p).convert("RGB") for p in sorted((SHARED / "raccoon" / "images").glob("*.jpg"))]
    faceless += _frames("bottle-detection.mp4")[::60]
    faceless += [Image.fromarray(a) for a in (skdata.coffee(), skdata.chelsea(), skdata.rocket(),
                                               skdata.immunohistochemistry(), skdata.hubble_deep_field())]
    return people, faceless


# --------------------------------------------------------------------------- transforms
def scale(ph: Photo, s: float) -> Photo:
    img = ph.image.resize((max(8, round(ph.image.width * s)), max(8, round(ph.image.height * s))), Image.LANCZOS)
    return ph.map(img, lambda b: b * s)


def crop(ph: Photo, rng: np.random.Generator) -> Photo:
    """A random crop holding every face whole (at least 60% of each side)."""
    w, h = ph.image.size
    lo = np.min([b[:2] for _, b in ph.faces], 0) if ph.faces else np.array([w, h])
    hi = np.max([b[2:] for _, b in ph.faces], 0) if ph.faces else np.zeros(2)
    x0 = rng.uniform(0, min(lo[0], 0.4 * w))
    y0 = rng.uniform(0, min(lo[1], 0.4 * h))
    x1 = rng.uniform(max(hi[0], x0 + 0.6 * w), w) if max(hi[0], x0 + 0.6 * w) < w else w
    y1 = rng.uniform(max(hi[1], y0 + 0.6 * h), h) if max(hi[1], y0 + 0.6 * h) < h else h
    box = (int(x0), int(y0), int(math.ceil(x1)), int(math.ceil(y1)))
    return ph.map(ph.image.crop(box), lambda b: b - [box[0], box[1]] * 2)


def rotate(ph: Photo, deg: float) -> Photo:
    img = ph.image.rotate(deg, resample=Image.BICUBIC, expand=True, fillcolor=(90, 90, 90))
    cx, cy, a = ph.image.width / 2, ph.image.height / 2, math.radians(deg)

    def turned(b):
        mx, my = (b[0] + b[2]) / 2 - cx, (b[1] + b[3]) / 2 - cy
        rx = mx * math.cos(a) + my * math.sin(a) + img.width / 2
        ry = -mx * math.sin(a) + my * math.cos(a) + img.height / 2
        half = (b[2] - b[0]) / 2
        return np.array([rx - half, ry - half, rx + half, ry + half])

    return ph.map(img, turned)


def mirror(ph: Photo) -> Photo:
    w = ph.image.width
    return ph.map(ImageOps.mirror(ph.image), lambda b: np.array([w - b[2], b[1], w - b[0], b[3]]))


def recompress(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def tone(ph: Photo, rng: np.random.Generator) -> Photo:
    """One photometric change: grey, darker/brighter, blur, noise or a heavy recompression."""
    img, kind = ph.image, rng.integers(5)
    if kind == 0:
        img = img.convert("L").convert("RGB")
    elif kind == 1:
        img = Image.eval(img, lambda v, g=rng.uniform(0.55, 1.3): min(255, int(v * g)))
    elif kind == 2:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 1.8)))
    elif kind == 3:
        arr = np.asarray(img, np.float32) + rng.normal(0, 8, (img.height, img.width, 1))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    else:
        img = recompress(img, int(rng.integers(15, 35)))
    return Photo(img, ph.faces)


def variant(ph: Photo, rng: np.random.Generator) -> Photo:
    """A random chain of geometric and photometric changes."""
    ph = scale(ph, rng.uniform(0.35, 1.0))
    if rng.random() < 0.6:
        ph = crop(ph, rng)
    if rng.random() < 0.35:
        ph = rotate(ph, rng.uniform(-20, 20))
    if rng.random() < 0.5:
        ph = mirror(ph)
    return tone(ph, rng) if rng.random() < 0.7 else ph


def head(ph: Photo, person_index: int = 0) -> tuple[Image.Image, list[tuple[str, np.ndarray]]]:
    """(head and shoulders around one face, the faces in that crop: that face first, then any
    neighbour at least half inside it, clipped to it)."""
    _, b = ph.faces[person_index]
    fw = b[2] - b[0]
    cx = (b[0] + b[2]) / 2
    box = np.array([int(cx - 1.3 * fw), int(b[1] - 0.8 * fw), int(cx + 1.3 * fw), int(b[3] + 1.4 * fw)], float)
    faces = [(p, f) for i, (p, f) in enumerate(ph.faces) if i == person_index]
    for i, (p, f) in enumerate(ph.faces):
        inner = np.clip(f, box[[0, 1, 0, 1]], box[[2, 3, 2, 3]])
        if i != person_index and (inner[2] - inner[0]) * (inner[3] - inner[1]) >= 0.5 * (f[2] - f[0]) * (f[3] - f[1]):
            faces.append((p, inner))
    return ph.image.crop(tuple(int(v) for v in box)), [(p, f - box[[0, 1, 0, 1]]) for p, f in faces]


def _feather(size: tuple[int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse([size[0] * 0.04, size[1] * 0.02, size[0] * 0.96, size[1] * 1.3], fill=255)
    return mask.filter(ImageFilter.GaussianBlur(max(1, size[0] // 25)))


def composite(background: Image.Image, heads: list[tuple[Image.Image, list]], long_side: int,
              rng: np.random.Generator, face_fraction: tuple[float, float] = (0.05, 0.2)) -> Photo:
    """`background` resized to `long_side` with a little sensor-like noise, and each head pasted
    where it does not cover another, its main face `face_fraction` of the long side wide."""
    s = long_side / max(background.size)
    canvas = background.resize((round(background.width * s), round(background.height * s)), Image.BICUBIC)
    arr = np.asarray(canvas, np.float32) + rng.normal(0, 3, (canvas.height, canvas.width, 1))
    canvas = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    faces, taken = [], []
    for img, inside in heads:
        box = inside[0][1]
        f = rng.uniform(*face_fraction) * long_side / (box[2] - box[0])
        piece = img.resize((max(8, round(img.width * f)), max(8, round(img.height * f))), Image.LANCZOS)
        if piece.width >= canvas.width or piece.height >= canvas.height:
            continue
        for _ in range(20):
            x, y = int(rng.integers(0, canvas.width - piece.width)), int(rng.integers(0, canvas.height - piece.height))
            if all(x + piece.width < a or x > c or y + piece.height < b or y > d for a, b, c, d in taken):
                break
        else:
            continue
        canvas.paste(piece, (x, y), _feather(piece.size))
        taken.append((x, y, x + piece.width, y + piece.height))
        faces += [(person, b * f + [x, y, x, y]) for person, b in inside]
    return Photo(canvas, faces)


# --------------------------------------------------------------------------- the library
def _save(ph: Photo, path: Path, truth: dict, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ph.image.save(path, "JPEG", quality=int(rng.integers(70, 95)))
    truth[str(path)] = [(p, [round(float(v), 1) for v in b]) for p, b in ph.faces]


def build(root: Path, seed: int = 0, per_person: int = 24, faceless: int = 160) -> tuple[Path, Path, dict]:
    """(library folder, gallery folder, truth {photo path: [(person, box)]}) under `root`."""
    rng = np.random.default_rng(seed)
    people, empty = sources()
    lib, gal, truth = root / "library", root / "gallery", {}
    singles = {p: people[p][0] for p in [*PORTRAITS, "astronaut"]}
    heads = [head(ph) for ph in singles.values()] + [head(people["group"][0], i) for i in range(6)]
    for p, ph in singles.items():  # held out: a mirrored, cropped, recompressed copy
        g = tone(crop(mirror(scale(ph, 0.6)), rng), rng)
        _save(g, gal / p / "held_out.jpg", {}, rng)
        for k in range(per_person // 2):
            _save(variant(ph, rng), lib / "variants" / f"{p}_{k:02d}.jpg", truth, rng)
    group = people["group"][0]
    for i, (person, box) in enumerate(group.faces):  # held out: each face of a turned, recompressed copy
        turned = rotate(scale(group, 0.9), -8)
        _, b = turned.faces[i]
        w = b[2] - b[0]
        _save(Photo(recompress(turned.image.crop((int(b[0] - w), int(b[1] - w), int(b[2] + w), int(b[3] + w))), 50)),
              gal / person / "held_out.jpg", {}, rng)
    for k in range(per_person // 2):
        _save(variant(group, rng), lib / "variants" / f"group_{k:02d}.jpg", truth, rng)
    for person in ("video_book", "video_thanks", "video_yesno"):
        # held out: two frames of another clip (no.mkv), or the clip's first two, whose
        # neighbouring frames the library leaves out too
        frames = people[person]
        held, keep = (people["video_yesno_held"][:2], frames) if person == "video_yesno" else (frames[:2], frames[4:])
        for j, f in enumerate(held):
            _save(f, gal / person / f"held_out_{j}.jpg", {}, rng)
        for k, f in enumerate(keep):
            _save(f if rng.random() < 0.5 else tone(f, rng), lib / "frames" / f"{person}_{k:02d}.jpg", truth, rng)
    n_comp = per_person * len(heads) // 3
    for k in range(n_comp):
        chosen = rng.choice(len(heads), size=int(rng.integers(1, 4)), replace=False)
        bg = empty[int(rng.integers(len(empty)))]
        ph = composite(bg, [heads[i] for i in chosen], int(rng.integers(1200, 2600)), rng)
        _save(tone(ph, rng) if rng.random() < 0.3 else ph, lib / "scenes" / f"scene_{k:03d}.jpg", truth, rng)
    for k in range(faceless):
        img = empty[k % len(empty)]
        _save(Photo(img) if k < len(empty) else variant(Photo(img), rng), lib / "no_faces" / f"empty_{k:03d}.jpg",
              truth, rng)
    (root / "truth.json").write_text(json.dumps(truth))
    return lib, gal, truth


def big_photos(root: Path, seed: int = 0, per_size: int = 6) -> list[Path]:
    """Ordinary 2-12 MP photos: faceless backgrounds at that size with 0-3 people pasted in
    (faces 4-15% of the long side), JPEG quality 90."""
    rng = np.random.default_rng(seed)
    people, empty = sources()
    heads = [head(people[p][0]) for p in [*PORTRAITS, "astronaut"]]
    heads += [head(people["group"][0], i) for i in range(6)]
    out = []
    for mp, long_side in ((2, 1632), (5, 2592), (8, 3264), (12, 4000)):
        for k in range(per_size):
            chosen = rng.choice(len(heads), size=int(rng.integers(0, 4)), replace=False)
            bg = empty[int(rng.integers(len(empty)))]
            ph = composite(bg, [heads[i] for i in chosen], long_side, rng, (0.04, 0.15))
            path = root / f"{mp:02d}mp_{k}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            ph.image.save(path, "JPEG", quality=90)
            out.append(path)
    return out
