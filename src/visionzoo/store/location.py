"""Where feature files live: a local path, or a URI of any filesystem pyarrow knows (s3://, gs://,
hdfs://, abfs://, file://), so one writer and one reader serve a laptop and a cluster alike.

A Location is a filesystem URI plus a path on it, both plain strings: it pickles small and
without credentials, and each process (a Ray worker on another node too) builds the filesystem
itself, once, from the URI and its own environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_SESSION_TOKEN / AWS_PROFILE, AWS_ENDPOINT_URL (an S3-compatible store), AWS_DEFAULT_REGION,
or an instance role; GOOGLE_APPLICATION_CREDENTIALS for gs://. The URI's query travels with it
(`s3://bucket/feats.parquet?endpoint_override=host:9000&scheme=http&region=eu-west-1`), so every
node of a run reaches the same store.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

from ..atomic import atomic_output
from ..errors import UsageError

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]+://")


def is_uri(where: Any) -> bool:
    """Whether `where` names a file by URI (s3://...) rather than by local path."""
    return isinstance(where, str) and bool(_URI.match(where))


@lru_cache(maxsize=None)
def _resolve(root: str | None) -> tuple[Any, str]:
    """(pyarrow filesystem, its path for the root) of `scheme://netloc?query`, once per process."""
    from pyarrow import fs as pafs

    if root is None:
        return pafs.LocalFileSystem(), ""
    try:
        fs, base = pafs.FileSystem.from_uri(root)
    except (ValueError, OSError) as exc:  # ArrowInvalid is a ValueError
        raise UsageError(f"cannot open {_public(root)}: {exc}") from None
    return fs, base.rstrip("/")


def _public(root: str) -> str:
    """The root without credentials (key:secret@), for messages and output names (abfs's
    container@account, no secret, stays)."""
    parts = urlsplit(root, allow_fragments=False)
    user, at, host = parts.netloc.rpartition("@")
    return f"{parts.scheme}://{host if ':' in user else parts.netloc}"


@dataclass(frozen=True)
class Location:
    """A file or folder: `path` on the filesystem made from `uri` (`scheme://netloc?query`;
    None: the local filesystem).

    A URI's path is taken literally (no %-decoding, so any key round-trips; `?` starts the query,
    so it is no wildcard), its query selects the store (pyarrow's options: endpoint_override,
    scheme, region, ...).
    """

    path: str
    uri: str | None = None

    @classmethod
    def of(cls, where: str | os.PathLike | Location) -> Location:
        if isinstance(where, Location):
            return where
        where = os.fspath(where)
        if not is_uri(where):
            return cls(where)
        parts = urlsplit(where, allow_fragments=False)
        if parts.scheme == "file":
            return cls(parts.path)
        root = urlunsplit((parts.scheme, parts.netloc, "", parts.query, ""))
        return cls((_resolve(root)[1] + parts.path).rstrip("/") or "/", root)

    @property
    def fs(self) -> Any:
        return _resolve(self.uri)[0]

    @property
    def local(self) -> bool:
        return self.uri is None

    def __str__(self) -> str:
        """The local path, or a URI that `Location.of` takes back (query kept, credentials not)."""
        if self.uri is None:
            return self.path
        query = urlsplit(self.uri, allow_fragments=False).query
        return _public(self.uri) + self.path[len(_resolve(self.uri)[1]):] + (f"?{query}" if query else "")

    # ------------------------------------------------------------------ names (pathlib's spelling)
    def __truediv__(self, name: str) -> Location:
        return Location(os.path.join(self.path, name) if self.local else f"{self.path.rstrip('/')}/{name}", self.uri)

    @property
    def name(self) -> str:
        return os.path.basename(self.path) if self.local else self.path.rstrip("/").rpartition("/")[2]

    @property
    def suffix(self) -> str:
        name = self.name
        dot = name.rfind(".")
        return name[dot:] if 0 < dot < len(name) - 1 else ""

    @property
    def stem(self) -> str:
        return self.name[: len(self.name) - len(self.suffix)]

    def with_name(self, name: str) -> Location:
        if self.local:
            return Location(os.path.join(os.path.dirname(self.path), name))
        head = self.path.rstrip("/").rpartition("/")[0]
        return Location(f"{head}/{name}" if head else name, self.uri)

    def resolve(self) -> Location:
        """Absolute (for workers that do not share this process's directory)."""
        return Location(os.path.abspath(self.path)) if self.local else self

    # ------------------------------------------------------------------ queries and I/O
    def _type(self):
        try:
            return self.fs.get_file_info(self.path).type
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot reach {self}: {exc}") from None

    def exists(self) -> bool:
        from pyarrow import fs as pafs

        return self._type() != pafs.FileType.NotFound

    def is_file(self) -> bool:
        from pyarrow import fs as pafs

        return self._type() == pafs.FileType.File

    def is_dir(self) -> bool:
        from pyarrow import fs as pafs

        return self._type() == pafs.FileType.Directory

    def listdir(self) -> list[str]:
        """Names in this folder ([] when there is none): one LIST request on an object store."""
        from pyarrow import fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        return [i.base_name for i in infos]

    def walk(self) -> list[Location]:
        """Every file below this folder, recursively, hidden names (.x) skipped: listings only."""
        from pyarrow import fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=True, allow_not_found=True))
        start = len(self.path.rstrip("/")) + 1
        return [Location(i.path, self.uri) for i in infos if i.type == pafs.FileType.File
                and not any(part.startswith(".") for part in i.path[start:].split("/"))]

    def glob(self) -> list[Location]:
        """The files whose path matches this one's wildcards (`*`, `[..]`; `*` spans folders too;
        `?` would start a URI's query)."""
        cut = min(i for i in (self.path.find(c) for c in "*?[") if i >= 0)
        root = Location(self.path[:cut].rpartition("/")[0], self.uri)
        return [f for f in root.walk() if fnmatch.fnmatchcase(f.path, self.path)]

    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        try:
            self.fs.create_dir(self.path, recursive=parents)
        except OSError as exc:  # e.g. no such bucket (visionzoo never creates buckets), no permission
            raise UsageError(f"cannot create {self}: {exc}") from None

    def remove_tree(self) -> None:
        self.fs.delete_dir(self.path)

    def open_input(self):
        """A seekable pyarrow input file (what Parquet readers and np.load take)."""
        return self.fs.open_input_file(self.path)

    def read_bytes(self) -> bytes:
        with self.open_input() as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    @contextmanager
    def atomic_output(self) -> Iterator[Any]:
        """An output stream whose file appears whole at this location, or not at all."""
        with atomic_output(self.fs, self.path) as out:
            yield out

    def write_json(self, data: Any) -> Location:
        with self.atomic_output() as out:
            out.write(json.dumps(data, indent=2, default=str).encode())
        return self
