"""How many cores this process may use, how many of them decode images, and how many threads
PyTorch's kernels get by default."""
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


def default_threads(cores: int | None = None) -> int:
    """PyTorch intra-op threads for training and its evaluation: half the cores (at least one), the
    other half left to the decoding workers. Not all of them: OpenMP threads meet at a barrier after
    every kernel, so when other processes share the cores one descheduled thread stalls the rest.
    Measured on a 2-core machine shared with other jobs (benchmarks/threads_bench.py), one
    EfficientNet-Lite0 training step (16 images, 224 px): 4.7 s with 1 thread vs 15.2 s with 2
    (load 1.3-2.9), and with two busy processes beside it 19.3 s vs 78.4 s (load 7-11)."""
    return max(1, (cores or usable_cpus()) // 2)
