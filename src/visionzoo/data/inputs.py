"""Turn the user's INPUT... (files, folders, globs) into a sorted, de-duplicated list of files."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import UsageError

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
    ".ppm", ".pgm", ".pbm", ".pnm", ".ico", ".tga", ".dib", ".jp2", ".heic", ".avif",
})


def is_image_name(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


@dataclass
class InputList:
    """Files to process, plus files under folders that were skipped for their extension."""

    files: list[str]
    skipped: list[str] = field(default_factory=list)


def walk(folder: Path) -> tuple[list[str], list[str]]:
    files, skipped = [], []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            (files if is_image_name(name) else skipped).append(path)
    return files, skipped


def _expand_uri(uri: str) -> tuple[list[str], list[str]]:
    """(files, skipped) of a URI (s3://bucket/key, a prefix, or a glob), listed through pyarrow's
    filesystems; the files are URIs again, which `load_rgb` reads."""
    from ..store.location import Location

    loc = Location.of(uri)
    if glob.has_magic(loc.path):
        matches = [str(f) for f in loc.glob()]
        if not matches:
            raise UsageError(f"no files match {uri!r}")
        return matches, []
    if loc.is_file():
        return [str(loc)], []
    found = [str(f) for f in loc.walk()]
    if not found:
        raise UsageError(f"no such file or folder: {loc}")
    return [f for f in found if is_image_name(f)], [f for f in found if not is_image_name(f)]


def expand_inputs(inputs: str | os.PathLike | list | tuple) -> InputList:
    """Files are taken as given (any extension); folders recursively (image extensions only);
    globs are expanded; URIs (s3://bucket/prefix/, gs://...) likewise, through pyarrow's
    filesystems. A path that does not exist, or no file at all, is a usage error."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[str] = []
    skipped: list[str] = []
    for item in inputs:
        item = os.fspath(item)
        if "://" in item:
            found, skip = _expand_uri(item)
            files += found
            skipped += skip
        elif os.path.isdir(item):
            found, skip = walk(Path(item))
            files += found
            skipped += skip
        elif os.path.lexists(item):
            files.append(item)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise UsageError(f"no files match {item!r}")
            for match in matches:
                if os.path.isdir(match):
                    found, skip = walk(Path(match))
                    files += found
                    skipped += skip
                else:
                    files.append(match)
        else:
            raise UsageError(f"no such file or folder: {item}")
    files = sorted(dict.fromkeys(files))
    if not files:
        raise UsageError(f"no image files found in {', '.join(map(str, inputs))}")
    return InputList(files=files, skipped=sorted(skipped))


def absolute(files: Sequence[str]) -> list[str]:
    """Local paths made absolute (URIs stay as they are)."""
    return [f if "://" in f else os.path.abspath(f) for f in files]


def common_root(files: Sequence[str]) -> str | None:
    """The deepest folder holding every local input: `--root` moves the rows from there."""
    local = [os.path.dirname(f) for f in files if "://" not in f]
    return os.path.commonpath(local) if local else None
