"""The manifest: a JSON dict that says what made a feature file; where it lives per format."""
from __future__ import annotations

import json
import os
from typing import Any

from ..errors import UsageError
from .location import Location
from .shards import FAILURES_KEY, META_KEY, shard_summary

MANIFEST_FILE = "_manifest.json"     # inside a Parquet dataset folder and a run's shard folder


def read_json(path: str | os.PathLike | Location) -> dict[str, Any]:
    try:
        return json.loads(Location.of(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read manifest {path}: {exc}") from None


def sidecar(path: Location) -> Location:
    """feats.npy -> feats.npy.manifest.json (feats.pkl beside it gets its own)"""
    return path.with_name(path.name + ".manifest.json")


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of any feature file: a Parquet folder or file, a .npy or .pkl, or the JSON itself
    (a local path or a URI such as s3://bucket/feats.parquet)."""
    p = Location.of(path)
    if p.is_dir():
        if not (p / MANIFEST_FILE).is_file():
            raise UsageError(f"{p} is not a visionzoo feature folder (no {MANIFEST_FILE})")
        manifest = read_json(p / MANIFEST_FILE)
        if manifest.get("status") != "complete":  # a run in progress or interrupted: what is stored so far
            manifest["count"], manifest["failures"] = shard_summary(p)
        return manifest
    if not p.exists():
        raise UsageError(f"no such feature file: {p}")
    if p.suffix == ".json":
        return read_json(p)
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        with p.open_input() as f:
            footer = pq.read_metadata(f)
        meta = footer.schema.to_arrow_schema().metadata or {}
        if META_KEY not in meta:
            raise UsageError(f"{p} carries no visionzoo manifest")
        manifest = json.loads(meta[META_KEY])
        manifest["failures"] = json.loads(meta.get(FAILURES_KEY, b"[]"))
        manifest["count"] = footer.num_rows
        return manifest
    if sidecar(p).is_file():
        return read_json(sidecar(p))
    raise UsageError(f"no manifest for {p} (expected {sidecar(p)})")
