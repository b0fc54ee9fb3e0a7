"""Pictures as an H.264 mp4 (PyAV, FFmpeg's libx264): what browsers and players show.

Each frame keeps its source time, so the video plays at the source's pace (variable frame rates
included); sizes are made even (yuv420p needs it) and capped at `MAX_SIDE` so a 4K source does
not make a 4K encode. The moov atom goes first (faststart), so a browser plays while it loads.
The file appears complete or not at all (written beside, renamed when closed).
"""
from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import temporary_name

MAX_SIDE = 1920
TIME_BASE = Fraction(1, 1000)


class VideoWriter:
    """`write(image, t)` for each frame in time order, then `close()` (or use it as a context)."""

    def __init__(self, out: str | os.PathLike, rate: float | None = None, crf: int = 23):
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.with_name(temporary_name(self.out.name))   # one per writer: two runs never share it
        self.rate = Fraction(rate).limit_denominator(1001) if rate and rate > 0 else Fraction(30)
        self.crf = crf
        self.container = None
        self.stream = None
        self.size: tuple[int, int] | None = None
        self.last_pts = -1
        self.frames = 0

    def _open(self, size: tuple[int, int]) -> None:
        import av

        scale = min(1.0, MAX_SIDE / max(size))
        self.size = (max(2, int(size[0] * scale) // 2 * 2), max(2, int(size[1] * scale) // 2 * 2))
        self.container = av.open(str(self.tmp), "w", format="mp4", options={"movflags": "+faststart"})
        self.stream = self.container.add_stream("libx264", rate=self.rate,
                                                options={"crf": str(self.crf), "preset": "veryfast"})
        self.stream.width, self.stream.height = self.size
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = TIME_BASE

    def write(self, image: Image.Image, t: float) -> None:
        import av

        if self.container is None:
            self._open(image.size)
        if image.size != self.size:
            image = image.resize(self.size, Image.BILINEAR)
        frame = av.VideoFrame.from_ndarray(np.asarray(image.convert("RGB")), format="rgb24")
        pts = max(self.last_pts + 1, round(t / TIME_BASE))
        frame.pts, frame.time_base = pts, TIME_BASE
        self.last_pts = pts
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file (flushing the encoder) and rename it into place: the frames written so
        far become a whole, playable video. None when no frame was written; if finishing fails, the
        unfinished file is removed and whatever was at `out` before stays."""
        if self.container is None:
            return None
        container, self.container = self.container, None
        try:
            for packet in self.stream.encode():
                container.mux(packet)
            container.close()
            os.replace(self.tmp, self.out)
        except BaseException:
            with contextlib.suppress(Exception):  # already failing: the first error is the one to report
                container.close()
            self.tmp.unlink(missing_ok=True)
            raise
        return self.out

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
