"""`visionzoo faces ...`: thin commands over visionzoo.tasks.faces."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..atomic import write_json
from . import results, videos
from ._app import (
    DrawOpt,
    EndOpt,
    EveryOpt,
    FpsOpt,
    QuietOpt,
    StartOpt,
    app,
    command,
    console,
    fail,
    new_app,
    out_file,
    say,
    show_progress,
    wrote,
)

faces_app = new_app("Faces: detect, landmarks, embed, verify, find people, 3D mesh.")
app.add_typer(faces_app, name="faces")

DetectorOpt = typer.Option("blazeface", "--detector", "-d", help="blazeface (fast, default) | hog | cnn (dlib, slow).")
MaxDistanceOpt = typer.Option(0.6, "--max-distance", help="Largest embedding distance for the same person (dlib's 0.6).")
RENAMES = {"--threshold": "--max-distance", "-t": "--max-distance"}


def _line(r: dict) -> str:
    faces = r["faces"]
    names = [f.get("identity") for f in faces if f.get("identity")]
    return f"{r['path']}: {len(faces)} face(s)" + (f" ({', '.join(names)})" if names else "")


def _video_frames(detector: str, sources: list[str], draw: Optional[Path], sampling, quiet: bool, **options):
    """Faces per frame of each video (tracked, so the timeline tells people apart), as rows."""
    from ..video import VideoOptions, predict_videos

    if not sources:
        return ()
    opts = VideoOptions(sampling, batch_size=1, track=True, draw=draw, progress=show_progress(quiet), log=say)
    return predict_videos(detector, sources, task="faces", options=opts, **options)


@faces_app.command("detect")
def detect_cmd(images: List[str] = typer.Argument(..., help="Image files, folders or globs; videos, image sequences, "
                                                  "streams, a webcam index."),
               out: Optional[Path] = out_file(videos.VIDEO_KINDS), detector: str = DetectorOpt,
               draw: Optional[Path] = DrawOpt, fps: Optional[float] = FpsOpt, every: Optional[int] = EveryOpt,
               start: Optional[float] = StartOpt, end: Optional[float] = EndOpt, quiet: bool = QuietOpt) -> None:
    """Faces per image: box [x1, y1, x2, y2], score and 5 landmarks, in original pixels (JSON on stdout
    without --out); per frame of videos, each face tracked (track_id).

    Example: visionzoo faces detect photos/ --draw drawn/ --out faces.json
    """
    from ..tasks.faces import detect

    results.check_out(out, videos.VIDEO_KINDS)
    listed = results.listed(images, videos=True)
    still, sources = videos.split(listed.files)
    rows = detect(still, detector=detector, draw=draw) if still else []
    frames = _video_frames(detector, sources, draw, videos.sampling(fps, every, start, end), quiet)
    raise typer.Exit(videos.finish(rows, frames, out, listed.skipped, stdout_json=True))


@faces_app.command("embed")
def embed_cmd(images: List[str] = typer.Argument(..., help="Image files, folders or globs."),
              out: Path = typer.Option(..., "--out", "-o", help="Feature file: folder (parquet), .npy or .pkl."),
              detector: str = DetectorOpt,
              fmt: Optional[str] = typer.Option(None, "--format", "-f", help="parquet | npy | pkl (default: by --out)."),
              quiet: bool = QuietOpt) -> None:
    """One 128-d row per face (`PATH#faceK@x1,y1,x2,y2`), ready for search, cluster and probe.

    Example: visionzoo faces embed photos/ --out faces.parquet
    """
    from ..tasks.faces import embed

    manifest = embed(images, out, detector=detector, fmt=fmt)
    for f in manifest["failures"]:
        fail(f["path"], f["reason"])
    wrote(f"{out} ({manifest['count']} face(s))")
    raise typer.Exit(1 if manifest["failures"] else 0)


@command(faces_app, "verify", RENAMES)
def verify_cmd(a: str = typer.Argument(...), b: str = typer.Argument(...), max_distance: float = MaxDistanceOpt,
               detector: str = DetectorOpt, out: Optional[Path] = out_file((".json",)),
               quiet: bool = QuietOpt) -> None:
    """Same person? Exit 0 for same, 1 for different (largest face of each image).

    Example: visionzoo faces verify me.jpg passport.jpg
    """
    from ..tasks.faces import verify

    results.check_out(out, (".json",))
    r = verify(a, b, threshold=max_distance, detector=detector)
    if out is not None:
        wrote(write_json(out, r))
    console.print(f"{'same' if r['same'] else 'different'} (distance {r['distance']:.3f}, max distance "
                  f"{max_distance})", highlight=False)
    raise typer.Exit(0 if r["same"] else 1)


@command(faces_app, "find", RENAMES)
def find_cmd(gallery: Path = typer.Argument(..., help="Folder of person subfolders."),
             queries: List[str] = typer.Argument(..., help="Query images, folders or globs; videos, image sequences, "
                                                 "streams, a webcam index."),
             out: Optional[Path] = out_file(videos.VIDEO_KINDS), max_distance: float = MaxDistanceOpt,
             detector: str = DetectorOpt, draw: Optional[Path] = DrawOpt, fps: Optional[float] = FpsOpt,
             every: Optional[int] = EveryOpt, start: Optional[float] = StartOpt, end: Optional[float] = EndOpt,
             quiet: bool = QuietOpt) -> None:
    """Name every face in the queries (a gallery person, or `unknown` past the max distance); for a
    video, the timeline of who appears when (unknown faces told apart by their tracks).

    Example: visionzoo faces find people/ party_photos/ party.mp4 --draw named/
    """
    from ..tasks.faces import find

    results.check_out(out, videos.VIDEO_KINDS)
    listed = results.listed(queries, videos=True)
    still, sources = videos.split(listed.files)
    rows = find(gallery, still, threshold=max_distance, detector=detector, draw=draw) if still else []
    frames = _video_frames(detector, sources, draw, videos.sampling(fps, every, start, end), quiet,
                           gallery=gallery, threshold=max_distance)
    raise typer.Exit(videos.finish(rows, frames, out, listed.skipped, stdout_json=True))


@faces_app.command("mesh")
def mesh_cmd(images: List[str] = typer.Argument(...), out: Path = typer.Option(..., "--out", "-o",
                                                                              help="Output folder."),
             detector: str = DetectorOpt, quiet: bool = QuietOpt) -> None:
    """A 468-vertex 3D FaceMesh per face: STEM_faceK.obj and a PNG turned to the side.

    Example: visionzoo faces mesh portrait.jpg --out meshes/
    """
    from ..tasks.faces import mesh

    listed = results.listed(images)
    rows = mesh(listed.files, out, detector=detector)
    raise typer.Exit(results.finish(rows, out / "meshes.json", listed.skipped, line=_line))
