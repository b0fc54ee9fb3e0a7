"""Files appear whole or not at all: write to a temporary name beside the target, then rename.

A crash or `kill -9` mid-write leaves no half file for a reader or a `--resume` to trust.
`atomic_output` does the same on any pyarrow filesystem (local, s3://, gs://, hdfs://).
"""
from __future__ import annotations

import json
import os
import re
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"
_TEMPORARY = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def temporary_name(name: str) -> str:
    """Hidden (readers and resume skip it), per writer: concurrent writers, even on two hosts, never collide."""
    return f".{name}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def sweep_temporaries(folder: str | os.PathLike) -> int:
    """Delete the temporaries that writers killed mid-write (`kill -9`, a power cut) left in a local folder:
    those written on this host by a process that no longer runs. A live writer's file, or another host's,
    is never touched. Returns how many went."""
    swept = 0
    for entry in os.scandir(folder) if os.path.isdir(folder) else ():
        m = _TEMPORARY.match(entry.name)
        if not m or m["host"] != _HOST or _running(int(m["pid"])):
            continue
        try:
            os.unlink(entry.path)
            swept += 1
        except FileNotFoundError:
            pass
    return swept


def _running(pid: int) -> bool:
    """Whether a process with this id runs here (one we may not signal runs too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is synced and renamed over `path`."""
    path = Path(path)
    tmp = path.with_name(temporary_name(path.name))
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename != str(tmp):
            raise
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None  # name the file the user asked for
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """A text file written whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, "utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=str))


@contextmanager
def atomic_output(filesystem: Any, path: str) -> Iterator[Any]:
    """Yield a pyarrow output stream to a temporary name beside `path` on `filesystem` (a
    pyarrow.fs.FileSystem); when the block ends without error the file is moved over `path`.

    Locally the move is a rename (after fsync). On object stores (S3, GCS) it is a server-side
    copy, and a copied object appears whole or not at all, so what this relies on is the atomicity
    of a single object's creation, never of a multi-part upload in progress. A crash can leave a
    hidden `.NAME.*.tmp` object behind, which readers and `--resume` ignore.
    """
    from pyarrow import fs as pafs

    folder, _, name = path.rpartition("/")
    tmp = f"{folder}/{temporary_name(name)}" if folder else temporary_name(name)
    try:
        with filesystem.open_output_stream(tmp, compression=None) as out:
            yield out
        if isinstance(filesystem, pafs.LocalFileSystem):
            _fsync(tmp)
        filesystem.move(tmp, path)
    except BaseException:
        try:
            filesystem.delete_file(tmp)
        except OSError:
            pass  # never created, or the store is unreachable: the hidden leftover is harmless
        raise


def save_image(image: Any, path: str | os.PathLike, **options: Any) -> Path:
    """A PIL image written whole or not at all, in the format its extension names (JPEG, PNG, ...)."""
    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: no picture format has the extension {path.suffix!r}")
    with atomic_path(path) as tmp:
        image.save(tmp, fmt, **options)
    return path
