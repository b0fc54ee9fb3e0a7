"""Lazy package exports: importing a package (for `visionzoo --help`, or a part of it that needs
no torch, such as `visionzoo.zoo.spec`) loads no torch; names come from their modules on first use."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that returns `name` from the submodule `exports[name]` of `package`."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
