"""One way every command that predicts ends: print each result, write --out, name the failures, exit.

Results are the JSON-able dicts the tasks' `predict` functions return (each with "path" and
"error"). `--out FILE.json` holds them as they are; `--out FILE.csv` one row per prediction,
detection or face (one per file where there is no such list). Exit codes: 0 all done, 1 some
inputs failed (each named on stderr), 2 usage errors (raised before any work is done).
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from ..atomic import atomic_path, write_json
from ..outputs import plan  # noqa: F401  (the commands' one output check: results.plan)
from ._app import console, err_console, fail, wrote

ITEM_LISTS = ("predictions", "detections", "faces", "neighbours")


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {f"{prefix}{k}" if not prefix else f"{prefix}.{k}": v for k, v in value.items()
                if not isinstance(v, (list, dict))}
    if prefix.endswith("box") and isinstance(value, list) and len(value) == 4:
        return dict(zip(("x1", "y1", "x2", "y2"), value))
    return {} if isinstance(value, (list, dict)) else {prefix: value}


def csv_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A result as CSV rows: one per item of its list (predictions, detections, faces), ranked."""
    base = {"path": row["path"]}
    for key, value in row.items():
        if key not in ("path", "error", *ITEM_LISTS):
            base.update(_flat(key, value))
    items = next((row[k] for k in ITEM_LISTS if isinstance(row.get(k), list)), None)
    if row.get("error") or not items:
        return [{**base, "error": row.get("error") or ""}]
    out = []
    for rank, item in enumerate(items, 1):
        flat = {"rank": rank}
        for key, value in (item.items() if isinstance(item, dict) else [("value", item)]):
            flat.update(_flat(key, value))
        out.append({**base, **flat, "error": ""})
    return out


def write_results(rows: Sequence[dict[str, Any]], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".jsonl":
        with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        return out
    if out.suffix.lower() != ".csv":
        return write_json(out, list(rows))
    flat = [r for row in rows for r in csv_rows(row)]
    columns = list(dict.fromkeys(k for r in flat for k in r if k != "error")) + ["error"]
    with atomic_path(out) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)
    return out


def report_failures(rows: Sequence[dict[str, Any]], skipped: Sequence[str] = ()) -> int:
    """Name each failed input with its reason; return the exit status (1 if any failed)."""
    failed = [r for r in rows if r.get("error")]
    for r in failed:
        fail(r["path"], r["error"])
    if skipped:
        err_console.print(f"skipped {len(skipped)} file(s) without an image extension under the input folders"
                          f" (e.g. {skipped[0]})", highlight=False)
    err_console.print(f"{len(rows) - len(failed)} of {len(rows)} image(s) done, {len(failed)} failed.",
                      highlight=False)
    return 1 if failed else 0


def trained(result: dict[str, Any]) -> int:
    """The exit code of a training command: 1 when some input was left out (each was named as it
    happened: an unreadable image, a malformed annotation, a mask with foreign values, a bad caption row)."""
    skipped = result.get("skipped") or []
    if skipped:
        err_console.print(f"{len(skipped)} input(s) left out, each named above; the run is saved without them",
                          highlight=False)
    return 1 if skipped else 0


def finish(rows: Sequence[dict[str, Any]], out: Path | None, skipped: Sequence[str] = (), *,
           line: Callable[[dict[str, Any]], str] | None = None, stdout_json: bool = False) -> int:
    """Print each good result's `line` (or, with `stdout_json` and no --out, the JSON), write --out,
    name the failures; returns the exit code."""
    if out is None and stdout_json:
        console.print_json(data=list(rows))
    elif line is not None:
        for r in rows:
            if not r.get("error"):
                console.print(line(r), highlight=False, markup=False)
    if out is not None:
        wrote(write_results(rows, out))
    return report_failures(rows, skipped)


def listed(inputs: Sequence[str], videos: bool = False):
    """The files named by INPUT... (folders, globs, URIs) and those skipped for their extension;
    `videos`: video files, streams, webcams and image sequences too."""
    from ..data import expand_inputs

    return expand_inputs([os.fspath(i) for i in inputs], videos=videos)


def picture(option: str, path: Path, draw: Callable[[], Any]) -> int:
    """Draw an optional picture after the results are written: its failure is named and makes
    the exit status 1, and never costs the results. Returns 0 or 1."""
    try:
        written = draw()
    except (OSError, ValueError, RuntimeError) as exc:
        fail(f"{option} {path}", f"{type(exc).__name__}: {exc}" if not isinstance(exc, OSError) else
             (exc.strerror or str(exc)), "not written")
        return 1
    wrote(written)
    return 0
