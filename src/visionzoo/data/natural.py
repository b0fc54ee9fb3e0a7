"""Natural order of names: `img2` before `img10`, `#face2` before `#face10`, `t=9.5` before `t=10`.

People number their files and tracks; plain string order puts #10 between #1 and #2."""
from __future__ import annotations

import re

_PARTS = re.compile(r"(\d+(?:\.\d+)?)")


def natural_key(name: str) -> tuple:
    """Sort key: digit runs (with a decimal part) compare as numbers, the rest as lower-case text."""
    parts = _PARTS.split(str(name))
    return tuple((0, float(p), p) if i % 2 else (1, p.lower(), p) for i, p in enumerate(parts))
