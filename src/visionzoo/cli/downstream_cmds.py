"""`visionzoo index / search / dedup / cluster / probe / map`: jobs on stored feature files."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import results
from ._app import (
    DeviceOpt,
    PickleOpt,
    QuietOpt,
    RootOpt,
    SeedOpt,
    TopKHelp,
    WorkersOpt,
    app,
    command,
    console,
    fail,
    folder_check,
    out_file,
    picture_file,
    show_progress,
)
from ._app import say as _say
from ._app import wrote as _wrote

FeaturesArg = typer.Argument(..., help="Feature file from `visionzoo extract` (Parquet folder/file, .npy or .pkl; "
                             "a local path or a URI such as s3://bucket/feats.parquet).")


@app.command()
def index(
    features: str = FeaturesArg,
    out: Path = typer.Option(..., "--out", "-o", callback=folder_check("--out"), help="Index folder to write."),
    exact: Optional[bool] = typer.Option(None, "--exact/--approximate", help="Force the index type "
                                         "[default: exact up to 50,000 images, IVF above]."),
    allow_pickle: bool = PickleOpt,
    root: Optional[Path] = RootOpt,
    quiet: bool = QuietOpt,
):
    """Build a cosine-similarity index (FAISS) over a feature file for `visionzoo search`.

    Example: visionzoo index feats.parquet --out feats.index
    """
    from ..downstream import build_index

    idx = build_index(features, out, exact=exact, allow_pickle=allow_pickle, root=root)
    extra = (f", nlist {idx.index.nlist}, nprobe {idx.index.nprobe} (recall@10 vs exact {idx.recall:.3f} on "
             f"stored rows)") if idx.kind == "ivf" else ""
    console.print(f"{idx.kind} index of {len(idx.paths)} image(s), {idx.index.d}-d{extra}", highlight=False)
    _wrote(out)


@app.command()
def search(
    index_dir: str = typer.Argument(..., metavar="INDEX", help="Index folder from `visionzoo index`, or a feature file (indexed in memory), local or s3://..."),
    queries: List[str] = typer.Argument(..., help="Images, folders or globs to embed, or paths stored in the index."),
    k: int = typer.Option(10, "--top-k", "-k", min=1, help=TopKHelp),
    out: Optional[Path] = out_file(),
    grid: Optional[Path] = picture_file("--grid", "Draw each query beside its neighbours to FILE.png (or .pdf, .svg, ...)."),
    nprobe: Optional[int] = typer.Option(None, "--nprobe", min=1, help="IVF lists scanned per query "
                                         "(more = higher recall, slower) [default: stored with the index]."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Query images per forward pass."),
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    root: Optional[Path] = RootOpt,
    quiet: bool = QuietOpt,
):
    """Most similar stored images for each query (cosine similarity).

    Example: visionzoo search feats.index query.jpg --top-k 5 --grid neighbours.png
    """
    from rich.table import Table

    from ..downstream import search as run_search

    results.plan(files={"--out": (out, (".json", ".csv"))}, pictures={"--grid": grid})
    found = run_search(index_dir, queries, k, nprobe=nprobe, batch_size=batch_size, workers=workers,
                       device=device, progress=show_progress(quiet), root=root)
    table = Table(title=f"top-{k} neighbours")
    table.add_column("query", overflow="fold")
    table.add_column("neighbours (cosine)", overflow="fold")
    for r in found:
        table.add_row(r.query, f"[red]error: {r.error}[/red]" if r.error else
                      "\n".join(f"{n.score:.3f}  {n.path}" for n in r.neighbours))
    console.print(table)
    rows = [{**r.to_dict(), "path": r.query} for r in found]
    code = results.finish(rows, out)
    if grid:
        from ..viz.neighbours import neighbour_grid

        code = max(code, results.picture("--grid", grid, lambda: neighbour_grid(found, grid)))
    raise typer.Exit(code)


@command(app, "dedup", {"--threshold": "--min-similarity", "-t": "--min-similarity",
                        "--max-distance": "--max-hash-distance"})
def dedup(
    features: str = FeaturesArg,
    min_similarity: float = typer.Option(0.5, "--min-similarity", min=-1, max=1,
                                         help="Least feature cosine similarity between a kept image and each image "
                                         "grouped with it (groups never chain)."),
    max_hash_distance: int = typer.Option(28, "--max-hash-distance", min=-1, max=128,
                                          help="Most bits (of 128) the two files' perceptual hashes (pHash + dHash) "
                                          "may differ by to confirm a pair; -1 = trust the features alone (then "
                                          "raise --min-similarity)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write groups to FILE.csv (keep/drop per image)."),
    allow_pickle: bool = PickleOpt,
    root: Optional[Path] = RootOpt,
    quiet: bool = QuietOpt,
):
    """Groups of near-duplicate images (exact, resized, recompressed, lightly cropped) with a keep/drop suggestion.

    Example: visionzoo dedup feats.parquet --out duplicates.csv
    """
    from ..downstream import find_duplicates
    from ..downstream.dedup import write_csv

    results.plan(files={"--out": (out, (".csv",))})
    report = find_duplicates(features, threshold=min_similarity,
                             max_distance=None if max_hash_distance < 0 else max_hash_distance,
                             allow_pickle=allow_pickle, root=root)
    for n, group in enumerate(report.groups, 1):
        console.print(f"[bold]group {n}[/bold]")
        for m in group:
            colour = "green" if m.action == "keep" else "yellow"
            size = f"{m.width}x{m.height}, " if m.width else ""
            size += f"{m.bytes:,} B, " if m.bytes else ""
            console.print(f"  [{colour}]{m.action}[/{colour}] {m.path}  ({size}cosine {m.similarity:.3f} to the "
                          f"kept one)", highlight=False)
    for path, reason in report.unreadable:
        fail(path, f"{reason} (its pairs were not confirmed)")
    console.print(f"{len(report.groups)} group(s), {len(report.drops)} image(s) suggested to drop", highlight=False)
    if out:
        write_csv(report, out)
        _wrote(out)
    raise typer.Exit(1 if report.unreadable else 0)


@app.command()
def cluster(
    features: str = FeaturesArg,
    k: str = typer.Option("auto", "--clusters", "-k", help="Number of clusters, or 'auto' (highest mean silhouette)."),
    out: Path = typer.Option(Path("clusters"), "--out", "-o", callback=folder_check("--out"), help="Folder for assignments.csv, clusters.json "
                             "and one cluster_NN.png montage per cluster."),
    seed: int = SeedOpt,
    allow_pickle: bool = PickleOpt,
    root: Optional[Path] = RootOpt,
    quiet: bool = QuietOpt,
):
    """Group a collection by k-means on its features.

    Example: visionzoo cluster feats.parquet --clusters auto --out clusters/
    """
    from ..downstream import cluster as run_cluster
    from ..errors import UsageError

    if k != "auto" and not k.isdigit():
        raise UsageError(f"--clusters must be a number or 'auto', got {k!r}")
    result = run_cluster(features, k if k == "auto" else int(k), out, seed=seed, allow_pickle=allow_pickle, root=root)
    how = f" (auto: best silhouette {result.silhouette[result.k]:.3f})" if result.silhouette else ""
    console.print(f"k = {result.k}{how}; sizes {result.sizes}", highlight=False)
    _wrote(out / "assignments.csv", out / "clusters.json", out / "cluster_NN.png")


@app.command()
def probe(
    features: str = FeaturesArg,
    labels: Optional[str] = typer.Option(None, "--labels", "-l", help="A CSV of path,label [default: each image's "
                                         "parent folder]."),
    classifier: str = typer.Option("logreg", "--classifier", "-c", help="logreg or knn."),
    cv: int = typer.Option(5, "--cv", min=2, help="Cross-validation folds."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=folder_check("--out"), help="Probe folder to write (for `visionzoo predict`)."),
    allow_pickle: bool = PickleOpt,
    quiet: bool = QuietOpt,
):
    """A classifier on stored features in seconds: cross-validated accuracy and per-class F1.

    Example: visionzoo probe feats.parquet --out probe/ && visionzoo predict probe/ new.jpg
    """
    from rich.table import Table

    from ..downstream import train_probe

    report = train_probe(features, labels, out, classifier=classifier, cv=cv, allow_pickle=allow_pickle)
    table = Table(title=f"{report.kind} probe, {report.folds}-fold CV on {report.count} image(s): accuracy "
                  f"{report.accuracy:.3f} (+/- {report.accuracy_std:.3f}), macro F1 {report.macro_f1:.3f}")
    for col in ("label", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for name, m in report.per_class.items():
        table.add_row(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    console.print(table)
    if report.unlabelled:
        _say(f"{report.unlabelled} image(s) without a label were not used")
    if out:
        _wrote(out)


@app.command(name="map")
def map_(
    features: str = FeaturesArg,
    out: Path = typer.Option(Path("map.png"), "--out", "-o", help="FILE.png (scatter) or FILE.html "
                             "(thumbnails on hover)."),
    labels: Optional[str] = typer.Option(None, "--labels", "-l", help="A CSV of path,label [default: each "
                                         "image's folder name; k-means clusters when all share one folder]."),
    method: str = typer.Option("auto", "--method", help="auto (UMAP if installed, else t-SNE), tsne, umap, pca."),
    max_points: int = typer.Option(5000, "--max-points", min=2, help="Map a random sample of this many images."),
    allow_pickle: bool = PickleOpt,
    root: Optional[Path] = RootOpt,
    quiet: bool = QuietOpt,
):
    """2-D map of a collection (PCA, then t-SNE or UMAP), coloured by label or cluster.

    Example: visionzoo map feats.parquet --out map.html
    """
    from ..downstream import feature_map

    result = feature_map(features, out, labels=labels, method=method, max_points=max_points,
                         allow_pickle=allow_pickle, root=root)
    console.print(f"{len(result.paths)} image(s) mapped with {result.method}", highlight=False)
    _wrote(out)
