"""One finding = one row of issues.csv: what is wrong, with which file (and its partner, for a pair),
how certain the audit is, and what it suggests. Every check returns these, so the report, the
pictures and `--fix` treat all kinds alike."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

# Kinds in report order: what breaks training first, then what inflates scores, then what to review.
KINDS = ("unreadable", "leakage", "duplicate", "look_alike", "label_error", "box_error", "mask_error", "rare_class", "outlier",
         "junk")
COLUMNS = ("kind", "path", "other_path", "score", "given_label", "suggested_label", "split", "other_split",
           "other_label", "detail")
WHAT = {
    "unreadable": "files that cannot be decoded",
    "leakage": "the same photo (or a resized / recompressed copy) in two splits, or under two labels",
    "duplicate": "copies of a photo within one split and label",
    "look_alike": "pictures alike but not shown to be copies (neighbouring frames or sections, bursts): to review",
    "label_error": "images whose given label the cross-validated model confidently disagrees with",
    "box_error": "boxes that are missing, misplaced, of the wrong class, degenerate or outside the image",
    "mask_error": "masks that cannot be used (no partner, wrong size, values outside the classes)",
    "rare_class": "classes that appear in only one image",
    "outlier": "images far from every other image in feature space",
    "junk": "tiny, extremely elongated or near-blank images",
}


@dataclass
class Finding:
    kind: str
    path: str
    score: float                  # how certain, 0-1: findings of a kind are listed most certain first
    detail: str = ""
    other_path: str = ""
    given_label: str = ""
    suggested_label: str = ""
    split: str = ""
    other_split: str = ""         # a pair's other file: its split and label
    other_label: str = ""

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d["score"] = round(float(self.score), 4)
        return {c: d[c] for c in COLUMNS}


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Kinds in KINDS order, most certain first within each kind, then by path (a stable report)."""
    rank = {k: i for i, k in enumerate(KINDS)}
    return sorted(findings, key=lambda f: (rank.get(f.kind, len(rank)), -f.score, f.path, f.other_path))


def by_kind(findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in ordered(findings):
        out.setdefault(f.kind, []).append(f)
    return out
