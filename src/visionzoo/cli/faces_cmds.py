"""`visionzoo faces ...`: thin commands over visionzoo.tasks.faces."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..atomic import write_json
from ..errors import UsageError
from . import results, videos
from ._app import (
    DrawOpt,
    EndOpt,
    EngineOpt,
    EveryOpt,
    FpsOpt,
    ProcessesHelp,
    QuietOpt,
    RayAddressOpt,
    ResumeOpt,
    StartOpt,
    app,
    command,
    console,
    err_console,
    fail,
    folder_check,
    new_app,
    out_file,
    out_folder,
    say,
    show_progress,
    wrote,
)

faces_app = new_app("Faces: detect, landmarks, embed, verify, find people, 3D mesh; index a photo library, find "
                    "everyone's photos, group the people nobody named yet.")
app.add_typer(faces_app, name="faces")

DetectorOpt = typer.Option("blazeface", "--detector", "-d", help="blazeface (fast, default) | hog | cnn (dlib, slow).")
MaxDistanceHelp = "Largest embedding distance for the same person (dlib's 0.6)."
MaxDistanceOpt = typer.Option(0.6, "--max-distance", help=MaxDistanceHelp)
RENAMES = {"--threshold": "--max-distance", "-t": "--max-distance"}
MinScoreOpt = typer.Option(None, "--min-score", "--conf", min=0.0, help="Keep faces the detector scores at least "
                           "this [default: BlazeFace 0.6, chosen on labelled faces and non-faces; dlib 0]; 0.75 "
                           "keeps fewer things that are not faces, and fewer grey or turned faces.")
IndexOpt = typer.Option(None, "--index", help="A face index from `visionzoo faces index`: find the gallery's people "
                        "in every photo of it (instead of QUERIES).")


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
               draw: Optional[Path] = DrawOpt,
               crops: Optional[Path] = out_folder("--crops", "Folder for each face's aligned 150 x 150 chip "
                                                  "(STEM_faceK.jpg), aligned as the embedder aligns it."),
               min_score: Optional[float] = MinScoreOpt,
               fps: Optional[float] = FpsOpt, every: Optional[int] = EveryOpt,
               start: Optional[float] = StartOpt, end: Optional[float] = EndOpt, quiet: bool = QuietOpt) -> None:
    """Faces per image: box [x1, y1, x2, y2], score and 5 landmarks, in original pixels (JSON on stdout
    without --out); per frame of videos, each face tracked (track_id); --crops writes every face's
    aligned chip, for training your own models.

    Example: visionzoo faces detect photos/ --draw drawn/ --crops chips/ --out faces.json
    """
    from ..tasks.faces import detect

    listed = results.listed(images, videos=True)
    still, sources = videos.split(listed.files)
    rows = detect(still, detector=detector, draw=draw, crops=crops, min_score=min_score) if still else []
    frames = _video_frames(detector, sources, draw, videos.sampling(fps, every, start, end), quiet,
                           min_score=min_score)
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

    r = verify(a, b, threshold=max_distance, detector=detector)
    if out is not None:
        wrote(write_json(out, r))
    console.print(f"{'same' if r['same'] else 'different'} (distance {r['distance']:.3f}, max distance "
                  f"{max_distance})", highlight=False)
    raise typer.Exit(0 if r["same"] else 1)


@command(faces_app, "find", RENAMES)
def find_cmd(gallery: Path = typer.Argument(..., help="Folder of person subfolders."),
             queries: Optional[List[str]] = typer.Argument(None, help="Query images, folders or globs; videos, "
                                                           "image sequences, streams, a webcam index."),
             index: Optional[Path] = IndexOpt, out: Optional[Path] = out_file(videos.VIDEO_KINDS),
             max_distance: float = MaxDistanceOpt, detector: str = DetectorOpt, draw: Optional[Path] = DrawOpt,
             min_score: Optional[float] = MinScoreOpt, fps: Optional[float] = FpsOpt, every: Optional[int] = EveryOpt, start: Optional[float] = StartOpt,
             end: Optional[float] = EndOpt, quiet: bool = QuietOpt) -> None:
    """Name every face in the queries (a gallery person, or `unknown` past the max distance); for a
    video, the timeline of who appears when (unknown faces told apart by their tracks); with
    --index, list every photo of the library in which each gallery person appears
    (`{person, path, box, distance}`) and draw a contact sheet per person (in --draw, else beside
    --out).

    Example: visionzoo faces find people/ --index faces.parquet --out matches.json
    """
    if index is not None:
        if queries:
            raise UsageError("give QUERIES or --index, not both")
        _find_in_index(gallery, index, out, max_distance, detector, draw)
        return
    if not queries:
        raise UsageError("give query images (QUERIES) or a face index (--index)")
    from ..tasks.faces import find

    listed = results.listed(queries, videos=True)
    still, sources = videos.split(listed.files)
    rows = find(gallery, still, threshold=max_distance, detector=detector, draw=draw,
                min_score=min_score) if still else []
    frames = _video_frames(detector, sources, draw, videos.sampling(fps, every, start, end), quiet,
                           gallery=gallery, threshold=max_distance, min_score=min_score)
    raise typer.Exit(videos.finish(rows, frames, out, listed.skipped, stdout_json=True))


def _find_in_index(gallery: Path, index: Path, out: Optional[Path], max_distance: float, detector: str,
                   draw: Optional[Path]) -> None:
    from ..tasks.faces.people import match_people

    sheets = draw if draw is not None else (out.with_name(out.stem + "_sheets") if out is not None else None)
    found = match_people(gallery, index, max_distance, detector=detector, chips=sheets is not None)
    rows = found.rows
    if out is None:
        console.print_json(data=rows)
    else:
        wrote(results.write_results(rows, out))
    people: dict[str, set] = {}
    for r in rows:
        people.setdefault(r["person"], set()).add(r["path"])
    for name, photos in sorted(people.items()):
        err_console.print(f"{name}: {len(photos)} photo(s)", highlight=False, markup=False)
    if sheets is not None:  # after the results: a sheet that cannot be drawn costs none of them
        found.draw(sheets)
        wrote(f"{sheets}/PERSON.jpg (a contact sheet per gallery person)")


@faces_app.command("index")
def index_cmd(photos: List[str] = typer.Argument(..., help="Photo files, folders (recursive) or globs."),
              out: str = typer.Option(..., "--out", "-o", help="Face index: a Parquet folder, local or a URI "
                                      "(s3://bucket/faces.parquet); an existing index gets only the photos it lacks."),
              resume: bool = ResumeOpt,
              threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Pipelines on CPU, each decoding, "
                                                    "detecting and embedding its own photos [default: all cores]."),
              partition_size: int = typer.Option(1024, "--partition-size", min=1, help="Photos per shard (resume unit)."),
              detect_size: int = typer.Option(1024, "--detect-size", min=256, help="Long side (px) of the copy faces "
                                              "are found in: faces down to ~3% of the photo's long side at 1024; 2048 "
                                              "finds faces half as small, at ~4x the detection time."),
              engine: str = EngineOpt, ray_address: Optional[str] = RayAddressOpt,
              processes: Optional[int] = typer.Option(None, "--processes", min=1, help=ProcessesHelp),
              min_score: Optional[float] = MinScoreOpt, quiet: bool = QuietOpt) -> None:
    """Every face of every photo into a face index: box, score, 5 landmarks, 128-d descriptor and
    the aligned chip, in shards written as the run goes. After a crash, --resume finishes it; run
    it again over the same folders later and only new photos are read.

    Example: visionzoo faces index photos/ --out faces.parquet
    """
    from ..batch.faces_index import index_faces

    r = index_faces(photos, out, resume=resume, partition_size=partition_size, detect_size=detect_size,
                    min_score=min_score, threads=threads, engine=engine,
                    ray_address=ray_address, num_workers=processes, progress=show_progress(quiet))
    for path, reason in r.failures:
        fail(path, reason)
    if r.skipped:
        err_console.print(f"skipped {len(r.skipped)} file(s) without an image extension under the input folders"
                          f" (e.g. {r.skipped[0]})", highlight=False)
    new = f"{r.computed} new photo(s) read in {r.seconds:.1f}s, {r.added} face(s) added" if r.computed else \
        "no new photos: nothing added"
    err_console.print(f"{r.out}: {r.faces} face(s); {new}; {len(r.failures)} failed.", highlight=False)
    raise typer.Exit(r.exit_code)


@faces_app.command("cluster")
def cluster_cmd(index: Path = typer.Option(..., "--index", help="A face index from `visionzoo faces index`."),
                out: Path = typer.Option(..., "--out", "-o", callback=folder_check("--out"), help="Folder for clusters.csv, clusters.json, "
                                         "sheets/group_NNN.jpg and groups/group_NNN/ (a few crops each)."),
                max_distance: float = typer.Option(0.45, "--max-distance", help=MaxDistanceHelp),
                min_faces: int = typer.Option(2, "--min-faces", min=2, help="Fewest faces that make a group."),
                min_score: Optional[float] = MinScoreOpt, quiet: bool = QuietOpt) -> None:
    """Group the faces of an index into people (Chinese whispers on the descriptors, as dlib
    clusters faces); faces in no group get cluster -1. Move a folder groups/group_NNN into your
    gallery as GALLERY/NAME to name that person.

    Example: visionzoo faces cluster --index faces.parquet --out people/
    """
    from ..tasks.faces.groups import cluster_index

    summary = cluster_index(index, out, max_distance, min_faces, min_score=min_score)
    low = f"; {summary['below_min_score']} scored under {summary['min_score']} (left out)" \
        if summary.get("below_min_score") else ""
    console.print(f"{summary['groups']} group(s) of {summary['grouped']} face(s); {summary['alone']} face(s) in "
                  f"no group (of {summary['faces']}){low}", highlight=False)
    folders = (out / "sheets", out / "groups") if summary["groups"] else ()
    wrote(out / "clusters.csv", out / "clusters.json", *folders)


@faces_app.command("mesh")
def mesh_cmd(images: List[str] = typer.Argument(...), out: Path = typer.Option(..., "--out", "-o", callback=folder_check("--out"),
                                                                              help="Output folder."),
             detector: str = DetectorOpt, quiet: bool = QuietOpt) -> None:
    """A 468-vertex 3D FaceMesh per face: STEM_faceK.obj and a PNG turned to the side.

    Example: visionzoo faces mesh portrait.jpg --out meshes/
    """
    from ..tasks.faces import mesh

    listed = results.listed(images)
    rows = mesh(listed.files, out, detector=detector)
    raise typer.Exit(results.finish(rows, out / "meshes.json", listed.skipped, line=_line))
