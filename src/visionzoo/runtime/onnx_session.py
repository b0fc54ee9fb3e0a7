"""Running an ONNX export with ONNX Runtime: no torch needed, so a cached export starts in a blink.

onnxruntime is imported only here, when this backend is chosen.
"""
from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import UsageError

INPUT, OUTPUT = "images", "features"


def onnx_cache_dir() -> Path:
    """$VISIONZOO_ONNX_CACHE, else $XDG_CACHE_HOME/visionzoo/onnx, else ~/.cache/visionzoo/onnx."""
    if os.environ.get("VISIONZOO_ONNX_CACHE"):
        return Path(os.environ["VISIONZOO_ONNX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "visionzoo" / "onnx"


def run_identity(source: str | os.PathLike, config: dict[str, Any]) -> dict[str, Any]:
    """What decides a task network's exported graph: its weights file (a run folder's model.safetensors)
    as found on disk, the network's config and the libraries that build and export it."""
    source = os.fspath(source)
    weights = Path(source) / "model.safetensors" if Path(source).is_dir() else Path(source)
    stat = weights.stat() if weights.is_file() else None
    versions = {}
    for package in ("visionzoo", "torch", "torchvision", "timm", "segmentation_models_pytorch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = ""
    return {"source": os.path.realpath(source) if stat else source, "size": stat.st_size if stat else None,
            "mtime": stat.st_mtime_ns if stat else None, "config": config, "versions": versions}


def cached_export(kind: str, identity: dict[str, Any], export: Callable[[Path], Any]) -> Path:
    """The ONNX file of a network known by `identity`, made by `export(path)` the first time only."""
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = onnx_cache_dir() / kind / f"{key}.onnx"
    if not path.is_file():
        export(path)
    return path


def presolved(path: Path) -> Path:
    """`path` as ONNX Runtime's extended optimizer leaves it (constants folded, operators fused), saved
    beside it the first time, so that a later session skips that work: half a detector's session set-up.
    The CPU-specific layout pass still runs at each start; named by the ONNX Runtime version that made it."""
    import onnxruntime as ort

    from ..atomic import atomic_path

    out = path.with_name(f"{path.stem}.ort-{ort.__version__}.onnx")
    if not out.is_file():
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        with atomic_path(out) as tmp:
            opts.optimized_model_filepath = str(tmp)
            ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return out


def session(path: str | os.PathLike, threads: int | None = None, device: str = "cpu"):
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise UsageError("the onnx backend needs onnxruntime (pip install onnxruntime)") from exc
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning, leaving the cores to the decoding threads.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), opts, providers=providers)


class OnnxRunner:
    """`runner(batch) -> float32 (N, D) array` on an ONNX Runtime session; the batch may be a
    NumPy array or a CPU tensor."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None, device: str = "cpu"):
        self.path = Path(path)
        self.session = session(self.path, threads, device)

    def __call__(self, x) -> np.ndarray:
        return self.session.run(None, {INPUT: np.ascontiguousarray(x, dtype=np.float32)})[0]
