"""What each task makes of a video, frame after frame: the JSON row of each frame, the picture
drawn for the annotated video, and the video's summary row at the end.

A session sees frames in order and holds only what its summary needs (tracks, intervals,
scenes), never the frames, so any length runs in constant memory.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..data.natural import natural_key
from ..data.video_frames import Frame
from .tracking import Tracker

MERGE_GAP_S = 1.0     # appearances of one person this close together are one interval
LOW_SCORE = 0.1       # ByteTrack's second association looks at boxes down to this score


def frame_fields(frame: Frame) -> dict[str, Any]:
    return {"path": frame.key, "frame": frame.index, "time": round(frame.time, 6)}


class Session:
    """The default: every frame to the predictor, its JSON as the row, nothing drawn but the frame."""

    def __init__(self, predictor: Any, rate: float, track: bool = False):
        self.predictor, self.rate, self.track = predictor, rate, track
        self.frames = 0

    def select(self, frames: Sequence[Frame]) -> list[Frame]:
        """The frames the predictor needs to see (all of them, except for captions)."""
        return list(frames)

    def row(self, frame: Frame, result: dict[str, Any] | None) -> dict[str, Any] | None:
        self.frames += 1
        return {**frame_fields(frame), **(result or {}), "error": None}

    def draw(self, frame: Frame, result: dict[str, Any] | None) -> Image.Image:
        return frame.image

    def summary(self) -> dict[str, Any]:
        return {"frames": self.frames}


def track_threshold(predictor: Any) -> float:
    """ByteTrack's activation threshold: the detector's operating point (the lowest of its per-class
    score thresholds, or `--conf`), so tracks start from the boxes a still image would show."""
    point = getattr(predictor, "point", None)
    return float(point.lowest) if point is not None else 0.25


def seeing_low_scores(predictor: Any) -> Any:
    """The predictor, answering boxes down to LOW_SCORE (its network and post-processing shared), for
    ByteTrack's second association: a box the operating point drops still continues a track it
    overlaps (motion blur, partial views). A predictor without an operating point is used as it is."""
    point = getattr(predictor, "point", None)
    if point is None or point.lowest <= LOW_SCORE:
        return predictor
    low = copy.copy(predictor)
    low.point = replace(point, conf=LOW_SCORE, per_class={})
    return low


class DetectSession(Session):
    """Boxes per frame; with tracking, each box's `track_id`, trails in the drawing, and per-track
    rows (class, first / last seen, frames, mean score) in the summary. A tracked frame's boxes are
    those the operating point keeps, and lower-scoring ones that continue a track."""

    def __init__(self, predictor: Any, rate: float, track: bool = False):
        super().__init__(predictor, rate, track)
        self.point = getattr(predictor, "point", None)
        self.tracker = Tracker(rate, track_threshold(predictor)) if track else None
        if track:
            self.predictor = seeing_low_scores(predictor)
        self.counts: dict[str, int] = {}

    def _kept(self, d: dict[str, Any]) -> bool:
        return self.point is None or d["score"] >= self.point.threshold(d["label"]) or d.get("track_id") is not None

    def row(self, frame: Frame, result: dict[str, Any] | None) -> dict[str, Any]:
        row = super().row(frame, result)
        dets = row.get("detections", [])
        if self.tracker is not None:
            ids = self.tracker.update(frame.time, [d["box"] for d in dets], [d["score"] for d in dets],
                                      [d["label"] for d in dets])
            for d, tid in zip(dets, ids):
                d["track_id"] = tid
            dets = row["detections"] = [d for d in dets if self._kept(d)]
        for d in dets:
            self.counts[d["label"]] = self.counts.get(d["label"], 0) + 1
        return row

    def draw(self, frame: Frame, result: dict[str, Any] | None) -> Image.Image:
        from ..tasks.detect.draw import PALETTE, render

        dets = (result or {}).get("detections", [])
        if self.tracker is None:
            return render(frame.image, dets)
        shown = [{**d, "label": f"#{d['track_id']} {d['label']}"} for d in dets if d.get("track_id") is not None]
        out = render(frame.image, shown)
        pen = ImageDraw.Draw(out)
        width = max(2, round(max(out.size) / 300))
        for d in shown:
            trail = self.tracker.trail(d["track_id"], frame.time)
            if len(trail) > 1:   # the same colour render gives the box (it hashes the label text)
                pen.line(trail, fill=PALETTE[sum(map(ord, d["label"])) % len(PALETTE)], width=width)
        return out

    def summary(self) -> dict[str, Any]:
        out = {"frames": self.frames, "counts": self.counts}
        if self.tracker is not None:
            out["tracks"] = self.tracker.summary()
        return out


class SegmentSession(Session):
    """Per-frame class shares (the mask itself is drawn, not written); mean shares in the summary."""

    def __init__(self, predictor: Any, rate: float, track: bool = False):
        super().__init__(predictor, rate, track)
        self.total: dict[str, float] = {}

    def row(self, frame: Frame, result: dict[str, Any] | None) -> dict[str, Any]:
        result = {k: v for k, v in (result or {}).items() if k != "mask"}
        for name, share in result.get("shares", {}).items():
            self.total[name] = self.total.get(name, 0.0) + share
        return super().row(frame, result)

    def draw(self, frame: Frame, result: dict[str, Any] | None) -> Image.Image:
        from ..tasks.segment.predictor import overlay

        if not result or "mask" not in result:
            return frame.image
        return overlay(frame.image, np.asarray(result["mask"]), len(self.predictor.classes),
                       classes=self.predictor.classes)

    def summary(self) -> dict[str, Any]:
        n = max(1, self.frames)
        return {"frames": self.frames, "mean_shares": {k: round(v / n, 6) for k, v in self.total.items()}}


class Intervals:
    """Merged [start, end] seconds per name: who appears when."""

    def __init__(self, gap: float):
        self.gap = gap
        self.spans: dict[str, list[list[float]]] = {}

    def seen(self, name: str, t: float) -> None:
        spans = self.spans.setdefault(name, [])
        if spans and t - spans[-1][1] <= self.gap:
            spans[-1][1] = t
        else:
            spans.append([t, t])

    def to_dict(self) -> dict[str, list[list[float]]]:
        return {name: [[round(a, 3), round(b, 3)] for a, b in spans]
                for name, spans in sorted(self.spans.items(), key=lambda kv: natural_key(kv[0]))}


def _why_untracked(face: dict[str, Any], faces: list[dict[str, Any]], ids: list[int | None]) -> str:
    """Why a face of a frame has no track: another box of the same face took the track, or ByteTrack
    has not confirmed it yet (a new track is confirmed when its face is matched again next frame)."""
    def iou(a: list[float], b: list[float]) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union if union > 0 else 0.0

    for other, tid in zip(faces, ids):
        if tid is not None and other is not face and iou(face["box"], other["box"]) > 0.3:
            return f"overlaps the box of track {tid} (a second box on one face)"
    return "new face, not yet confirmed: a track starts when it is found again in the next frame"


class FacesSession(Session):
    """Faces per frame, each tracked (`track_id`); a face the gallery does not know is named
    `unknown #ID` by its track. The summary is the timeline: merged intervals per person."""

    def __init__(self, predictor: Any, rate: float, track: bool = True):
        super().__init__(predictor, rate, track)
        self.tracker = Tracker(rate, threshold=0.0)
        self.timeline = Intervals(max(MERGE_GAP_S, 2.5 / rate if rate else MERGE_GAP_S))

    def row(self, frame: Frame, result: dict[str, Any] | None) -> dict[str, Any]:
        row = super().row(frame, result)
        faces = row.get("faces", [])
        ids = self.tracker.update(frame.time, [f["box"] for f in faces], [1.0] * len(faces), ["face"] * len(faces))
        for f, tid in zip(faces, ids):
            f["track_id"] = tid
            if tid is None:
                f["untracked"] = _why_untracked(f, faces, ids)
            if "identity" not in f:             # no gallery: faces are told apart by their tracks
                name = f"face #{tid}" if tid is not None else None
            elif f["identity"] == "unknown" and tid is not None:
                name = f["identity"] = f"unknown #{tid}"
            else:
                name = f["identity"] if f["identity"] != "unknown" else None
            if name:
                self.timeline.seen(name, frame.time)
        return row

    def draw(self, frame: Frame, result: dict[str, Any] | None) -> Image.Image:
        from ..tasks.faces.detectors import Face
        from ..tasks.faces.draw import render_faces

        faces = []
        for f in (result or {}).get("faces", []):
            named = {k: f[k] for k in ("identity", "distance") if k in f}
            if not named and f.get("track_id") is not None:      # detect only: the track and the score
                named = {"identity": f"#{f['track_id']} {f['score']:.2f}"}
            faces.append(Face(np.asarray(f["box"], float), float(f["score"]),
                              np.asarray(list(f["landmarks"].values()), float), named))
        return render_faces(frame.image, faces)

    def summary(self) -> dict[str, Any]:
        return {"frames": self.frames, "timeline": self.timeline.to_dict()}
