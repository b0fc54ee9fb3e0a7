"""How the commands that take images take videos too: the sampling options, which inputs are
videos, and an --out that is written as the frames come (JSON lines at once; JSON / CSV at the end).

A video's rows are one per frame (`PATH#t=SECONDS`, with "frame" and "time") and, last, one for
the video itself: its summary (tracks, timeline, scenes) and, if it stopped early, the reason.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..atomic import temporary_name
from ..data.video import Sampling, is_video_source
from . import results
from ._app import console, err_console, fail, wrote

VIDEO_KINDS = (".json", ".csv", ".jsonl")


def sampling(fps: float | None, every: int | None, start: float | None, end: float | None) -> Sampling:
    return Sampling(fps=fps, every=every, start=start, end=end).check()


def split(files: Sequence[str]) -> tuple[list[str], list[str]]:
    """(images, video sources) of an expanded input list, each in the given order."""
    videos = [f for f in files if is_video_source(f)]
    chosen = set(videos)
    return [f for f in files if f not in chosen], videos


class RowSink:
    """--out as rows arrive. A .jsonl file grows line by line under a hidden temporary name beside
    it (`.NAME.jsonl.*.tmp`, readable while a stream runs); .json / .csv are kept in memory. On
    `close(keep=True)` (the end, Ctrl-C, SIGTERM) the file is renamed / written into place, whole up
    to the last finished frame; `close(keep=False)` (a refused or failed run) leaves an existing
    --out exactly as it was."""

    def __init__(self, out: Path | None):
        self.out = out
        self.rows: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []
        self.count = 0
        self.file = None
        self.tmp: Path | None = None
        self.lines = out is not None and out.suffix.lower() == ".jsonl"

    def add(self, row: dict[str, Any]) -> None:
        self.count += 1
        if row.get("error"):
            self.failed.append(row)
        if self.lines:
            if self.file is None:   # opened with the first row: after the model loaded and the inputs were read
                self.out.parent.mkdir(parents=True, exist_ok=True)
                self.tmp = self.out.with_name(temporary_name(self.out.name))
                self.file = self.tmp.open("w", encoding="utf-8")
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        elif self.out is not None:
            self.rows.append(row)

    def close(self, keep: bool = True) -> None:
        if self.file is not None:
            self.file.close()
            if keep:
                os.replace(self.tmp, self.out)
            else:
                self.tmp.unlink(missing_ok=True)
        elif self.out is not None and keep:
            results.write_results(self.rows, self.out)
        if self.out is not None and keep:
            wrote(f"{self.out} ({self.count} row(s))")


def subtitles(rows: Iterable[dict[str, Any]], out: Path) -> Iterator[dict[str, Any]]:
    """Pass the rows on; write each video's scenes (its summary row) as SubRip subtitles to `out`."""
    from ..video.captions import write_srt

    for row in rows:
        if "scenes" in row:
            wrote(write_srt(row["scenes"], out))
        yield row


def summary_line(row: dict[str, Any]) -> str:
    """One line about a whole video: frames, and its tracks, people or scenes."""
    parts = [f"{row.get('frames', 0)} frame(s)"]
    if "tracks" in row:
        parts.append(f"{len(row['tracks'])} track(s)" + "".join(
            f"; #{t['track_id']} {t['label']} {t['first_seen']:.1f}-{t['last_seen']:.1f} s" for t in row["tracks"][:8]))
    for name, spans in row.get("timeline", {}).items():
        parts.append(f"{name}: " + ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in spans))
    if "scenes" in row:
        parts.append(f"{len(row['scenes'])} scene(s)")
    return f"{row['path']}: " + "; ".join(parts)


def finish(image_rows: Iterable[dict[str, Any]], video_rows: Iterable[dict[str, Any]], out: Path | None,
           skipped: Sequence[str] = (), *, line: Callable[[dict[str, Any]], str] | None = None,
           stdout_json: bool = False) -> int:
    """`results.finish` for a mix of images and videos: frame rows printed and written as they
    come, a summary line per video; returns the exit code (1 if any image or video failed)."""
    sink = RowSink(out)
    image_rows = list(image_rows)
    if stdout_json and out is None and image_rows:
        console.print_json(data=image_rows)
    videos = failed_videos = 0
    keep = False    # a refused or failed run never touches an existing --out; an interrupted one keeps its rows
    try:
        for r in image_rows:
            sink.add(r)
            if line is not None and not r.get("error"):
                console.print(line(r), highlight=False, markup=False)
        for r in video_rows:
            sink.add(r)
            if "frame" in r:   # frames go to stdout when there is no --out (a progress bar otherwise)
                if out is None:
                    console.print(line(r) if line is not None else json.dumps(r), highlight=False, markup=False)
                continue
            videos += 1
            failed_videos += bool(r.get("error"))
            console.print(summary_line(r), highlight=False, markup=False)
        keep = True
    except KeyboardInterrupt:
        keep = True
        raise
    finally:
        sink.close(keep)
    failed_images = [r for r in image_rows if r.get("error")]
    for r in sink.failed:
        fail(r["path"], r["error"])
    if skipped:
        err_console.print(f"skipped {len(skipped)} file(s) of other kinds under the input folders (e.g. {skipped[0]})",
                          highlight=False)
    if image_rows:
        err_console.print(f"{len(image_rows) - len(failed_images)} of {len(image_rows)} image(s) done, "
                          f"{len(failed_images)} failed.", highlight=False)
    if videos:
        err_console.print(f"{videos - failed_videos} of {videos} video(s) done, {failed_videos} failed.",
                          highlight=False)
    return 1 if sink.failed else 0
