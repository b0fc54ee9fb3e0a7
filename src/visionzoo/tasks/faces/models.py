"""Where the face models live, and loading each once per process.

dlib's models come from the `face-recognition-models` PyPI package (located without importing
it: its `__init__` needs `pkg_resources`, which new setuptools no longer ship). MediaPipe's
BlazeFace and FaceMesh `.tflite` files and the canonical face-mesh triangles are vendored in
`visionzoo/resources/faces` (Apache-2.0, licence and sources beside them).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...errors import UsageError

DLIB_FILES = {
    "sp5": "shape_predictor_5_face_landmarks.dat",
    "sp68": "shape_predictor_68_face_landmarks.dat",
    "cnn": "mmod_human_face_detector.dat",
    "resnet": "dlib_face_recognition_resnet_model_v1.dat",
}
RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "faces"
TFLITE_FILES = {
    "blazeface": "face_detection_full_range.tflite",
    "blazeface_short": "face_detection_short_range.tflite",
    "facemesh": "face_landmark.tflite",
}
TRIANGLES_FILE = "face_mesh_triangles.txt"


def dlib_model_path(key: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("dlib's face models are missing: pip install face-recognition-models dlib-bin")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / DLIB_FILES[key]
    if not path.is_file():
        raise UsageError(f"dlib model file missing: {path} (reinstall face-recognition-models)")
    return path


def dlib_module():
    try:
        import dlib
    except ImportError:
        raise UsageError("faces need dlib: pip install dlib-bin face-recognition-models") from None
    return dlib


# dlib objects are not documented as thread-safe (the HTTP server may call from several threads).
DLIB_LOCK = threading.Lock()


@lru_cache(maxsize=None)
def shape_predictor(points: int = 5):
    return dlib_module().shape_predictor(str(dlib_model_path(f"sp{points}")))


@lru_cache(maxsize=None)
def face_recognizer():
    return dlib_module().face_recognition_model_v1(str(dlib_model_path("resnet")))


@lru_cache(maxsize=None)
def hog_detector():
    return dlib_module().get_frontal_face_detector()


@lru_cache(maxsize=None)
def cnn_detector():
    return dlib_module().cnn_face_detection_model_v1(str(dlib_model_path("cnn")))


def tflite_path(key: str) -> Path:
    path = RESOURCES / TFLITE_FILES[key]
    if not path.is_file():
        raise UsageError(f"bundled model file missing: {path} (reinstall visionzoo)")
    return path


_DELEGATE_LOCK = threading.Lock()
_delegate_logged = False


@contextlib.contextmanager
def _first_delegate_quiet():
    """LiteRT's C++ code prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to the
    process's stderr once, when the first interpreter allocates its tensors, and no setting turns
    it off: send file descriptor 2 to /dev/null for that one call, so users see only our messages."""
    global _delegate_logged
    with _DELEGATE_LOCK:
        if _delegate_logged:
            yield
            return
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)
            _delegate_logged = True


class TFLiteModel:
    """One LiteRT interpreter with a lock: `model(x) -> [outputs]` for a single (1, H, W, 3) input."""

    def __init__(self, key: str, threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise UsageError("BlazeFace and FaceMesh need LiteRT: pip install ai-edge-litert") from None
        self.interpreter = Interpreter(model_path=str(tflite_path(key)), num_threads=threads)
        with _first_delegate_quiet():
            self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        self.input_index = inp["index"]
        self.input_size = int(inp["shape"][1])
        self.output_indices = [d["index"] for d in self.interpreter.get_output_details()]
        self.lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        with self.lock:
            self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(x, dtype=np.float32))
            self.interpreter.invoke()
            return [self.interpreter.get_tensor(i).copy() for i in self.output_indices]


_PER_THREAD = threading.local()


def tflite_model(key: str) -> TFLiteModel:
    """This thread's interpreter for `key` (one per thread: LiteRT interpreters run one call at a
    time, so pipelines on several cores each get their own; ~20 ms to load, once per thread)."""
    models = _PER_THREAD.__dict__.setdefault("models", {})
    if key not in models:
        models[key] = TFLiteModel(key, threads=1)
    return models[key]


@lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """(852, 3) int vertex indices of MediaPipe's canonical face mesh."""
    return np.loadtxt(RESOURCES / TRIANGLES_FILE, dtype=np.int64, comments="#").reshape(-1, 3)
