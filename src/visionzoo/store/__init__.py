"""Feature files: Parquet (default), npy (+ paths file) and pkl (the classic {path: vector} dict).

Every format carries a manifest (model, weights hash, preprocessing, layer, pooling, dimension,
counts, failures, package versions), so whoever opens the file later knows what made it.
Files live on a local path or behind any URI pyarrow's filesystems open (s3://, gs://, hdfs://).
"""
from .formats import FORMATS, Layout, finalize, layout_for, load_features, write_features
from .location import Location, is_uri
from .manifest import read_manifest
from .shards import finished_shards, write_shard

__all__ = [
    "FORMATS", "Layout", "Location", "finalize", "finished_shards", "is_uri", "layout_for", "load_features",
    "read_manifest", "write_features", "write_shard",
]
