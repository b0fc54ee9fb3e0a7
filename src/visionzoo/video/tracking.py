"""Multi-object tracking: a stable `track_id` per object across frames (ByteTrack, as supervision
implements it), and what each track did (class, first and last seen, frames, mean score).

ByteTrack associates boxes by IoU with Kalman-predicted track boxes, high scores first, then low
ones; a track lost for longer than `lost_s` seconds ends. Its activation threshold is the detector's
operating point (the score a still image's box needs), and any box that passes it may start a track
(supervision's ByteTrack would ask 0.1 more, which drops every box of a detector whose point is high).
"""
from __future__ import annotations

import warnings
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

LOST_S = 1.0        # how long a track may go unseen and still keep its id
TRAIL_S = 2.0       # how much of each track's path the drawn video shows


def _supervision():
    with warnings.catch_warnings():     # supervision warns that OpenCV is absent (it is not needed here)
        warnings.simplefilter("ignore")
        import supervision

        return supervision


@dataclass
class Track:
    """What one track did; `to_dict` is its row in the video's summary."""

    track_id: int
    first: float
    last: float
    frames: int = 0
    score_sum: float = 0.0
    labels: Counter = field(default_factory=Counter)
    trail: deque = field(default_factory=lambda: deque(maxlen=256))

    def to_dict(self) -> dict[str, Any]:
        return {"track_id": self.track_id, "label": self.labels.most_common(1)[0][0], "first_seen": round(self.first, 3),
                "last_seen": round(self.last, 3), "frames": self.frames,
                "mean_score": round(self.score_sum / max(1, self.frames), 4)}


class Tracker:
    """Feed it each frame's boxes in order; it answers each box's track id (None: not tracked yet)."""

    def __init__(self, rate: float, threshold: float = 0.25, lost_s: float = LOST_S):
        self._sv = _supervision()
        rate = rate if rate and rate > 0 else 30.0
        # supervision keeps a lost track int(rate / 30 * buffer) frames: lost_s seconds at any rate.
        with warnings.catch_warnings():     # ByteTrack's deprecation notice (the API it keeps is all we use)
            warnings.simplefilter("ignore")
            self.byte = self._sv.ByteTrack(track_activation_threshold=threshold, frame_rate=rate,
                                           lost_track_buffer=max(1, round(30 * lost_s)), minimum_matching_threshold=0.8)
        self.byte.det_thresh = threshold    # new tracks from every box the operating point keeps
        self.tracks: dict[int, Track] = {}

    def update(self, t: float, boxes: Sequence[Sequence[float]], scores: Sequence[float],
               labels: Sequence[str]) -> list[int | None]:
        n = len(boxes)
        xyxy = np.asarray(boxes, np.float32).reshape(n, 4)
        detections = self._sv.Detections(xyxy=xyxy, confidence=np.asarray(scores, np.float32).reshape(n),
                                         class_id=np.zeros(n, int), data={"row": np.arange(n)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tracked = self.byte.update_with_detections(detections)
        ids: list[int | None] = [None] * n
        for row, tid in zip(tracked.data.get("row", []), tracked.tracker_id if tracked.tracker_id is not None else []):
            tid, row = int(tid), int(row)
            ids[row] = tid
            track = self.tracks.get(tid) or self.tracks.setdefault(tid, Track(tid, t, t))
            track.last, track.frames = t, track.frames + 1
            track.score_sum += float(scores[row])
            track.labels[labels[row]] += 1
            x1, y1, x2, y2 = boxes[row]
            track.trail.append((t, (x1 + x2) / 2, (y1 + y2) / 2))
        return ids

    def trail(self, track_id: int, now: float, seconds: float = TRAIL_S) -> list[tuple[float, float]]:
        """The track's recent centres (oldest first), for drawing its path."""
        track = self.tracks.get(track_id)
        return [(x, y) for t, x, y in track.trail if now - t <= seconds] if track else []

    def summary(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in sorted(self.tracks.values(), key=lambda t: t.track_id)]
