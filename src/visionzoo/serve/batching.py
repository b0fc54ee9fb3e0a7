"""Server-side micro-batching: concurrent requests share one forward pass.

A request puts its images on a queue and awaits futures; one worker thread per model takes the
first waiting image, waits a few milliseconds for more (or until the batch is full), runs the
model once on all of them and hands each request its row. Under load the batches fill up, so
throughput approaches the model's batched rate, and the event loop never runs the model.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Sequence

log = logging.getLogger("visionzoo.serve")


class Overloaded(Exception):
    """More images are waiting than the queue admits: the client should retry later (503)."""


class MicroBatcher:
    """`submit(item) -> Future`; `fn(items) -> outputs` (one per item) runs in a worker thread."""

    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], *, max_batch: int = 32, window_s: float = 0.005,
                 max_queue: int = 512, name: str = "model", workers: int = 1):
        """`workers` threads each take the next batch: with a model that runs one call per core at once
        (ONNX Runtime on one thread per call), every core computes while requests keep arriving."""
        self.fn = fn
        self.max_batch = max(1, max_batch)
        self.window_s = window_s
        self.max_queue = max_queue
        self.batches = 0          # forward passes run (for /v1/models and the benchmark)
        self.items = 0            # images they held
        self._queue: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._loop, name=f"batcher-{name}-{i}", daemon=True)
                         for i in range(max(1, workers))]
        self._lock = threading.Lock()
        for t in self._threads:
            t.start()

    @property
    def waiting(self) -> int:
        """Images queued for a forward pass that has not started yet."""
        return self._queue.qsize()

    def submit(self, item: Any) -> Future:
        if self._queue.qsize() >= self.max_queue:
            raise Overloaded(f"{self.max_queue} images are already waiting; retry in a moment")
        fut: Future = Future()
        self._queue.put((item, fut))
        return fut

    def close(self, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout)

    def _collect(self, first) -> list:
        batch = [first]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            try:  # what is already queued joins at once; then wait out the window for more
                entry = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if entry is None:
                self._queue.put(None)  # close() after this batch
                break
            batch.append(entry)
        return batch

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            # A request that timed out cancelled its futures: its images are skipped, not computed.
            live = [(item, fut) for item, fut in self._collect(first) if fut.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                outputs = list(self.fn([item for item, _ in live]))
                if len(outputs) != len(live):
                    raise RuntimeError(f"the model returned {len(outputs)} results for {len(live)} images")
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting request, never lost
                log.exception("batch of %d failed", len(live))
                for _, fut in live:
                    fut.set_exception(exc)
                continue
            with self._lock:
                self.batches += 1
                self.items += len(live)
            for (_, fut), out in zip(live, outputs):
                fut.set_result(out)
