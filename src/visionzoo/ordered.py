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


def ahead(items: Iterable[T], depth: int) -> Iterator[T]:
    """Yield `items` in order while one background thread produces up to `depth` of them ahead
    (a video's frames decoding while the model runs). The producer's exception is raised here,
    after the items before it; closing the generator stops the producer."""
    import queue
    import threading
    import time

    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, done))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put((False, exc))

    thread = threading.Thread(target=produce, name="vz-ahead", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        deadline = time.monotonic() + 30   # a producer stuck in a read (a stalled stream) is left behind
        while thread.is_alive() and time.monotonic() < deadline:
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)
        close = getattr(items, "close", None)
        if close is not None and not thread.is_alive():
            close()
