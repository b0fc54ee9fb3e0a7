"""Renamed options keep their old spelling for one release, with a warning that names the new one."""
from __future__ import annotations

import warnings
from typing import Any

from .errors import UsageError


def renamed(options: dict[str, Any], renames: dict[str, str], where: str) -> dict[str, Any]:
    """`options` with old keyword names moved to their new names (a FutureWarning for each)."""
    out = dict(options)
    for old, new in renames.items():
        if old not in out:
            continue
        if new in out:
            raise UsageError(f"{where}: pass {new}= only ({old}= is its old name)")
        warnings.warn(f"{where}: {old}= is renamed {new}=; the old name goes away in the next release",
                      FutureWarning, stacklevel=3)
        out[new] = out.pop(old)
    return out
