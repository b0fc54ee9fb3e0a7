"""MediaPipe FaceMesh: 468 3D landmarks per face, written as an OBJ with the canonical triangles
and the photo's colours (per-vertex colours, and texture coordinates onto the face's crop as the
texture, so any viewer shows the face), and a picture of the coloured mesh turned to the side."""
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


def vertex_colours(img: Image.Image, xy: np.ndarray) -> np.ndarray:
    """(N, 3) RGB in [0, 1] of `img` at the points `xy` (its pixels), bilinearly interpolated."""
    arr = np.asarray(img.convert("RGB"), np.float64) / 255.0
    h, w = arr.shape[:2]
    x = np.clip(xy[:, 0] - 0.5, 0, w - 1)  # pixel centres sit at +0.5
    y = np.clip(xy[:, 1] - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = arr[y0, x0] * (1 - fx) + arr[y0, x1] * fx
    bottom = arr[y1, x0] * (1 - fx) + arr[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def texture_crop(img: Image.Image, vertices: np.ndarray, margin: float = 0.05) -> tuple[Image.Image, np.ndarray]:
    """(the part of `img` under the mesh, (N, 2) texture coordinates of the vertices in it)."""
    lo, hi = vertices[:, :2].min(0), vertices[:, :2].max(0)
    pad = margin * (hi - lo)
    x0, y0 = np.floor(lo - pad).astype(int)
    x1, y1 = np.ceil(hi + pad).astype(int)
    crop = img.convert("RGB").crop((int(x0), int(y0), int(x1), int(y1)))
    uv = np.stack([(vertices[:, 0] - x0) / crop.width, 1 - (vertices[:, 1] - y0) / crop.height], 1)
    return crop, uv


def write_obj(vertices: np.ndarray, out: str | os.PathLike, colours: np.ndarray | None = None,
              texture: tuple[Image.Image, np.ndarray] | None = None) -> Path:
    """OBJ with y up (image y flipped) so mesh viewers show the face upright; `colours` (N, 3) in
    [0, 1] as per-vertex colours (`v x y z r g b`); `texture` (image, uv) as STEM.jpg + STEM.mtl."""
    out = Path(out)
    lines = []
    if texture is not None:
        image, uv = texture
        with atomic_path(out.with_suffix(".jpg")) as tmp:
            image.save(tmp, "JPEG", quality=92)
        with atomic_path(out.with_suffix(".mtl")) as tmp:
            Path(tmp).write_text(f"newmtl face\nKa 1 1 1\nKd 1 1 1\nmap_Kd {out.stem}.jpg\n", encoding="utf-8")
        lines += [f"mtllib {out.stem}.mtl", "usemtl face"]
    for i, (x, y, z) in enumerate(vertices):
        rgb = "" if colours is None else " " + " ".join(f"{c:.4f}" for c in colours[i])
        lines.append(f"v {x:.3f} {-y:.3f} {-z:.3f}{rgb}")
    if texture is not None:
        lines += [f"vt {u:.5f} {v:.5f}" for u, v in texture[1]]
        lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in mesh_triangles()]
    else:
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh_triangles()]
    with atomic_path(out) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def side_view(vertices: np.ndarray, out: str | os.PathLike, title: str = "", colours: np.ndarray | None = None) -> Path:
    """Front and side (turned 70 degrees) renders of the mesh, in the photo's colours when given
    (triangles drawn far to near), so a user sees the face and its depth."""
    from matplotlib.collections import PolyCollection

    from ...viz.figure import figure, save

    plt, fig, axes = figure(1, 2, (4.0, 4.0))
    v = vertices - vertices.mean(0)
    tri = mesh_triangles()
    for ax, deg in zip(np.ravel(axes), (0, 70)):
        a = np.radians(deg)
        x = v[:, 0] * np.cos(a) + v[:, 2] * np.sin(a)
        depth = -v[:, 0] * np.sin(a) + v[:, 2] * np.cos(a)   # larger = farther from the viewer
        if colours is None:
            ax.triplot(x, -v[:, 1], tri, lw=0.3, color="tab:blue")
        else:
            order = np.argsort(-depth[tri].mean(1))
            polys = np.stack([x[tri], -v[tri, 1]], -1)[order]
            face = colours[tri].mean(1)[order]
            ax.add_collection(PolyCollection(polys, facecolors=face, edgecolors=face, linewidths=0.3))
            ax.autoscale_view()
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(f"{title} turned {deg} deg" if deg else f"{title} front")
    return save(plt, fig, out)
