"""`visionzoo audit DATA`: find what is wrong with a dataset before training on it."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import (
    DeviceOpt,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    WorkersOpt,
    app,
    console,
    err_console,
    fail,
    folder_check,
    say,
    show_progress,
    wrote,
)


@app.command()
def audit(
    data: Path = typer.Argument(..., help="Class folders (with or without train/ val/ test/), a CSV of path,label, a "
                                "VOC / COCO / YOLO detection set, or images/ beside masks/."),
    out: Path = typer.Option(..., "--out", "-o", callback=folder_check("--out"), help="Folder to write: report.md, issues.csv, report.json, "
                             "montages/ (and the features, for --resume)."),
    task: Optional[str] = typer.Option(None, "--task", help="classify, detect or segment [default: from what DATA "
                                       "holds]."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="classify: the backbone whose features judge the "
                                        "labels (zoo name, run folder, a,b or auto) [default: efficientnet_lite0]; "
                                        "detect: a trained detection run to use instead of cross-fitted detectors."),
    fix: Optional[Path] = typer.Option(None, "--fix", help="Folder for a cleaned copy of the split as CSV files "
                                       "(copies across splits removed, flagged labels listed in review.csv); "
                                       "DATA itself is never changed."),
    folds: Optional[int] = typer.Option(None, "--folds", min=2, help="Cross-validation folds for the label "
                                        "check [default: classify 5 (fewer for a small class), detect 2]."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="COCO JSON file for the images in DATA."),
    classes: Optional[str] = typer.Option(None, "--classes", help="segment: class names a,b,... [default: "
                                          "classes.txt, else from the mask values]."),
    resume: bool = ResumeOpt,
    seed: int = SeedOpt,
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Find what is wrong with a dataset before training on it: label errors, copies leaking across
    train / val / test or labels, outliers, unreadable and junk files, box and mask problems, class
    balance. Findings are the result (exit 0); exit 1 names files that could not be read.

    Example: visionzoo audit photos/ --out audit/ --fix cleaned/
    """
    from ..audit import audit as run_audit

    result = run_audit(data, out, task=task, model=model, annotations=str(annotations) if annotations else None,
                       classes=[c.strip() for c in classes.split(",")] if classes else None, folds=folds,
                       fix=fix, resume=resume, seed=seed, workers=workers, device=device,
                       progress=show_progress(quiet), log=None if quiet else say)
    report = result.report
    console.print(report["verdict"], highlight=False)
    for kind, n in report["findings"].items():
        if n:
            console.print(f"  {kind}: {n}", highlight=False)
    for warning in report["balance"]["warnings"]:
        err_console.print(f"warning: {warning}", highlight=False)
    for path, reason in result.unreadable:
        fail(path, reason, "unreadable")
    wrote(out / "report.md", out / "issues.csv", out / "report.json", *report["montages"].values())
    if fix is not None:
        wrote(*report["fix"]["files"])
    raise typer.Exit(result.exit_code)
