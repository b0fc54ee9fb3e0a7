"""Short video uploads on the task routes: per-frame answers, the video's summary, and the annotated
video (an H.264 mp4 as a data URL, which the page plays).

The upload is written to a private temporary folder, read by the same frame loop as
`visionzoo TASK predict VIDEO` (visionzoo.video), in a worker thread, and removed. Long videos
are sampled to at most `MAX_FRAMES` frames spread over their length, so an answer comes within
the video deadline; what cannot be read is a 4xx naming the reason, never a 500.
"""
from __future__ import annotations

import base64
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..data.decode_error import ImageDecodeError
from ..data.video import Sampling, is_video_name, probe
from .uploads import UploadError

MAX_FRAMES = 150          # frames looked at per uploaded video
MAX_SECONDS = 600         # longer uploads are refused (413)
DEADLINE_FACTOR = 10      # a video may take this many times the request timeout
_MAGIC = (b"ftyp", b"\x1aE\xdf\xa3", b"RIFF", b"FLV", b"\x00\x00\x01\xba", b"OggS")


async def is_video_upload(upload: UploadFile) -> bool:
    """By its first bytes (MP4/MOV, Matroska/WebM, AVI, FLV, MPEG-PS, Ogg), else by its name."""
    head = await upload.read(16)
    await upload.seek(0)
    if head[4:8] == b"ftyp" and not head[8:12].startswith((b"avif", b"heic", b"heix", b"mif1")):
        return True
    if head.startswith(_MAGIC[1:]) and not (head.startswith(b"RIFF") and head[8:12] == b"WEBP"):
        return True
    return is_video_name(upload.filename or "")


def _safe_name(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "upload"
    return stem if is_video_name(stem) else f"{stem}.mp4"


def _sampling(path: str) -> Sampling:
    info = probe(path)
    span = float(info.times[-1] - info.times[0]) if info.frames > 1 else 0.0
    if span > MAX_SECONDS:
        raise UploadError(413, f"video too long ({span:.0f} s > {MAX_SECONDS} s)")
    if info.frames <= MAX_FRAMES:
        return Sampling()
    return Sampling(fps=MAX_FRAMES / max(span, 1e-3) * 0.98)


def answer_video(task: str, predictor: Any, data: bytes, filename: str) -> dict[str, Any]:
    """{"frames": [per-frame rows], "summary": {...}, "video": "data:video/mp4;base64,..."}."""
    from ..video.runner import VideoOptions, run_source
    from .models import jsonable

    with tempfile.TemporaryDirectory(prefix="vz-video-") as tmp:
        path = os.path.join(tmp, _safe_name(filename))
        Path(path).write_bytes(data)
        try:
            sampling = _sampling(path)
        except ImageDecodeError as exc:
            raise UploadError(415 if "no video" in exc.reason or "not a readable" in exc.reason else 400,
                              exc.reason, filename) from None
        frames: list[dict[str, Any]] = []
        summary: dict[str, Any] = {}
        drawn = Path(tmp) / "drawn"
        for row in run_source(task, predictor, path, VideoOptions(sampling, track=task == "detect", draw=drawn)):
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


async def video_response(task: str, model: Any, upload: UploadFile, timeout_s: float) -> JSONResponse:
    """The task route's answer for one uploaded video (4xx JSON with the reason when unreadable)."""
    import asyncio

    data = await upload.read()
    name = upload.filename or "upload.mp4"
    try:
        result = await asyncio.wait_for(run_in_threadpool(answer_video, task, model.predictor, data, name),
                                        timeout_s * DEADLINE_FACTOR)
    except UploadError as exc:
        return JSONResponse({"error": exc.reason, "filename": name}, status_code=exc.status)
    except asyncio.TimeoutError:
        return JSONResponse({"error": f"timed out after {timeout_s * DEADLINE_FACTOR:g} s (a shorter video, or "
                                      f"the command line, for long ones)"}, status_code=504)
    return JSONResponse({**result, "model": model.name})
