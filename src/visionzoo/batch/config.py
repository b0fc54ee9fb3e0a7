"""What one extraction run is asked to do and what it did, as plain objects."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..data.video import Sampling
from ..errors import UsageError
from ..runtime.quantize import check_precision
from ..store import FORMATS
from ..zoo.spec import DEFAULT_LAYER

ENGINES = ("local", "ray")


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")


DTYPES = ("float32", "float16")


@dataclass
class ExtractConfig:
    """Everything one extraction run needs, passed around as one object."""

    model: str | list[str] | None = None
    layer: str = DEFAULT_LAYER
    pool: str | None = None
    normalize: bool = False
    format: str | None = None          # None: from OUT's suffix (.npy, .pkl), else parquet
    dtype: str = "float32"
    batch_size: int | None = None      # None: 8 per ONNX Runtime pipeline on CPU, else 16
    workers: int | None = None
    backend: str = "auto"
    device: str = "auto"
    threads: int | None = None
    resume: bool = False
    partition_size: int = 1024
    progress: bool = False
    engine: str = "local"              # "ray": the partitions as Ray tasks (batch/ray_engine.py)
    ray_address: str | None = None     # None: $RAY_ADDRESS, else a local Ray started for the run
    num_workers: int | None = None     # Ray tasks at once [default: one per GPU, else per node]
    sampling: Sampling = field(default_factory=Sampling)   # which frames of videos (their keys: PATH#t=SECONDS)
    precision: str = "fp32"            # "int8": the ONNX export quantized (runtime/quantize.py), on the CPU
    calibration: str | None = None     # int8: folder of calibration photos [default: the bundled photos]

    def model_names(self) -> list[str | None]:
        if self.model is None:
            return [None]
        names = self.model.split(",") if isinstance(self.model, str) else [os.fspath(m) for m in self.model]
        names = [n.strip() for n in names if n.strip()]
        if len(set(names)) != len(names):
            raise UsageError("the same model is named twice")
        return names or [None]

    def check(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise UsageError(f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}")
        if self.dtype not in DTYPES:
            raise UsageError(f"unknown dtype {self.dtype!r}; use float32 or float16")
        if (self.batch_size is not None and self.batch_size < 1) or self.partition_size < 1:
            raise UsageError("batch size and partition size must be at least 1")
        check_engine(self.engine)
        check_precision(self.precision)
        self.sampling.check()


@dataclass
class ExtractResult:
    """What a run did: per-model outputs, how many images, which failed and why."""

    outputs: list[str]
    total: int                                     # input files
    count: int                                     # rows in each output
    computed: int                                  # images decoded and embedded by this call
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files under folders without an image extension
    backends: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0
