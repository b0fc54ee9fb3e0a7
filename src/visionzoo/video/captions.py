"""Captions of a video at its scene changes, and the SubRip (.srt) subtitles that show them.

A scene changes when a frame's perceptual hashes (dedup's pHash + dHash) differ from those of the
scene's first frame in more than dedup's near-duplicate distance, or when its colours do (the
hashes look at brightness structure only, so a cut between two shots of the same layout in other
colours would pass them): the frames a near-duplicate search would group stay one scene, a pan or
a cut starts a new one, and only the first frame of each scene goes to the captioner.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..atomic import atomic_path
from ..data.video_frames import Frame
from ..downstream.dedup import DEFAULT_MAX_DISTANCE, hash_distance, image_fingerprint
from .sessions import Session, frame_fields

HASH_SIDE = 64        # frames are hashed from a copy this small (the hashes look at 8-32 px)
COLOUR_SIDE = 16      # colours are compared on a copy this small ...
COLOUR_CHANGE = 40    # ... whose mean channel difference (of 255) past this is a new scene


class CaptionSession(Session):
    """One row per scene (its first frame's key and time, and its caption); the summary lists the
    scenes with their start and end, as the subtitles show them."""

    def __init__(self, predictor: Any, rate: float, track: bool = False, max_distance: int = DEFAULT_MAX_DISTANCE):
        super().__init__(predictor, rate, track)
        self.max_distance = max_distance
        self.reference = None
        self.scenes: list[dict[str, Any]] = []
        self.last_time = 0.0

    def select(self, frames: Sequence[Frame]) -> list[Frame]:
        chosen = []
        for f in frames:
            small = f.image.copy()
            small.thumbnail((HASH_SIDE, HASH_SIDE))
            bits = image_fingerprint(small)
            colours = np.asarray(small.convert("RGB").resize((COLOUR_SIDE, COLOUR_SIDE)), np.float32)
            if self.reference is None or hash_distance(bits, self.reference[0]) > self.max_distance \
                    or np.abs(colours - self.reference[1]).mean() > COLOUR_CHANGE:
                self.reference = (bits, colours)
                chosen.append(f)
        return chosen

    def row(self, frame: Frame, result: dict[str, Any] | None) -> dict[str, Any] | None:
        self.frames += 1
        if self.scenes:
            self.scenes[-1]["end"] = round(frame.time, 3)
        self.last_time = frame.time
        if result is None:
            return None
        self.scenes.append({"start": round(frame.time, 3), "end": round(frame.time, 3), "caption": result["caption"]})
        return {**frame_fields(frame), **result, "error": None}

    def draw(self, frame: Frame, result: dict[str, Any] | None) -> Image.Image:
        return caption_frame(frame.image, self.scenes[-1]["caption"] if self.scenes else "")

    def summary(self) -> dict[str, Any]:
        if self.scenes and self.rate:
            self.scenes[-1]["end"] = round(self.last_time + 1 / self.rate, 3)
        return {"frames": self.frames, "scenes": self.scenes}


def caption_frame(img: Image.Image, caption: str) -> Image.Image:
    """The frame with its caption on a dark band at the bottom, sized to the frame."""
    out = img.convert("RGB").copy()
    if not caption:
        return out
    size = max(12, out.height // 24)
    lines = textwrap.wrap(caption, max(16, int(out.width / (size * 0.55))))[:3]
    pen = ImageDraw.Draw(out, "RGBA")
    band = (size + 6) * len(lines) + 8
    pen.rectangle([0, out.height - band, out.width, out.height], fill=(0, 0, 0, 150))
    for k, line in enumerate(lines):
        pen.text((8, out.height - band + 4 + k * (size + 6)), line, fill=(255, 255, 255), font_size=size)
    return out


def _stamp(t: float) -> str:
    ms = max(0, round(t * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def write_srt(scenes: Sequence[dict[str, Any]], out: str | os.PathLike) -> Path:
    """SubRip subtitles: one cue per scene, shown from its start to its end."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cues = [f"{i}\n{_stamp(s['start'])} --> {_stamp(max(s['end'], s['start'] + 0.5))}\n{s['caption']}\n"
            for i, s in enumerate(scenes, 1)]
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(cues), encoding="utf-8")
    return out
