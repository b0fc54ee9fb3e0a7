"""Shared fixtures: real photos from scikit-image, the offline lite0 model loaded once per worker."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# Two xdist workers on two cores: one intra-op thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
os.environ.setdefault("VISIONZOO_OFFLINE", "1")  # tests never touch the network
# ONNX exports go to a fresh cache per test worker: a warm user cache must not hide export bugs.
# Removed when the worker exits: a run leaves ~400 MB of exports behind otherwise.
os.environ["VISIONZOO_ONNX_CACHE"] = tempfile.mkdtemp(prefix="vz-onnx-")
atexit.register(shutil.rmtree, os.environ["VISIONZOO_ONNX_CACHE"], ignore_errors=True)

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera")


@pytest.fixture(scope="session")
def lite0():
    """The offline default model (real ImageNet weights), loaded once."""
    import visionzoo

    return visionzoo.load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    """skimage's real photos saved as JPEG files: chelsea (cat), coffee (espresso), ..."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.jpg", quality=92)
    return folder


def save_lfw_folder(root: Path) -> Path:
    """skimage's lfw_subset (100 faces, 100 non-faces, 25x25 gray) as a class-per-folder tree."""
    from skimage import data

    images = data.lfw_subset()
    for cls in ("face", "nonface"):
        (root / cls).mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        cls = "face" if i < 100 else "nonface"
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(root / cls / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def lfw_dir(tmp_path_factory) -> Path:
    return save_lfw_folder(tmp_path_factory.mktemp("lfw"))


@pytest.fixture(scope="session")
def lfw_sample(lfw_dir):
    """`lfw_sample(dest, per_class)`: the first `per_class` faces and non-faces of lfw_dir, copied
    into dest/face and dest/nonface (a small class-per-folder set of real crops)."""
    import shutil

    def make(dest: Path, per_class: int) -> Path:
        for cls in ("face", "nonface"):
            (dest / cls).mkdir(parents=True, exist_ok=True)
            for f in sorted((lfw_dir / cls).glob("*.png"))[:per_class]:
                shutil.copy(f, dest / cls / f.name)
        return dest

    return make


FAST_TIER_LIMIT_S = 20  # docs/development.md: a fast-tier test over this is moved to the slow tier or made faster


def pytest_terminal_summary(terminalreporter):
    """Name every fast-tier test whose call took longer than the tier allows (reported, never failed:
    no test asserts on wall-clock time)."""
    over = sorted(((r.duration, r.nodeid) for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])
                   if r.when == "call" and r.duration > FAST_TIER_LIMIT_S and "slow" not in r.keywords), reverse=True)
    if over:
        terminalreporter.section(f"fast-tier tests over {FAST_TIER_LIMIT_S} s: mark them slow or make them faster")
        for seconds, nodeid in over:
            terminalreporter.write_line(f"{seconds:7.1f}s {nodeid}")
