"""Versions of the packages that shape results, recorded in every feature file and saved run."""
from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("visionzoo", "torch", "torchvision", "timm", "numpy", "pillow", "pyarrow", "onnxruntime",
            "scikit-learn")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
