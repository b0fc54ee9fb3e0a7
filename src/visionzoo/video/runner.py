"""Frames in, per-frame results out, for every task: one loop over any video source.

Frames are decoded ahead of the model in a background thread (FFmpeg's own threads inside it),
gathered into batches, and handed to the task's predictor, the one every command and the server
use (`tasks.<task>.load_predictor(run_or_name)(images)`), so its defaults and fixes hold here too.
Rows come out as soon as their batch is done; the annotated video and subtitles are finished
whatever stops the loop (the end, a failure, Ctrl-C), so everything so far is kept.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..data.video import Sampling, is_stream, probe
from ..data.video_frames import Frame, iter_frames, source_rate
from ..errors import UsageError
from ..holds import hold_point
from ..ordered import ahead
from ..outputs import output_names, output_path
from .captions import CaptionSession, write_srt
from .sessions import DetectSession, FacesSession, SegmentSession, Session

SESSIONS: dict[str, type[Session]] = {"detect": DetectSession, "segment": SegmentSession, "faces": FacesSession,
                                      "caption": CaptionSession}
MAX_SIDE = 1920         # frames of larger videos (4K) are read at this long side


@dataclass
class VideoOptions:
    """How videos are read and what is written besides the rows."""

    sampling: Sampling = field(default_factory=Sampling)
    batch_size: int = 4
    track: bool = False
    draw: str | os.PathLike | None = None     # folder: STEM.mp4 annotated (and STEM.srt for captions)
    progress: bool = False
    log: Callable[[str], None] | None = None
    stop: Callable[[], bool] | None = None    # true: end at the next frame (a server's deadline passed)


def _batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    """Batches of `size` frames; the frames before a source's failure come out before it."""
    from ..data.decode_error import ImageDecodeError

    batch: list[Frame] = []
    try:
        for f in frames:
            batch.append(f)
            if len(batch) >= size:
                yield batch
                batch = []
    except ImageDecodeError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def _expected(source: str, sampling: Sampling) -> int | None:
    try:
        return len(probe(source).sampled(sampling)) if not is_stream(source) and Path(source).is_file() else None
    except Exception:  # noqa: BLE001 - only a progress bar's total
        return None


def _effective_rate(source: str, sampling: Sampling) -> float:
    rate = source_rate(source) or 30.0
    if sampling.fps:
        return min(rate, sampling.fps)
    return rate / (sampling.every or 1)


def run_source(task: str, predictor: Any, source: str, opts: VideoOptions,
               stem: str | None = None) -> Iterator[dict[str, Any]]:
    """One source's rows: a row per frame (for captions, per scene), then its summary row
    `{"path": SOURCE, "frames", ..., "error"}` naming why it stopped early, if it did. `stem`: the
    name of its drawn files (STEM.mp4; default as `visionzoo.outputs.output_names` names it alone)."""
    from ..data.decode_error import ImageDecodeError
    from ..progress import progress_bar
    from ..viz.video import VideoWriter

    session = SESSIONS[task](predictor, _effective_rate(source, opts.sampling), opts.track)
    stem = stem or output_names([source])[source]
    writer = VideoWriter(output_path(opts.draw, stem, ".mp4"), source_rate(source)) if opts.draw is not None else None
    notes = []
    error, last = None, None
    frames = iter_frames(source, opts.sampling, max_side=MAX_SIDE, log=opts.log, stop=opts.stop)
    bar = progress_bar(total=_expected(source, opts.sampling), unit="frame", disable=not opts.progress, desc=stem)
    try:
        if not is_stream(source) and Path(source).is_file():
            notes = probe(source).notes
        for note in notes:
            if opts.log:
                opts.log(f"note: {source}: {note}")
        for batch in _batches(ahead(frames, 2 * opts.batch_size), opts.batch_size):
            if opts.stop is not None and opts.stop():
                error = "stopped"
                break
            chosen = session.select(batch)
            results = dict(zip((f.key for f in chosen), session.predictor([f.image for f in chosen]))) if chosen else {}
            for f in batch:     # the drawn frame first: after Ctrl-C the video holds every row's frame
                result = results.get(f.key)
                row = session.row(f, result)
                if writer is not None:
                    writer.write(session.draw(f, result), f.time)
                last = f
                if row is not None:
                    yield row
                    hold_point("row")  # after its consumer wrote the row
            bar.update(len(batch))
    except ImageDecodeError as exc:
        error = exc.reason
    except KeyboardInterrupt:
        if opts.log:
            where = f" at {last.key}" if last else ""
            opts.log(f"interrupted{where}: the results up to there are written")
        raise
    finally:
        bar.close()
        _finish(task, session, writer, stem, opts)
    yield {"path": source, **session.summary(), "error": error}


def _finish(task: str, session: Session, writer, stem: str, opts: VideoOptions) -> None:
    written = [writer.close()] if writer is not None else []
    if task == "caption" and opts.draw is not None:
        written.append(write_srt(session.summary()["scenes"], output_path(opts.draw, stem, ".srt")))
    if opts.log:
        for path in written:
            if path is not None:
                opts.log(f"wrote {path}")


def run_sources(task: str, predictor: Any, sources: Sequence[str], opts: VideoOptions) -> Iterator[dict[str, Any]]:
    """Rows of each source in turn; a source that fails never stops the others."""
    if task not in SESSIONS:
        raise UsageError(f"videos are not supported for the {task} task here (supported: {', '.join(SESSIONS)})")
    opts.sampling.check()
    names = output_names(sources)   # cut.mp4 and cut.mkv are drawn as cut.mp4.mp4 and cut.mkv.mp4
    for source in sources:
        yield from run_source(task, predictor, source, opts, names[source])


def predict_videos(run_or_name: Any, sources: Sequence[str], *, task: str | None = None,
                   options: VideoOptions | None = None, **predictor_options: Any) -> Iterator[dict[str, Any]]:
    """Any task's model on videos, streams, webcams or image sequences: rows as they come (see
    `run_source`). `predictor_options` go to that task's `load_predictor` (None values left out)."""
    from ..tasks.registry import task_module, task_of

    task = task or task_of(run_or_name)
    load = task_module(task).load_predictor
    predictor = load(run_or_name, **{k: v for k, v in predictor_options.items() if v is not None})
    yield from run_sources(task, predictor, sources, options or VideoOptions())
