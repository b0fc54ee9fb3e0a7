"""The reader: decode each image once, in background threads, for every model of the run.

Batches never straddle partitions, so the runner can write a partition's shard as soon as its
last batch is back. Models that share preprocessing share the decoded image too.

Threads, not processes: PIL's JPEG decoding and resizing release the GIL, so a thread decodes
beside ONNX Runtime's inference threads with no second Python (no forked torch, no copies
between processes: peak memory stays one process). Batches are NumPy arrays made by
`eval_array_transform`, equal to the transform classify and embed use, so extract's features
equal theirs, and reading needs no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from ..data.decode import ImageDecodeError, load_rgb
from ..data.transforms import eval_array_transform
from ..data.video import Sampling
from ..errors import UsageError
from ..ordered import ordered_map
from ..zoo.spec import Preprocessing


def frame_items(files: Sequence[str], sampling: Sampling) -> list[str]:
    """The items to read: images as they are, each video file as its sampled frames' keys, read in
    time order by one shared decoder per video (data/video_cursor.py). Live streams have no end to
    plan partitions over, so they are refused."""
    from ..data.video import is_stream
    from ..data.video_cursor import expand_frames

    streams = [f for f in files if is_stream(f)]
    if streams:
        raise UsageError(f"{streams[0]} is a live stream: this command plans resumable partitions over files; "
                         f"give it video files (the task commands, e.g. `visionzoo detect predict`, take streams)")
    return expand_frames(files, sampling)


@dataclass
class MultiBatch:
    indices: list[int]                        # positions in the input list of the decoded images
    tensors: list[np.ndarray] | None          # one float32 (len(indices), C, H, W) per preprocessing
    failures: list[tuple[int, str]] = field(default_factory=list)
    outputs: list | None = None               # infer(tensors), when the reader was given `infer`


def _read_batch(paths: Sequence[str], preps: list[Callable], target: int, positions: list[int],
                infer: Callable[[list[np.ndarray]], list] | None = None) -> MultiBatch:
    good, failures = [], []
    for i in positions:
        try:
            img = load_rgb(paths[i], target)
            good.append((i, [p(img) for p in preps]))
        except ImageDecodeError as exc:
            failures.append((i, exc.reason))
        except Exception as exc:  # noqa: BLE001 - a transform choking on a pathological image
            failures.append((i, f"preprocessing failed ({type(exc).__name__}: {exc})"))
    tensors = [np.stack([ims[k] for _, ims in good]) for k in range(len(preps))] if good else None
    outputs = infer(tensors) if infer is not None and tensors is not None else None
    return MultiBatch([i for i, _ in good], tensors, failures, outputs)


def iter_multi_batches(
    paths: Sequence[str],
    preprocessings: Sequence[Preprocessing],
    batches: Sequence[list[int]],
    workers: int,
    infer: Callable[[list[np.ndarray]], list] | None = None,
) -> Iterator[MultiBatch]:
    """Yield one MultiBatch per entry of `batches` (lists of positions), in that order.

    `workers` threads decode up to `workers + 1` batches ahead of the consumer; 0 decodes inline.
    With `infer`, each thread also runs the model(s) on the batch it decoded (`batch.outputs`):
    a whole pipeline per core, for backends that take calls from several threads at once.
    """
    target = max(p.resize_size for p in preprocessings)
    preps = [eval_array_transform(p) for p in preprocessings]
    yield from ordered_map(lambda positions: _read_batch(paths, preps, target, positions, infer), batches, workers)
