"""The bundled sample photos (a leaf module: the demo and its steps all import it, it imports none of them)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_dir() -> Path:
    return Path(str(resources.files("visionzoo.resources").joinpath("samples")))


def sample_images() -> list[str]:
    return sorted(str(p) for p in sample_dir().glob("*.jpg"))
