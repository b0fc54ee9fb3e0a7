"""Feature files: Parquet (default), npy (+ paths file) and pkl (the classic {path: vector} dict).

Every format carries a manifest (model, weights hash, preprocessing, layer, pooling, dimension,
counts, failures, package versions), so whoever opens the file later knows what made it.
"""
from .formats import FORMATS, Layout, finalize, layout_for, load_features
from .manifest import read_manifest
from .shards import finished_shards, write_shard

__all__ = [
    "FORMATS", "Layout", "finalize", "finished_shards", "layout_for", "load_features",
    "read_manifest", "write_shard",
]
