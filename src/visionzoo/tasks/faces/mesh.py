"""MediaPipe FaceMesh: 468 3D landmarks per face, written as an OBJ with the canonical triangles,
and a picture of the mesh turned to the side."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ...atomic import atomic_path
from .models import mesh_triangles, tflite_model

CROP_SCALE = 1.5  # FaceMesh expects the face box enlarged by 1.5 (MediaPipe's face_landmark graph)


def face_mesh(img: Image.Image, box: np.ndarray) -> np.ndarray:
    """(468, 3) vertices: x, y in `img` pixels, z (depth, same scale; smaller = nearer the camera)."""
    model = tflite_model("facemesh")
    size = model.input_size
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * CROP_SCALE / 2
    crop = img.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
    x0, y0 = int(cx - half), int(cy - half)
    s = crop.width / size
    x = np.asarray(crop.resize((size, size), Image.BILINEAR), np.float32)[None] / 255.0
    outs = model(x)
    pts = next(o for o in outs if o.size == 468 * 3).reshape(468, 3).astype(np.float64)
    return np.stack([pts[:, 0] * s + x0, pts[:, 1] * s + y0, pts[:, 2] * s], 1)


def write_obj(vertices: np.ndarray, out: str | os.PathLike) -> Path:
    """OBJ with y up (image y flipped) so mesh viewers show the face upright."""
    lines = [f"v {x:.3f} {-y:.3f} {-z:.3f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh_triangles()]
    with atomic_path(out) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(out)


def side_view(vertices: np.ndarray, out: str | os.PathLike, title: str = "") -> Path:
    """Front and side (turned 70 degrees) renders of the mesh, so a user sees the depth."""
    from ...viz.figure import figure, save

    plt, fig, axes = figure(1, 2, (4.0, 4.0))
    v = vertices - vertices.mean(0)
    tri = mesh_triangles()
    for ax, deg in zip(np.ravel(axes), (0, 70)):
        a = np.radians(deg)
        x = v[:, 0] * np.cos(a) + v[:, 2] * np.sin(a)
        ax.triplot(x, -v[:, 1], tri, lw=0.3, color="tab:blue")
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(f"{title} turned {deg} deg" if deg else f"{title} front")
    return save(plt, fig, out)
