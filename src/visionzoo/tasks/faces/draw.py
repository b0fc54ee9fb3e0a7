"""Pictures of the faces found: boxes, the 5 landmarks, and names (find) or scores (detect)."""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageDraw

from ...atomic import atomic_path
from ...viz.labels import draw_box, line_width
from .detectors import Face


def draw_faces(img: Image.Image, faces: list[Face], out: str | os.PathLike) -> Path:
    """`faces` in `img`'s pixels; line width and dots scale with the image."""
    img = render_faces(img, faces)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        img.save(tmp, "JPEG", quality=90)
    return out


def render_faces(img: Image.Image, faces: list[Face]) -> Image.Image:
    """A copy of `img` with each face's box, landmarks and name (or score) drawn on it."""
    img = img.convert("RGB").copy()
    d = ImageDraw.Draw(img)
    lw = line_width(img.size)
    for f in faces:
        known = not str(f.extra.get("identity") or "unknown").startswith("unknown")
        colour = (40, 220, 60) if known or "identity" not in f.extra else (230, 40, 40)
        for x, y in f.points:
            d.ellipse([x - lw, y - lw, x + lw, y + lw], fill=(255, 220, 0))
        draw_box(d, f.box, colour, face_label(f.extra, f.score))
    return img


def face_label(extra: dict, score: float) -> str:
    """A name with its distance written as one ("biden d=0.38": lower is closer), or, without a
    gallery, the detector's score ("face 0.92")."""
    label = extra.get("identity") or f"face {score:.2f}"
    if extra.get("distance") is not None:
        label += f" d={extra['distance']:.2f}"
    return label


def render_row(img: Image.Image, row: dict) -> Image.Image:
    """A `predict` row's picture in a notebook: boxes, landmarks and names as `--draw` draws them."""
    import numpy as np

    from .detectors import LANDMARK_NAMES

    faces = [Face(np.asarray(f["box"], float), float(f["score"]),
                  np.asarray([f["landmarks"][n] for n in LANDMARK_NAMES], float),
                  {k: v for k, v in f.items() if k not in ("box", "score", "landmarks")})
             for f in row.get("faces", [])]
    return render_faces(img, faces)


def describe_row(row: dict) -> str:
    """A `predict` row in words: the names found, or how many faces."""
    names = [str(f["identity"]) for f in row.get("faces", []) if "identity" in f]
    return ", ".join(names) if names else f"{len(row.get('faces', []))} face(s)"
