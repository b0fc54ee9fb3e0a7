"""Short video uploads on the task routes: per-frame answers, the video's summary, and the annotated
video (an H.264 mp4 as a data URL, which the page plays).

Before a frame is decoded, the upload must be an allowed container by its first bytes (MP4/MOV,
Matroska/WebM, AVI; never FFmpeg's guess among its hundreds of formats, so a zip or a PNG named
.mp4 is refused), opened with that demuxer only, with an allowed codec, and its header's frame size
and frame count within `--max-pixels` and `--max-frames`. The upload is then written to a private
temporary folder and read by the same frame loop as `visionzoo TASK predict VIDEO`, in a worker
thread, a few videos at a time (the others queue), under the request's deadline: past it, or when
the client disconnects, the loop stops at the next frame. Long videos are sampled to at most
`MAX_FRAMES` frames spread over their length; what cannot be read is a 4xx naming the reason.
"""
from __future__ import annotations

import asyncio
import base64
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from fastapi import UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..data.decode_error import ImageDecodeError
from ..data.video import Sampling, is_video_name, probe
from .budget import ClientGone, bounded
from .config import ServeConfig
from .uploads import UploadError

MAX_FRAMES = 150          # frames looked at per uploaded video
MAX_SECONDS = 600         # longer uploads are refused (413)
# sniffed container -> the FFmpeg demuxer it is opened with (and nothing else)
CONTAINERS = {"mp4": "mov", "matroska": "matroska", "avi": "avi"}
CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4"})
_MAGIC = (b"ftyp", b"\x1aE\xdf\xa3", b"RIFF", b"FLV", b"\x00\x00\x01\xba", b"OggS")


def container_of(head: bytes) -> str | None:
    """The allowed container these first bytes start, or None (images, archives, other media)."""
    if head[4:8] == b"ftyp" and not head[8:12].startswith((b"avif", b"heic", b"heix", b"mif1")):
        return "mp4"
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    return None


async def is_video_upload(upload: UploadFile) -> bool:
    """A video by its first bytes (also the ones refused later: FLV, MPEG-PS, Ogg), or by its name."""
    head = await upload.read(16)
    await upload.seek(0)
    if container_of(head):
        return True
    if head.startswith(_MAGIC[3:]) or (head.startswith(b"RIFF") and head[8:12] != b"WEBP"):
        return True
    return is_video_name(upload.filename or "")


