"""The audit's written answer in OUT: issues.csv (one row per finding), report.json (everything,
for scripts) and report.md (for people: the verdict, per-kind counts, class balance, the top
findings of each kind beside their picture)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

from ..atomic import atomic_path, write_json
from .findings import COLUMNS, KINDS, WHAT, Finding

CLEAN_PER_1000 = 10.0     # at most this many findings per 1,000 images, none leaking or unreadable: "looks clean"
TOP = 15                  # rows per kind in report.md
SERIOUS = ("leakage", "unreadable")


def verdict(counts: dict[str, int], images: int) -> tuple[bool, float, str]:
    """(clean?, findings per 1,000 images, one sentence)."""
    total = sum(counts.values())
    rate = 1000.0 * total / max(images, 1)
    serious = {k: counts[k] for k in SERIOUS if counts.get(k)}
    clean = not serious and rate <= CLEAN_PER_1000
    words = f"{total} finding(s) in {images} images ({rate:.1f} per 1,000)"
    if clean:
        return True, rate, (f"{words}: no leakage, no unreadable file, and few enough to review by hand: this set "
                            f"looks clean.")
    what = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    return False, rate, f"{words}: {what}. Review them before training (issues.csv lists each one)."


def write_issues(findings: Sequence[Finding], out: Path) -> Path:
    with atomic_path(out) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(x.row() for x in findings)
    return out


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _balance_md(balance: dict[str, Any]) -> list[str]:
    table = balance["counts"]
    if not table:
        return []
    splits = list(table)
    classes = list(next(iter(table.values())))
    total = len(splits) > 1
    lines = ["## Class balance", "", f"Counts: {balance['unit']}.", "",
             "| class | " + " | ".join(splits) + (" | all |" if total else " |"),
             "|---" * (len(splits) + 1 + total) + "|"]
    for c in classes:
        lines.append(f"| {_cell(c)} | " + " | ".join(str(table[s][c]) for s in splits)
                     + (f" | {sum(table[s][c] for s in splits)} |" if total else " |"))
    lines.append("")
    lines += [f"- warning: {w}" for w in balance["warnings"]] or ["No class is too small to evaluate."]
    return lines + [""]


def _kind_md(kind: str, found: list[Finding], montage: str | None, how: str | None) -> list[str]:
    lines = [f"## {kind} ({len(found)})", "", WHAT.get(kind, "").capitalize() + "." if kind in WHAT else "", ""]
    if how:
        lines += [how, ""]
    pair = kind in ("leakage", "duplicate", "look_alike")
    head = ["path", "other path"] if pair else ["path"]
    head += ["score", "given", "suggested", "detail"] if kind in ("label_error", "box_error") else ["score", "detail"]
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for f in found[:TOP]:
        cells = [f.path, f.other_path] if pair else [f.path]
        cells += [f"{f.score:.3f}"]
        if kind in ("label_error", "box_error"):
            cells += [f.given_label, f.suggested_label]
        cells.append(f.detail)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if len(found) > TOP:
        lines.append(f"\n... and {len(found) - TOP} more in issues.csv.")
    if montage:
        lines += ["", f"![{kind}](montages/{Path(montage).name})"]
    return lines + [""]


def write_markdown(report: dict[str, Any], by_kind: dict[str, list[Finding]], out: Path) -> Path:
    lines = [f"# Audit of {report['data']}", "",
             f"Task: {report['task']} ({report['describe']}). {report['images']} images audited in "
             f"{report['seconds']['total']:.0f} s.", "", f"**{report['verdict']}**", "",
             "| kind | what it means | findings |", "|---|---|---|"]
    lines += [f"| {k} | {WHAT[k]} | {report['findings'].get(k, 0)} |" for k in KINDS if k in report["checked"]]
    lines += [""]
    if report.get("skipped"):
        lines += [f"{len(report['skipped'])} file(s) without an image extension were not read "
                  f"(e.g. {report['skipped'][0]}).", ""]
    lines += _balance_md(report["balance"])
    for kind, found in by_kind.items():
        lines += _kind_md(kind, found, report["montages"].get(kind), report["how"].get(kind))
    lines += ["## Files", "", "- `issues.csv`: one row per finding (kind, path, other_path, score, given_label, "
              "suggested_label, split, other_split, other_label, detail), most certain first within each kind.",
              "- `report.json`: this report for scripts.", "- `montages/KIND.png`: the most certain findings of "
              "each kind.", "- `features/`: the image features (reused by `--resume`)."]
    if report.get("fix"):
        lines.append(f"- cleaned split in {report['fix']['folder']}: " + ", ".join(
            f"{s} {n} kept" for s, n in report["fix"]["kept"].items()) + f"; {report['fix']['removed']} removed "
            f"(removed.csv), {report['fix']['to_review']} to review (review.csv).")
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n", "utf-8")
    return out


def write_all(report: dict[str, Any], findings: Sequence[Finding], by_kind: dict[str, list[Finding]],
              out: Path) -> list[Path]:
    return [write_issues(findings, out / "issues.csv"), write_json(out / "report.json", report),
            write_markdown(report, by_kind, out / "report.md")]
