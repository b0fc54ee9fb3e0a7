"""The typer app and the few helpers every command module shares. Commands hold no logic."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(
    name="visionzoo",
    help="Pretrained vision models: model zoo, classification, features at scale, transfer learning, "
         "detection, segmentation, faces, captioning, serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output keeps whole lines (file names, labels) instead of truncating to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

ModelOpt = typer.Option(None, "--model", "-m", help="Zoo name, timm/torchvision name, or a saved run folder "
                        "[default: efficientnet_lite0, offline].")
WeightsOpt = typer.Option(None, "--weights", help="Local weights file (.safetensors or .pth).")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bar.")


def show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def report_failures(results, skipped: list[str] | None = None) -> int:
    """Print each failed input with its reason; return the exit status (1 if any failed).
    `results` are ImageResults or the JSON dicts of the task commands (both have path and error)."""
    rows = [r if isinstance(r, dict) else {"path": r.path, "error": r.error} for r in results]
    failed = [r for r in rows if r.get("error")]
    for r in failed:
        err_console.print(f"[red]failed[/red] {r['path']}: {r['error']}", highlight=False)
    if skipped:
        err_console.print(f"skipped {len(skipped)} file(s) without an image extension under the input folders"
                          f" (e.g. {skipped[0]})", highlight=False)
    done = len(results) - len(failed)
    err_console.print(f"{done} of {len(results)} image(s) done, {len(failed)} failed.", highlight=False)
    return 1 if failed else 0


def write_results(results, out: Optional[Path]) -> None:
    """JSON (a list of {path, predictions, error}) or CSV (one row per prediction) by extension."""
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        import csv

        with out.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["path", "rank", "label", "index", "probability", "error"])
            for r in results:
                if r.error:
                    w.writerow([r.path, "", "", "", "", r.error])
                for rank, p in enumerate(r.predictions, 1):
                    w.writerow([r.path, rank, p.label, p.index, f"{p.probability:.6f}", ""])
    else:
        out.write_text(json.dumps([r.to_dict() for r in results], indent=2), encoding="utf-8")
    err_console.print(f"wrote {out}", highlight=False)


def print_predictions(results, title: str) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    table.add_column("image", overflow="fold")
    table.add_column("top predictions")
    for r in results:
        if r.error:
            table.add_row(r.path, f"[red]error: {r.error}[/red]")
        else:
            table.add_row(r.path, "\n".join(f"{p.probability:6.1%}  {p.label}  [dim]({p.index})[/dim]" for p in r.predictions))
    console.print(table)