def _safe_name(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "upload"
    return stem if is_video_name(stem) else f"{stem}.mp4"


def check_header(path: str, head: bytes, cfg: ServeConfig) -> None:
    """Refuse what the container's header says is not allowed or too big, decoding nothing:
    415 other formats / codecs / no video stream, 413 frame size, frame count or length."""
    import av

    kind = container_of(head)
    if kind is None:
        raise UploadError(415, "not a video this server reads (MP4/MOV, Matroska/WebM or AVI, by the file's "
                               "content, not its name)")
    try:
        with av.open(path, format=CONTAINERS[kind]) as container:
            if not container.streams.video:
                raise UploadError(415, "no video stream (" + ("audio only)" if container.streams.audio else "none)"))
            stream = container.streams.video[0]
            codec = stream.codec_context.name if stream.codec_context is not None else "unknown"
            w, h = stream.codec_context.width, stream.codec_context.height
            frames = stream.frames
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            duration = container.duration / 1e6 if container.duration else None
    except av.error.FFmpegError:
        raise UploadError(415, f"not a readable video (corrupt {kind} container)") from None
    if codec not in CODECS:
        raise UploadError(415, f"video codec {codec} is not served (allowed: {', '.join(sorted(CODECS))})")
    if w * h > cfg.max_pixels:
        raise UploadError(413, f"video frames too large ({w}x{h} = {w * h:,} pixels > limit {cfg.max_pixels:,})")
    if not frames and duration and rate:
        frames = int(duration * rate)
    if frames > cfg.max_frames:
        raise UploadError(413, f"video has too many frames ({frames:,} > limit {cfg.max_frames:,})")
    if duration and duration > MAX_SECONDS:
        raise UploadError(413, f"video too long ({duration:.0f} s > {MAX_SECONDS} s)")


def _sampling(path: str) -> Sampling:
    info = probe(path)
    span = float(info.times[-1] - info.times[0]) if info.frames > 1 else 0.0
    if span > MAX_SECONDS:
        raise UploadError(413, f"video too long ({span:.0f} s > {MAX_SECONDS} s)")
    if info.frames <= MAX_FRAMES:
        return Sampling()
    return Sampling(fps=MAX_FRAMES / max(span, 1e-3) * 0.98)


def answer_video(task: str, predictor: Any, data: bytes, filename: str, cfg: ServeConfig,
                 stop: threading.Event | None = None) -> dict[str, Any]:
    """{"frames": [per-frame rows], "summary": {...}, "video": "data:video/mp4;base64,..."};
    `stop` set ends the frame loop at its next frame."""
    from ..video.runner import VideoOptions, run_source
    from .models import jsonable

    with tempfile.TemporaryDirectory(prefix="vz-video-") as tmp:
        path = os.path.join(tmp, _safe_name(filename))
        Path(path).write_bytes(data)
        try:
            if not data:
                raise UploadError(400, "empty file (0 bytes)")
            check_header(path, data[:16], cfg)
            sampling = _sampling(path)
        except ImageDecodeError as exc:
            raise UploadError(415 if "no video" in exc.reason or "not a readable" in exc.reason else 400,
                              exc.reason, filename) from None
        frames: list[dict[str, Any]] = []
        summary: dict[str, Any] = {}
        drawn = Path(tmp) / "drawn"
        opts = VideoOptions(sampling, track=task == "detect", draw=drawn, stop=stop.is_set if stop else None)
        for row in run_source(task, predictor, path, opts):
            row = jsonable(row)
            row["path"] = filename + row["path"][len(path):]
            if "frame" in row:
                frames.append(row)
            else:
                summary = row
        if summary.get("error") and not frames:
            raise UploadError(400, summary["error"], filename)
        video = next(drawn.glob("*.mp4"), None) if drawn.is_dir() else None
        url = "data:video/mp4;base64," + base64.b64encode(video.read_bytes()).decode("ascii") if video else None
    return {"frames": frames, "summary": summary, "video": url, "sampling": vars(sampling)}


class VideoJobs:
    """At most `slots` videos decoded at once; the others wait their turn within their deadline."""

    def __init__(self, cfg: ServeConfig, slots: int):
        self.cfg = cfg
        self.slots = asyncio.Semaphore(slots)
        self.running = 0          # videos being decoded now (threads still winding down after a 504 count)
        self._lock = threading.Lock()

    def _answer(self, *args: Any) -> dict[str, Any]:
        with self._lock:
            self.running += 1
        try:
            return answer_video(*args)
        finally:
            with self._lock:
                self.running -= 1

    async def _run(self, task: str, model: Any, data: bytes, name: str, stop: threading.Event) -> dict[str, Any]:
        async with self.slots:
            return await run_in_threadpool(self._answer, task, model.predictor, data, name, self.cfg, stop)

    async def respond(self, task: str, model: Any, upload: UploadFile, receive: Callable) -> JSONResponse:
        """The task route's answer for one uploaded video (4xx JSON with the reason when unreadable)."""
        data = await upload.read()
        name = upload.filename or "upload.mp4"
        stop = threading.Event()
        try:
            result = await bounded(self._run(task, model, data, name, stop), timeout_s=self.cfg.timeout_s,
                                   receive=receive, stop=stop, what="the video")
        except UploadError as exc:
            return JSONResponse({"error": exc.reason, "filename": name}, status_code=exc.status)
        except ClientGone:
            return JSONResponse({"error": "client closed the connection"}, status_code=499)
        return JSONResponse({**result, "model": model.name})
