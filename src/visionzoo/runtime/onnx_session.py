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
    """`path` as ONNX Runtime's optimizer leaves it, saved beside it the first time, so that a later session
    skips that work: 0.06 s of a detector's session set-up of 0.08-0.12 s. Fully optimized (the layout pass
    for this CPU's vector width too) where the CPU's instruction sets are known (Linux), and then named by
    them, since that graph is only right for such a CPU; elsewhere as the extended optimizer leaves it
    (constants folded, operators fused). Named by the ONNX Runtime version that made it. Where the saved
    graph does not load again (ONNX Runtime writes a Mask R-CNN's mask-pasting Loop with a name assigned
    twice), `path` itself is used, and a marker says so, so the work is not redone."""
    import onnxruntime as ort

    from ..atomic import temporary_name, write_text

    cpu = _cpu_key()
    out = path.with_name(f"{path.stem}.ort-{ort.__version__}{f'-{cpu}' if cpu else ''}.onnx")
    unusable = out.with_suffix(".unusable")
    if out.is_file() or unusable.is_file():
        return out if out.is_file() else path
    opts = ort.SessionOptions()
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if cpu else
                                     ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    opts.log_severity_level = 3   # not its warning that such a graph is for this CPU only: the name says so
    tmp = out.with_name(temporary_name(out.name))
    try:
        opts.optimized_model_filepath = str(tmp)
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        try:
            ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001 - ONNX Runtime's load errors share no base class
            write_text(unusable, "ONNX Runtime's optimized graph of this export does not load: the export is used\n")
            return path
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _cpu_key() -> str | None:
    """The machine and its CPU's instruction sets (Linux: /proc/cpuinfo's flags), hashed; None where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = next(line for line in f if line.startswith(("flags", "Features")))
    except (OSError, StopIteration):
        return None
    return hashlib.sha256(f"{os.uname().machine} {flags.split(':', 1)[-1].split()}".encode()).hexdigest()[:8]


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
