"""A gallery: a folder of person subfolders, each with photos of that person. Its embeddings are
cached (one .npz per gallery and detector, keyed by every file's path, size and mtime) and reused
while the gallery is unchanged."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...atomic import atomic_path
from ...errors import UsageError

CACHE_VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get("VISIONZOO_CACHE", Path.home() / ".cache" / "visionzoo")) / "faces"


@dataclass
class Gallery:
    names: list[str]           # one per embedding: the person's folder name
    paths: list[str]
    embeddings: np.ndarray     # (N, 128)
    cached: bool = False       # True when read back from the cache

    def __len__(self) -> int:
        return len(self.names)


def _listing(root: Path) -> list[tuple[str, str, int, int]]:
    from ...data.inputs import expand_inputs

    people = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not people:
        raise UsageError(f"gallery {root} has no person subfolders (GALLERY/NAME/photo.jpg)")
    out = []
    for person in people:
        try:
            files = expand_inputs(str(person)).files
        except UsageError:
            continue
        for f in files:
            st = os.stat(f)
            out.append((person.name, f, st.st_size, st.st_mtime_ns))
    if not out:
        raise UsageError(f"gallery {root} has no images in its person subfolders")
    return out


def load_gallery(root: str | os.PathLike, detector: str = "blazeface") -> Gallery:
    """The largest face of every gallery photo; photos without a face are left out."""
    from .pipeline import iter_faces

    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"gallery {root} is not a folder")
    listing = _listing(root.resolve())
    key = hashlib.sha256(json.dumps([CACHE_VERSION, detector, listing]).encode()).hexdigest()[:24]
    cache = cache_dir() / f"{key}.npz"
    if cache.is_file():
        z = np.load(cache)
        return Gallery([str(n) for n in z["names"]], [str(p) for p in z["paths"]], z["embeddings"], cached=True)
    person = {f: n for n, f, _, _ in listing}
    names, paths, rows = [], [], []
    for path, _, _, faces, _ in iter_faces([f for _, f, _, _ in listing], detector, True):
        if faces:
            names.append(person[path])
            paths.append(path)
            rows.append(faces[0].embedding)
    emb = np.stack(rows) if rows else np.zeros((0, 128), np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp, open(tmp, "wb") as f:
        np.savez(f, names=np.array(names), paths=np.array(paths), embeddings=emb)
    return Gallery(names, paths, emb)
