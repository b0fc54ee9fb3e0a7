"""Batch jobs over many images: extract (reader -> model(s) -> shard writer, per partition),
classify and the face index (faces_index), on this machine or as Ray tasks on a cluster."""
from ..lazy import lazy_exports

_EXPORTS = {"ExtractConfig": "config", "ExtractResult": "config", "extract": "runner", "classify": "classification",
            "index_faces": "faces_index", "FaceIndexResult": "faces_index"}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
