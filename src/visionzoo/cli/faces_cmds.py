"""`visionzoo faces ...`: thin commands over visionzoo.tasks.faces."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ._app import app, err_console, report_failures

faces_app = typer.Typer(help="Faces: detect, landmarks, embed, verify, find people, 3D mesh (issue 11).", no_args_is_help=True)
app.add_typer(faces_app, name="faces")

DetectorOpt = typer.Option("blazeface", "--detector", "-d", help="blazeface (fast, default) | hog | cnn (dlib, slow).")
ThresholdOpt = typer.Option(0.6, "--threshold", "-t", help="Max distance for the same person (dlib's 0.6).")
DrawOpt = typer.Option(None, "--draw", help="Folder for pictures with boxes, landmarks and names.")


def _write(obj, out: Optional[Path]) -> None:
    if out is None:
        typer.echo(json.dumps(obj, indent=2))
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    err_console.print(f"wrote {out}", highlight=False)


@faces_app.command("detect")
def detect_cmd(images: List[str] = typer.Argument(..., help="Image files, folders or globs."),
               out: Optional[Path] = typer.Option(None, "--out", "-o", help="JSON file (stdout if not given)."),
               detector: str = DetectorOpt, draw: Optional[Path] = DrawOpt) -> None:
    """Faces per image: box [x1, y1, x2, y2], score and 5 landmarks, in original pixels."""
    from ..tasks.faces import detect

    results = detect(images, detector=detector, draw=draw)
    _write(results, out)
    raise typer.Exit(report_failures(results))


@faces_app.command("embed")
def embed_cmd(images: List[str] = typer.Argument(..., help="Image files, folders or globs."),
              out: Path = typer.Option(..., "--out", "-o", help="Feature file: folder (parquet), .npy or .pkl."),
              detector: str = DetectorOpt,
              fmt: Optional[str] = typer.Option(None, "--format", "-f", help="parquet | npy | pkl (default: by --out).")) -> None:
    """One 128-d row per face (`PATH#faceK@x1,y1,x2,y2`), ready for search, cluster and probe."""
    from ..tasks.faces import embed

    manifest = embed(images, out, detector=detector, fmt=fmt)
    err_console.print(f"wrote {manifest['count']} face(s) to {out}", highlight=False)
    raise typer.Exit(1 if manifest["failures"] else 0)


@faces_app.command("verify")
def verify_cmd(a: str = typer.Argument(...), b: str = typer.Argument(...), threshold: float = ThresholdOpt,
               detector: str = DetectorOpt, out: Optional[Path] = typer.Option(None, "--out", "-o")) -> None:
    """Same person? Exit 0 for same, 1 for different (largest face of each image)."""
    from ..tasks.faces import verify

    r = verify(a, b, threshold=threshold, detector=detector)
    if out is not None:
        _write(r, out)
    typer.echo(f"{'same' if r['same'] else 'different'} (distance {r['distance']:.3f}, threshold {threshold})")
    raise typer.Exit(0 if r["same"] else 1)


@faces_app.command("find")
def find_cmd(gallery: Path = typer.Argument(..., help="Folder of person subfolders."),
             queries: List[str] = typer.Argument(..., help="Query images, folders or globs."),
             out: Optional[Path] = typer.Option(None, "--out", "-o"), threshold: float = ThresholdOpt,
             detector: str = DetectorOpt, draw: Optional[Path] = DrawOpt) -> None:
    """Name every face in the queries (a gallery person, or `unknown` past the threshold)."""
    from ..tasks.faces import find

    results = find(gallery, queries, threshold=threshold, detector=detector, draw=draw)
    _write(results, out)
    raise typer.Exit(report_failures(results))


@faces_app.command("mesh")
def mesh_cmd(images: List[str] = typer.Argument(...), out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
             detector: str = DetectorOpt) -> None:
    """A 468-vertex 3D FaceMesh per face: STEM_faceK.obj and a PNG turned to the side."""
    from ..tasks.faces import mesh

    results = mesh(images, out, detector=detector)
    _write(results, out / "meshes.json")
    raise typer.Exit(report_failures(results))
