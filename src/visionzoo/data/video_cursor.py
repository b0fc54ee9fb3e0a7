"""Frames by key (`PATH#t=SECONDS`) wherever a file path is read: the extract and classify
readers, dedup's hashes, thumbnails of search hits and maps.

One open decoder per video is shared by the threads of a process, so frames asked in order (as
the readers ask for a partition's frames) are decoded once, moving forward, in FFmpeg's own
threads; a jump forward past a keyframe seeks, and a few recent frames are kept for threads that
arrive slightly out of order.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Sequence

import numpy as np
from PIL import Image

from .decode_error import ImageDecodeError
from .video import (
    Sampling,
    VideoError,
    frame_key,
    is_video_name,
    open_container,
    parse_frame_key,
    probe,
    to_image,
    video_stream,
)

OPEN_VIDEOS = 4                     # decoders kept open per process
RECENT_BYTES = 64 << 20             # decoded frames kept for late threads, per video


class _Cursor:
    """One video's decoder, moving forward; `frame(pts)` returns the decoded frame with that pts."""

    def __init__(self, path: str):
        self.path = path
        self.info = probe(path)
        self.lock = threading.Lock()
        self.container = open_container(path)
        self.stream = video_stream(self.container, path)
        frame_bytes = max(1, self.info.width * self.info.height * 3 // 2)
        self.recent: deque = deque(maxlen=int(min(32, max(2, RECENT_BYTES // frame_bytes))))
        self._restart(None)

    def _restart(self, pts: int | None) -> None:
        if pts is not None:
            self.container.seek(int(pts), stream=self.stream, backward=True)
        self.frames = self.container.decode(self.stream)
        self.position = -1 if pts is None else int(pts) - 1   # frames up to here are behind us
        self.recent.clear()

    def frame(self, pts: int):
        import av

        for p, f in self.recent:
            if p == pts:
                return f
        keyframe = self.info.keyframe_before(pts)
        following = self.info.pts[min(len(self.info.pts) - 1, int(np.searchsorted(self.info.pts, self.position, "right")))]
        if pts <= self.position or keyframe > following:     # behind us, or a jump past a keyframe: seek
            self._restart(keyframe)
        try:
            for f in self.frames:
                if f.pts is None:
                    continue
                self.recent.append((f.pts, f))
                self.position = f.pts
                if f.pts >= pts:
                    return f
        except av.error.FFmpegError as exc:
            where = f"near t={pts * self.info.time_base:.2f} s"
            raise VideoError(self.path, f"corrupt video data {where} ({exc.strerror or exc})") from None
        self._restart(None)
        raise VideoError(self.path, f"no frame at t={pts * self.info.time_base:.3f} s (truncated video)")

    def close(self) -> None:
        self.container.close()


_open: OrderedDict[str, _Cursor] = OrderedDict()
_open_lock = threading.Lock()


def _cursor(path: str) -> _Cursor:
    with _open_lock:
        cursor = _open.get(path)
        if cursor is None:
            cursor = _open[path] = _Cursor(path)
            while len(_open) > OPEN_VIDEOS:
                _open.popitem(last=False)[1].close()
        _open.move_to_end(path)
        return cursor


def load_frame(key: str, target_size: int | None = None) -> Image.Image | None:
    """The frame a key names (the one shown at that time), as displayed; a video file's own path
    raises the reason it cannot give frames, or gives its first frame. None: not a video item."""
    parsed = parse_frame_key(key)
    if parsed is None:
        if not is_video_name(key):
            return None
        path, t = key, None
    else:
        path, t = parsed
    info = probe(path)
    if t is None:
        if info.failure:
            raise VideoError(path, info.failure)
        t = float(info.times[0])
    else:
        first, last = float(info.times[0]), float(info.times[-1]) + (1 / info.rate if info.rate else 0)
        if not first - 1e-3 <= t < last + 1e-3:
            raise VideoError(key, f"no frame at {t:g} s: the video's frames run from {first:g} s to {last:.3f} s")
    i = max(0, int(np.searchsorted(info.times, t + 1e-6, side="right")) - 1)
    cursor = _cursor(path)
    with cursor.lock:
        frame = cursor.frame(int(info.pts[i]))
        return to_image(frame, info.rotation, target_size)


def expand_frames(files: Sequence[str], sampling: Sampling = Sampling()) -> list[str]:
    """`files` with each video file replaced by its sampled frames' keys, in time order. A video
    that cannot give frames stays as its own path (reading it raises the reason); a truncated one
    gives the frames it has, then its path. Lists without videos come back as they are."""
    if not any(is_video_name(f) for f in files):
        return list(files)
    out: list[str] = []
    for f in files:
        if not is_video_name(f):
            out.append(f)
            continue
        try:
            info = probe(f)
        except ImageDecodeError:
            out.append(f)
            continue
        out += [frame_key(f, t) for _, t in info.sampled(sampling)]
        if info.failure:
            out.append(f)
    return out
