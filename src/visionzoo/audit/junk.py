"""Files no model should learn from: unreadable ones, tiny ones (for this dataset), extremely
elongated ones and near-blank ones. One small decode per image (JPEG draft mode near THUMB px).

"Tiny" is relative to the image's class (the whole set when there are no labels), so a class of
small crops (25 px faces) is not one long list of findings: shorter side under TINY_FRACTION of the
median shorter side of its class, or under MIN_SIDE px.
"Near-blank": the grey levels of the thumbnail spread less than BLANK_STD (of 255), i.e. one flat
colour with at most faint noise or JPEG ringing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..cpus import usable_cpus
from ..data.decode import ImageDecodeError, load_rgb
from ..data.geometry import file_displayed_size
from ..ordered import ordered_map
from .findings import Finding
from .inventory import Item

THUMB = 64
MIN_SIDE = 16
TINY_FRACTION = 0.25
MAX_ASPECT = 4.0
BLANK_STD = 2.0


@dataclass
class Stats:
    path: str
    width: int = 0
    height: int = 0
    spread: float = 0.0          # standard deviation of the thumbnail's grey levels
    error: str | None = None


def _stats(path: str) -> Stats:
    try:
        img = load_rgb(path, target_size=THUMB)
    except ImageDecodeError as exc:
        return Stats(path, error=exc.reason)
    w, h = file_displayed_size(path) or img.size
    img.thumbnail((THUMB, THUMB))
    return Stats(path, w, h, float(np.asarray(img.convert("L"), dtype=np.float32).std()))


def image_stats(paths: Sequence[str], workers: int | None = None) -> list[Stats]:
    return list(ordered_map(_stats, paths, usable_cpus() if workers is None else workers))


def junk_findings(stats: Sequence[Stats], items: dict[str, Item]) -> list[Finding]:
    """Unreadable, tiny, elongated and near-blank images among `stats`."""
    good = [s for s in stats if s.error is None]
    sides: dict[str | None, list[int]] = {}
    for s in good:
        sides.setdefault(items[s.path].label, []).append(min(s.width, s.height))
    median = {label: float(np.median(v)) for label, v in sides.items()}
    out = [Finding("unreadable", s.path, 1.0, s.error, split=items[s.path].split) for s in stats if s.error]
    for s in good:
        item = items[s.path]
        side, ratio = min(s.width, s.height), max(s.width, s.height) / max(1, min(s.width, s.height))
        tiny_below = max(MIN_SIDE, TINY_FRACTION * median[item.label])
        found = []
        if side < tiny_below:
            among = f"its class {item.label!r}" if item.label is not None else "this set"
            found.append((1 - side / tiny_below, f"tiny: {s.width}x{s.height} px (most images of {among} have a "
                                                 f"shorter side of {median[item.label]:.0f} px)"))
        if ratio > MAX_ASPECT:
            found.append((1 - MAX_ASPECT / ratio, f"extreme aspect ratio: {s.width}x{s.height} px ({ratio:.1f}:1)"))
        if s.spread < BLANK_STD:
            found.append((1 - s.spread / BLANK_STD, f"near-blank: grey levels spread {s.spread:.1f} of 255"))
        out += [Finding("junk", s.path, score, detail, given_label=item.label or "", split=item.split)
                for score, detail in found]
    return out
