"""Videos as inputs: which names are videos or streams, how a frame is named, which frames a
sampling keeps, and what a file holds (probed with PyAV, FFmpeg's Python binding).

A frame's key is `PATH#t=SECONDS` (the Media Fragments notation): its presentation time as FFmpeg
reports it (`pts * time_base`, what `ffprobe -show_frames` prints as pts_time), so feature files,
JSON and pictures name the moment, and search / dedup / cluster / map take frames like any file.
Every failure is a `VideoError` (an `ImageDecodeError`) naming the file and the reason, so every
reader that skips a bad image skips a bad video the same way.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..errors import UsageError
from .decode_error import ImageDecodeError

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".avi", ".mov", ".webm", ".mpg", ".mpeg", ".ts", ".m2ts",
                              ".wmv", ".flv", ".3gp", ".ogv"})
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
SEQUENCE_RATE = 25.0          # frames per second of an image sequence (FFmpeg's image2 default)
_KEY = re.compile(r"^(?P<source>.+)#t=(?P<t>-?\d+(?:\.\d+)?)$")
_PATTERN = re.compile(r"%0?\d*d")
_ROTATE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


class VideoError(ImageDecodeError):
    """A video, stream or webcam that cannot be read (or stopped): `path` and `reason`."""


_SUFFIXES = tuple(sorted(VIDEO_EXTENSIONS))


def is_video_name(path: str | os.PathLike) -> bool:
    """By the extension (a plain string test: it runs once per input of every command)."""
    return os.fspath(path).split("?")[0].lower().endswith(_SUFFIXES)


def is_stream(source: str) -> bool:
    """rtsp://, http(s):// and other network streams, and webcams (an index such as 0, or /dev/videoN)."""
    if "://" in source:
        return source.partition("://")[0].lower() in STREAM_SCHEMES
    return is_webcam(source)


def is_webcam(source: str) -> bool:
    return (source.isdigit() and not os.path.exists(source)) or source.startswith("/dev/video")


def is_sequence_pattern(source: str) -> bool:
    """A printf pattern of numbered images, as FFmpeg takes it: frames/img%04d.png."""
    return bool(_PATTERN.search(Path(source).name))


def is_video_item(path: str) -> bool:
    """A video file or a frame key: what `load_rgb` hands to the video reader."""
    return "#t=" in path or is_video_name(path)


def is_video_source(source: str) -> bool:
    """Anything read as a sequence of frames rather than one picture."""
    return is_video_name(source) or is_stream(source) or is_sequence_pattern(source)


def format_time(t: float) -> str:
    """Seconds with microsecond precision and no trailing zeros: 0.033, 12.5, 3."""
    text = f"{t:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def frame_key(source: str, t: float) -> str:
    return f"{source}#t={format_time(t)}"


def parse_frame_key(key: str) -> tuple[str, float] | None:
    """(source, seconds) of a frame key; None for anything else (including a file whose name has #t=)."""
    if "#t=" not in key:
        return None
    m = _KEY.match(key)
    if m is None or os.path.exists(key):
        return None
    return m["source"], float(m["t"])


def frame_order(item: str) -> tuple[str, float]:
    """Sort key that keeps a video's frames in time order beside the other files."""
    parsed = parse_frame_key(item)
    return parsed if parsed is not None else (item, -1.0)


def frame_fields(key: str) -> dict[str, Any]:
    """{"frame": index, "time": seconds} of a video file's frame key; {} for anything else."""
    parsed = parse_frame_key(key)
    if parsed is None or is_stream(parsed[0]):
        return {}
    try:
        times = probe(parsed[0]).times
    except ImageDecodeError:
        return {}
    index = max(0, int(np.searchsorted(times, parsed[1] + 1e-6, side="right")) - 1)
    return {"frame": index, "time": parsed[1]}


@dataclass(frozen=True)
class Sampling:
    """Which frames a run looks at: every Nth (`every`) or the first of each 1/`fps` s (`fps`),
    between `start` and `end` seconds. Nothing set: every frame."""

    fps: float | None = None
    every: int | None = None
    start: float | None = None
    end: float | None = None

    def check(self) -> "Sampling":
        if self.fps is not None and self.every is not None:
            raise UsageError("give --fps or --every, not both")
        if self.fps is not None and not self.fps > 0:
            raise UsageError(f"--fps must be above 0, got {self.fps}")
        if self.every is not None and self.every < 1:
            raise UsageError(f"--every must be at least 1, got {self.every}")
        if self.start is not None and self.start < 0:
            raise UsageError(f"--start must be 0 or more seconds, got {self.start}")
        if self.end is not None and self.end <= (self.start or 0):
            raise UsageError(f"--end ({self.end} s) must come after --start ({self.start or 0} s)")
        return self

    @property
    def is_all(self) -> bool:
        return self == Sampling()

    def selector(self) -> Callable[[float], bool | None]:
        """A stateful test for frames in display order: True keep, False skip, None past --end."""
        start, end = self.start or 0.0, self.end
        state = {"seen": 0, "bucket": -1, "t0": None}

        def keep(t: float) -> bool | None:
            if end is not None and t >= end - 1e-9:
                return None
            if t < start - 1e-9:
                return False
            if state["t0"] is None:
                state["t0"] = t
            n, state["seen"] = state["seen"], state["seen"] + 1
            if self.every is not None:
                return n % self.every == 0
            if self.fps is not None:
                bucket = int(np.floor((t - state["t0"]) * self.fps + 1e-6))
                if bucket <= state["bucket"]:
                    return False
                state["bucket"] = bucket
            return True

        return keep


