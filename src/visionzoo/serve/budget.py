"""What one request may cost, enforced: a deadline that also stops the work, a stop on client
disconnect, and a server-wide budget of decoded pixels so uploads within every limit still cannot
pile up decoded images past a bound.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Any, Awaitable, Callable

from .uploads import UploadError

log = logging.getLogger("visionzoo.serve")


class PixelBudget:
    """Decoded pixels in memory at once, across all requests: an image waits (within its request's
    deadline) until the images before it are answered. One image larger than the budget runs alone."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0
        self._waiting: deque[asyncio.Future] = deque()

    async def acquire(self, pixels: int) -> int:
        pixels = min(pixels, self.total)
        while self.used + pixels > self.total:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
        self.used += pixels
        return pixels

    def release(self, pixels: int) -> None:
        self.used -= pixels
        while self._waiting:   # each wakes and re-checks; the ones that do not fit wait again
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)


class ClientGone(Exception):
    """The client closed the connection before its answer: the work was stopped."""


async def _disconnected(receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    """Returns when the client disconnects (the request body is read by then, so `receive` only waits)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        await asyncio.sleep(0.05)


async def bounded(work: Awaitable[Any], *, timeout_s: float, receive: Callable | None = None,
                  stop: threading.Event | None = None, what: str = "the request") -> Any:
    """`work`'s result within `timeout_s`; past it (504) or once the client is gone (ClientGone) the work
    is cancelled and `stop` is set, which the threads doing it check per frame or batch."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(receive)) if receive is not None else None
    try:
        done, _ = await asyncio.wait({task, watch} - {None}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:   # this request itself was cancelled (server shutdown): so is its work
        task.cancel()
        if stop is not None:
            stop.set()
        raise
    finally:
        if watch is not None:
            watch.cancel()
    if task in done:
        return task.result()
    task.cancel()
    if stop is not None:
        stop.set()
    if watch is not None and watch in done:
        log.warning("client disconnected: %s was stopped", what)
        raise ClientGone()
    log.warning("timed out after %g s: %s was stopped", timeout_s, what)
    raise UploadError(504, f"timed out after {timeout_s:g} s: {what} was stopped (the server is busy, or the "
                           f"upload is very large or long; the command line has no deadline)")
