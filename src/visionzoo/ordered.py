"""`ordered_map`: fn over items in threads, results in input order, a bounded number ahead.

PIL decoding and ONNX Runtime / PyTorch kernels release the GIL, so threads overlap the parts
that matter with no second process; the bound keeps memory flat over any number of items.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """Yield fn(item) for each item in order; `workers` threads keep up to `workers + 1` results
    ahead of the consumer. `workers <= 0` runs inline."""
    if workers <= 0:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="vz-worker") as pool:
        ahead: deque = deque()
        todo = iter(items)
        for item in todo:
            ahead.append(pool.submit(fn, item))
            if len(ahead) > workers:
                break
        while ahead:
            result = ahead.popleft().result()
            for item in todo:  # at most one more, to stay `workers + 1` ahead
                ahead.append(pool.submit(fn, item))
                break
            yield result
