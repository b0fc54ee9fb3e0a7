"""Videos whose truth is known, written with PyAV, and MOT scores of tracks against that truth
(motmetrics: MOTA, IDF1, ID switches). Shared by the video tests and benchmarks/video_bench.py."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

Truth = list[list[tuple[int, str, list[float]]]]   # per frame: (object id, label, [x1, y1, x2, y2])


def write_video(path: Path, frames: Iterable[Image.Image | np.ndarray], rate: float = 10, *, codec: str = "libx264",
                rotation: int | None = None, times: Sequence[float] | None = None, fmt: str | None = None) -> Path:
    """Frames as a video file; `times` (seconds) for a variable frame rate, `rotation` as display
    metadata (degrees counter-clockwise, as phones write it)."""
    import av

    container = av.open(str(path), "w", format=fmt)
    stream = None
    for k, frame in enumerate(frames):
        arr = np.asarray(frame.convert("RGB") if isinstance(frame, Image.Image) else frame, np.uint8)
        if stream is None:
            stream = container.add_stream(codec, rate=Fraction(rate).limit_denominator(1000))
            stream.height, stream.width = arr.shape[0] // 2 * 2, arr.shape[1] // 2 * 2
            stream.pix_fmt = "yuv420p"
            if times is not None:
                stream.codec_context.time_base = Fraction(1, 1000)
            if rotation:
                stream.set_display_rotation(rotation)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr[:stream.height, :stream.width]), format="rgb24")
        if times is not None:
            vf.pts, vf.time_base = round(times[k] * 1000), Fraction(1, 1000)
        for packet in stream.encode(vf):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


COLOURS = {"red": (220, 40, 40), "blue": (40, 60, 220)}


def moving_boxes(path: Path, n: int = 40, size: tuple[int, int] = (160, 120), rate: float = 10, seed: int = 0) -> Truth:
    """A red rectangle gliding right along the top and a blue one left along the bottom, over a fixed
    noisy background (the look of the scenes the test detector is trained on); each frame's truth."""
    w, h = size
    background = np.random.default_rng(seed).integers(90, 160, (h, w, 3), dtype=np.uint8)
    paths = {"red": ((5, 8), (w - 50, 20), (44, 36)), "blue": ((w - 46, h - 52), (5, h - 60), (40, 44))}
    frames, truth = [], []
    for k in range(n):
        img = Image.fromarray(background.copy())
        pen = ImageDraw.Draw(img)
        objects = []
        for oid, (name, ((x0, y0), (x1, y1), (bw, bh))) in enumerate(paths.items(), 1):
            a = k / max(1, n - 1)
            x, y = x0 + a * (x1 - x0), y0 + a * (y1 - y0)
            box = [round(x), round(y), round(x) + bw, round(y) + bh]
            pen.rectangle(box, fill=COLOURS[name])
            objects.append((oid, name, [float(v) for v in box]))
        frames.append(img)
        truth.append(objects)
    write_video(path, frames, rate)
    return truth


def voc_boxes(xml: Path) -> list[list[float]]:
    root = ET.parse(xml).getroot()
    return [[float(o.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")] for o in root.iter("object")]


def pan_zoom(photo: Path, boxes: Sequence[Sequence[float]], path: Path, kind: str, *, n: int = 60,
             out_size: tuple[int, int] = (480, 360), rate: float = 15, label: str = "raccoon") -> Truth:
    """A camera moving over a still photo: `pan` slides a window 60 % of the photo's size from left to
    right, `zoom` closes in from the whole photo to its centre half. Boxes follow the window; one
    that is less than half in view is not in the truth for that frame."""
    img = Image.open(photo).convert("RGB")
    W, H = img.size
    ow, oh = out_size
    frames, truth = [], []
    for k in range(n):
        a = k / max(1, n - 1)
        if kind == "pan":
            cw, ch = 0.6 * W, 0.6 * W * oh / ow
            ch = min(ch, H)
            cx, cy = cw / 2 + a * (W - cw), H / 2
        else:
            s = 1.0 - 0.5 * a
            cw, ch = s * W, s * W * oh / ow
            if ch > H:
                cw, ch = cw * H / ch, H
            cx, cy = W / 2, H / 2
        x0, y0 = cx - cw / 2, cy - ch / 2
        frames.append(img.resize(out_size, Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch)))
        sx, sy = ow / cw, oh / ch
        objects = []
        for oid, b in enumerate(boxes, 1):
            x1, y1, x2, y2 = (b[0] - x0) * sx, (b[1] - y0) * sy, (b[2] - x0) * sx, (b[3] - y0) * sy
            cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(ow, x2), min(oh, y2)
            inside = max(0, cx2 - cx1) * max(0, cy2 - cy1) / max(1e-9, (x2 - x1) * (y2 - y1))
            if inside >= 0.5:
                objects.append((oid, label, [cx1, cy1, cx2, cy2]))
        truth.append(objects)
    write_video(path, frames, rate)
    return truth


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` with every box of `b` (x1, y1, x2, y2)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def mot_scores(truth: Truth, rows: Sequence[dict[str, Any]], label: str | None = None) -> dict[str, Any]:
    """MOTA, IDF1, ID switches (all and the most of one true object) of tracked frame rows against
    `truth` (same frame order), matched at IoU >= 0.5."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    frames = [r for r in rows if "frame" in r]
    assert len(frames) == len(truth), (len(frames), len(truth))
    for objects, row in zip(truth, frames):
        if label is not None:
            objects = [o for o in objects if o[1] == label]
        hyps = [d for d in row.get("detections", row.get("faces", [])) if d.get("track_id") is not None]
        dist = 1 - box_iou(np.array([b for _, _, b in objects]).reshape(-1, 4),
                           np.array([d["box"] for d in hyps], float).reshape(-1, 4))
        dist[dist > 0.5] = np.nan        # motmetrics: NaN = cannot match
        acc.update([o[0] for o in objects], [d["track_id"] for d in hyps], dist)
    summary = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches", "num_objects"], name="v")
    events = acc.mot_events
    switches = events[events["Type"] == "SWITCH"]
    per_object = switches.groupby("OId").size().max() if len(switches) else 0
    return {"mota": float(summary["mota"].iloc[0]), "idf1": float(summary["idf1"].iloc[0]),
            "id_switches": int(summary["num_switches"].iloc[0]), "max_switches_per_track": int(per_object),
            "objects": int(summary["num_objects"].iloc[0])}