@dataclass
class VideoInfo:
    """What a video file holds, from its container and a pass over its packets (no decoding)."""

    path: str
    codec: str
    width: int                      # as displayed (rotation applied)
    height: int
    rate: float                     # average frames per second
    rotation: int                   # degrees counter-clockwise the display turns the stored frames
    pts: np.ndarray                 # presentation times of every frame, sorted (stream time_base units)
    keyframes: np.ndarray           # presentation times of the keyframes (where a decoder can start)
    time_base: float
    duration: float | None          # the container's declared duration (s), if any
    notes: list[str] = field(default_factory=list)   # worth telling, not failures (VFR, 4K)
    failure: str | None = None      # e.g. truncated: the frames present are still usable

    @property
    def frames(self) -> int:
        return len(self.pts)

    @property
    def times(self) -> np.ndarray:
        return self.pts * self.time_base

    def keyframe_before(self, pts: int) -> int:
        """The last keyframe at or before `pts` (the first frame if none is marked)."""
        i = int(np.searchsorted(self.keyframes, pts, side="right")) - 1
        return int(self.keyframes[i]) if i >= 0 else int(self.pts[0])

    def sampled(self, sampling: Sampling) -> list[tuple[int, float]]:
        """(frame index, seconds) of the frames `sampling` keeps."""
        keep = sampling.selector()
        out = []
        for i, t in enumerate(self.times.tolist()):
            k = keep(t)
            if k is None:
                break
            if k:
                out.append((i, t))
        return out


def to_image(frame, rotation: int = 0, target: int | None = None, max_side: int | None = None) -> Image.Image:
    """An av.VideoFrame as a displayed RGB image. `target`: the short side the model resizes to
    (frames at least twice that are scaled towards it, as draft JPEG decoding does); `max_side`:
    a cap on the long side."""
    w, h = frame.width, frame.height
    scale = 1.0
    if target and min(w, h) >= 2 * target:
        scale = target / min(w, h)
    if max_side and max(w, h) * scale > max_side:
        scale = max_side / max(w, h)
    if scale < 1:
        size = (max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2))
        img = Image.fromarray(frame.to_ndarray(width=size[0], height=size[1], format="rgb24", interpolation="AREA"))
    else:
        img = Image.fromarray(frame.to_ndarray(format="rgb24"))
    rotation %= 360
    return img.transpose(_ROTATE[rotation]) if rotation in _ROTATE else img


def open_container(path: str, **options):
    """av.open with the reasons users understand; the caller closes it."""
    import av

    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise VideoError(path, f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    try:
        return av.open(path, **options)
    except av.error.InvalidDataError:
        raise VideoError(path, "not a readable video (unrecognised, corrupt or truncated container)") from None
    except PermissionError:
        raise VideoError(path, "permission denied") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(path, f"cannot open video ({getattr(exc, 'strerror', None) or exc})") from None


def video_stream(container, path: str):
    """The first video stream, decoded in FFmpeg's own threads; a clear VideoError if there is none."""
    if not container.streams.video:
        kind = "audio only" if container.streams.audio else "no streams FFmpeg can read"
        raise VideoError(path, f"no video stream ({kind})")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoError(path, "unknown video codec: this FFmpeg build has no decoder for it")
    stream.thread_type = "AUTO"
    return stream


def _notes(info: VideoInfo) -> None:
    gaps = np.diff(info.pts)
    if len(gaps) > 2 and np.median(gaps) > 0 and np.ptp(gaps) > 0.2 * np.median(gaps):
        info.notes.append("variable frame rate: frame times are the file's own timestamps")
    if max(info.width, info.height) > 2560:
        info.notes.append(f"{info.width}x{info.height}: frames are scaled down to what the model takes")


@lru_cache(maxsize=64)
def _probe(path: str, mtime: float, size: int) -> VideoInfo:
    import av

    with open_container(path) as container:
        stream = video_stream(container, path)
        pts: list[int] = []
        keys: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        keys.append(packet.pts)
        except av.error.FFmpegError:
            pass  # what was read stands; the truncation is reported below
        tb = float(stream.time_base)
        rotation = _rotation(container, stream)
        w, h = stream.codec_context.width, stream.codec_context.height
        if rotation % 180:
            w, h = h, w
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        duration = container.duration / 1e6 if container.duration else None
        info = VideoInfo(path, stream.codec_context.name, w, h, rate, rotation, np.sort(np.asarray(pts, np.int64)),
                         np.sort(np.asarray(keys, np.int64)), tb, duration)
    if not len(info.pts):
        raise VideoError(path, "no frames (truncated, or an empty video stream)")
    last = float(info.times[-1]) + (1 / rate if rate else 0)
    start = float(info.times[0])
    if duration and last - start < 0.9 * duration - 1.0:
        info.failure = f"truncated: frames stop at {last - start:.1f} s of {duration:.1f} s"
    _notes(info)
    return info


def _rotation(container, stream) -> int:
    """The display rotation of the first frame (phone videos), in degrees counter-clockwise."""
    try:
        container.seek(0, stream=stream)
        for frame in container.decode(stream):
            return int(round(frame.rotation or 0)) % 360
    except Exception:  # noqa: BLE001 - no decodable first frame: the decode reports it
        pass
    return 0


def probe(path: str) -> VideoInfo:
    """The file's frames and properties (cached per file version); VideoError with the reason."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise VideoError(path, f"cannot read file ({exc.strerror or exc})") from None
    return _probe(path, st.st_mtime, st.st_size)
