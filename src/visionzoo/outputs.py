"""Plan, then work: every output a command will write, resolved and checked before the first input is read.

One mechanism for every command and every kind of output: result files (`--out` by its extension),
folders of per-input files (`--draw`, `--masks`, `--crops`), single pictures (`--grid`, a sheet,
a plot: any format matplotlib writes), and the device. And one way to name per-input files, so
two inputs never write the same file: `output_names` gives each input the path below the
inputs' common folder (`a/1.jpg` and `b/1.jpg` stay apart); inputs that would still share a name
(`a.jpg` and `a.png`, `cut.mp4` and `cut.mkv`) keep their extension in it (`a.jpg.jpg`, `a.png.jpg`).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import UsageError

PICTURE_KINDS = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".webp", ".tif", ".tiff")


def _writable_parent(path: Path) -> Path:
    """The nearest existing folder above `path` (where its missing folders would be created)."""
    return next(p for p in [path.absolute().parent, *path.absolute().parents] if p.exists())


def _kinds(kinds: Sequence[str]) -> str:
    return " or ".join(kinds)


def check_file(path: Path | None, option: str, kinds: Sequence[str], *, exists_ok: bool = True) -> None:
    """Refuse a file option this command cannot write: a folder, an extension it does not write
    (`kinds`), a place it cannot write to, or (`exists_ok=False`) a file that is already there."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file name ending in {_kinds(kinds)}")
    if not exists_ok and path.exists():
        raise UsageError(f"{option} {path} already exists; remove it or give another name")
    if path.suffix.lower() not in kinds:
        raise UsageError(f"{option} {path}: this command writes {_kinds(kinds)} files (by the name's extension)")
    folder = _writable_parent(path)
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write there ({folder} is not a writable folder)")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path}: the file is read-only")


def check_folder(path: Path | None, option: str, *, what: str = "a folder") -> None:
    """Refuse a folder option that names an existing file or a place this command cannot write to."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file; give {what} (it is created if missing)")
    folder = path if path.is_dir() else _writable_parent(path)
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write there ({folder} is not a writable folder)")


def picture_kinds() -> tuple[str, ...]:
    """The extensions matplotlib saves (png, pdf, svg, jpg, ...)."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:  # pragma: no cover - matplotlib is a dependency; the common kinds then
        return PICTURE_KINDS
    return tuple(f".{k}" for k in FigureCanvasBase.get_supported_filetypes())


def check_picture(path: Path | None, option: str) -> None:
    """Refuse a picture option whose extension no picture is written in, or a place it cannot go."""
    if path is not None and not Path(path).is_dir() and Path(path).suffix.lower() not in picture_kinds():
        raise UsageError(f"{option} {path}: not a picture format ({Path(path).suffix or 'no extension'}); give a "
                         f"name ending in .png, .jpg, .pdf or .svg (any format matplotlib writes)")
    check_file(path, option, picture_kinds())


def check_device(device: str | None) -> None:
    """Refuse a device this machine does not have (`cuda` without a GPU, `cuda:3` with two, `mps` off a Mac)."""
    if device in (None, "", "auto", "cpu"):
        return
    import torch

    kind, _, index = str(device).partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {device}: no CUDA GPU is usable on this machine; use --device cpu or auto")
        if index and (not index.isdigit() or int(index) >= count):
            raise UsageError(f"--device {device}: this machine has {count} CUDA GPU(s) (cuda:0 to cuda:{count - 1})")
        return
    if kind == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise UsageError(f"--device {device}: Apple's MPS is not available here; use --device cpu or auto")
        return
    raise UsageError(f"--device {device}: not a device (auto, cpu, cuda, cuda:N or mps)")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_.") or "input"


def _base(source: str) -> str:
    """A source as a file path: a stream's address made safe, an image sequence without its pattern."""
    if "://" in source:
        return _safe(source.split("://", 1)[1])
    if source.isdigit():
        return f"webcam{source}"
    return source.replace("%", "")


def output_names(sources: Iterable[str]) -> dict[str, str]:
    """Each input's name for the files made from it (no extension; may hold `/` for sub-folders):
    its path below the inputs' common folder without the extension; unique over `sources`
    (kept with its extension where two would clash). The same inputs always get the same names."""
    sources = list(dict.fromkeys(str(s) for s in sources))
    paths = {s: _base(s) for s in sources}
    local = [os.path.abspath(p) for s, p in paths.items() if "://" not in s and not s.isdigit()]
    root = os.path.commonpath([os.path.dirname(p) for p in local]) if local else None

    def relative(source: str) -> Path:
        path = paths[source]
        if root is None or "://" in source or source.isdigit():
            return Path(Path(path).name)
        rel = Path(os.path.relpath(os.path.abspath(path), root))
        return rel if rel.parts and rel.parts[0] != ".." else Path(Path(path).name)

    rels = {s: relative(s) for s in sources}
    stems = {s: (r.with_suffix("") if r.suffix else r).as_posix() for s, r in rels.items()}
    count: dict[str, int] = {}
    for stem in stems.values():
        count[stem] = count.get(stem, 0) + 1
    names, used = {}, set()
    for s in sources:
        name = stems[s] if count[stems[s]] == 1 else rels[s].as_posix()
        name = name or "input"
        unique, k = name, 1
        while unique in used:
            k += 1
            unique = f"{name}_{k}"
        used.add(unique)
        names[s] = unique
    return names


def output_path(folder: str | os.PathLike, name: str, suffix: str) -> Path:
    """FOLDER/NAME+SUFFIX, its sub-folders created."""
    path = Path(folder) / f"{name}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plan(*, files: dict[str, tuple[Path | None, Sequence[str]]] | None = None,
         folders: dict[str, Path | None] | None = None, pictures: dict[str, Path | None] | None = None,
         device: str | None = None) -> None:
    """Check, before any work, every output of a command: `files` (option -> (path, extensions)),
    `folders` (option -> folder of per-input files), `pictures` (option -> a matplotlib picture),
    that no two options name the same path, and the device. Raises UsageError (exit 2) naming the
    first problem; nothing is created or touched."""
    seen: dict[Path, str] = {}
    for option, (path, kinds) in (files or {}).items():
        check_file(path, option, kinds)
        if path is not None:
            seen.setdefault(Path(path).absolute(), option)
    for option, path in (pictures or {}).items():
        check_picture(path, option)
        if path is not None and seen.setdefault(Path(path).absolute(), option) != option:
            raise UsageError(f"{option} {path} is also {seen[Path(path).absolute()]}; give each its own file")
    for option, path in (folders or {}).items():
        check_folder(path, option)
        if path is not None and Path(path).absolute() in seen:
            raise UsageError(f"{option} {path} is also {seen[Path(path).absolute()]}; give a folder of its own")
    check_device(device)
