"""Frames of any video source, in display order: files, numbered image sequences, network streams
(rtsp://, http(s)://, reconnected a few times when they drop) and webcams.

Decoding runs in FFmpeg's own threads; each kept frame is converted to an RGB PIL image as
displayed (rotation metadata applied), scaled down by FFmpeg's scaler when the caller needs fewer
pixels. Nothing is held beyond the frame being handed out, so any length runs in constant memory.
"""
from __future__ import annotations

import glob
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from .decode import load_rgb
from .decode_error import ImageDecodeError
from .inputs import is_image_name
from .video import (
    SEQUENCE_RATE,
    Sampling,
    VideoError,
    frame_key,
    is_sequence_pattern,
    is_stream,
    is_webcam,
    open_container,
    probe,
    to_image,
    video_stream,
)

RECONNECTS = 3                  # attempts to reopen a stream that dropped, 1 s, 2 s, 4 s apart
RECONNECT_DELAY_S = 1.0
STREAM_TIMEOUT_S = 10.0         # opening, or waiting for data, before a stream counts as dropped


@dataclass
class Frame:
    """One frame: its key (`SOURCE#t=SECONDS`, or the image's own path in a sequence), its index
    among all the source's frames, its time in seconds, and the picture as displayed."""

    key: str
    source: str
    index: int
    time: float
    image: Image.Image


def _file_frames(path: str, sampling: Sampling, target: int | None, max_side: int | None,
                 stop: Callable[[], bool] | None = None) -> Iterator[Frame]:
    import av

    info = probe(path)
    keep = sampling.selector()
    with open_container(path) as container:
        stream = video_stream(container, path)
        tb = float(stream.time_base)
        if sampling.start:
            container.seek(int(sampling.start / tb), stream=stream, backward=True)
        t = None
        try:
            for frame in container.decode(stream):
                if stop is not None and stop():
                    return
                if frame.pts is None:
                    continue
                t = frame.pts * tb
                k = keep(t)
                if k is None:
                    return
                if k:
                    index = int(np.searchsorted(info.pts, frame.pts))
                    yield Frame(frame_key(path, t), path, index, t, to_image(frame, info.rotation, target, max_side))
        except av.error.FFmpegError as exc:
            where = f" after {t:.2f} s" if t is not None else ""
            raise VideoError(path, f"corrupt video data{where} ({exc.strerror or exc})") from None
    if info.failure and not (sampling.end and sampling.end <= float(info.times[-1])):
        raise VideoError(path, info.failure)


def sequence_files(source: str) -> list[str]:
    """The images of a numbered sequence (frames/img%04d.png) or a folder, in order."""
    if os.path.isdir(source):
        files = [os.path.join(source, f) for f in os.listdir(source) if is_image_name(f) and not f.startswith(".")]
    else:
        folder, name = os.path.split(source)
        regex = re.compile(re.sub(r"%0?(\d*)d", r"(\\d+)", re.escape(name).replace("%", "%")) + "$")
        files = [f for f in glob.glob(os.path.join(glob.escape(folder) or ".", "*"))
                 if regex.match(os.path.basename(f))]
    if not files:
        raise VideoError(source, "no images match this sequence")
    digits = re.compile(r"(\d+)(?!.*\d)")
    return sorted(files, key=lambda f: (int(m[1]) if (m := digits.search(os.path.basename(f))) else -1, f))


def _sequence_frames(source: str, sampling: Sampling, target: int | None, max_side: int | None) -> Iterator[Frame]:
    keep = sampling.selector()
    for i, path in enumerate(sequence_files(source)):
        t = i / SEQUENCE_RATE
        k = keep(t)
        if k is None:
            return
        if k:
            img = load_rgb(path)    # a bad image fails the sequence: frames would be missing from it
            if max_side and max(img.size) > max_side:
                img.thumbnail((max_side, max_side))
            yield Frame(path, source, i, t, img)


def _open_live(source: str):
    import av

    if is_webcam(source):
        device = source if source.startswith("/dev/") else f"/dev/video{source}"
        fmt = {"darwin": "avfoundation", "win32": "dshow"}.get(sys.platform, "v4l2")
        name = source if fmt != "v4l2" else device
        if fmt == "v4l2" and not os.path.exists(device):
            raise VideoError(source, f"no webcam {source} ({device} does not exist)")
        return av.open(name, format=fmt, timeout=STREAM_TIMEOUT_S)
    options = {"rtsp_transport": "tcp"} if source.lower().startswith("rtsp") else {}
    return av.open(source, options=options, timeout=STREAM_TIMEOUT_S)


def _live_frames(source: str, sampling: Sampling, target: int | None, max_side: int | None,
                 log: Callable[[str], None] | None) -> Iterator[Frame]:
    """A stream's frames until it ends. Times count from its first frame and keep counting across
    reconnects; a stream that fails is reopened `RECONNECTS` times before its VideoError."""
    import av

    keep = sampling.selector()
    index, offset, last_t, attempts = 0, 0.0, -1.0, 0
    while True:
        got, reason = 0, None
        try:
            with _open_live(source) as container:
                stream = video_stream(container, source)
                tb, first = float(stream.time_base), None
                for frame in container.decode(stream):
                    pts = frame.pts if frame.pts is not None else 0
                    first = pts if first is None else first
                    t = max(offset + (pts - first) * tb, last_t + 1e-3)
                    last_t, got = t, got + 1
                    k = keep(t)
                    if k is None:
                        return
                    if k:
                        yield Frame(frame_key(source, t), source, index, t, to_image(frame, 0, target, max_side))
                    index += 1
        except VideoError:
            raise
        except (av.error.FFmpegError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if reason is None:          # the source ended
            return
        if index == 0 and got == 0 and attempts == 0:
            raise VideoError(source, f"cannot open stream ({reason})")
        attempts = 0 if got else attempts + 1
        if attempts >= RECONNECTS:
            raise VideoError(source, f"stream dropped ({reason}); gave up after {RECONNECTS} reconnects")
        if log is not None:
            log(f"{source}: stream dropped ({reason}); reconnecting ({attempts + 1} of {RECONNECTS})")
        time.sleep(RECONNECT_DELAY_S * 2 ** attempts)
        offset = last_t + 1e-3


def iter_frames(source: str, sampling: Sampling = Sampling(), *, target: int | None = None,
                max_side: int | None = None, log: Callable[[str], None] | None = None,
                stop: Callable[[], bool] | None = None) -> Iterator[Frame]:
    """The frames `sampling` keeps, in order. A source that fails raises VideoError (its reason)
    after the frames it gave, so what came before a truncation or a dropped stream is kept.
    `stop` (files only): checked before each decoded frame; true ends the frames there."""
    sampling.check()
    if is_stream(source):
        return _live_frames(source, sampling, target, max_side, log)
    if is_sequence_pattern(source) or os.path.isdir(source):
        return _sequence_frames(source, sampling, target, max_side)
    return _file_frames(source, sampling, target, max_side, stop)


def source_rate(source: str) -> float | None:
    """Frames per second of a file or sequence (None for live sources, whose rate is measured)."""
    if is_stream(source):
        return None
    if is_sequence_pattern(source) or os.path.isdir(source):
        return SEQUENCE_RATE
    try:
        return probe(source).rate or None
    except ImageDecodeError:
        return None
