"""Videos, streams and webcams for every task: frames in, per-frame results out, tracking,
annotated videos, timelines of faces and captions at scene changes."""
from ..lazy import lazy_exports

_EXPORTS = {"VideoOptions": "runner", "predict_videos": "runner", "run_sources": "runner", "Tracker": "tracking",
            "write_srt": "captions"}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
