"""Which device a request means, decided without importing torch (a cached ONNX export then starts in a
blink)."""
from __future__ import annotations

import os
import sys


def cpu_only(device: str) -> bool:
    """Whether `device` means the CPU: "auto" picks a GPU when one is visible (an NVIDIA or AMD device
    node, an Apple-silicon Mac)."""
    if device == "cpu":
        return True
    if device != "auto":
        return False
    gpu = any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/kfd"))
    return not gpu and not (sys.platform == "darwin" and os.uname().machine == "arm64")
