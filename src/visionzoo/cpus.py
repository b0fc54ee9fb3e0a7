"""How many cores this process may use, and how many of them decode images by default."""
from __future__ import annotations

import os


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask where the OS has one, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(n_images: int, batch_size: int) -> int:
    """Decoding workers beside the model: none for a single batch (nothing to overlap with), else
    half the cores, between 1 and 4. Decoding a ~500 px JPEG costs ~5 ms of a core and a light
    CNN's forward ~17 ms, so one decoder keeps two or more cores of inference fed."""
    if n_images <= batch_size:
        return 0
    return max(1, min(4, usable_cpus() // 2))
