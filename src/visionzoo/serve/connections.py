"""Connections that cannot starve the server: read deadlines, a header size limit and a cap per client,
in the HTTP protocol itself.

uvicorn keeps a connection that never finishes its request header open forever, and counts it
against `limit_concurrency`, so a few hundred half-open sockets answer every later request with 503
(slowloris); httptools (its parser when installed) reads a header of any size. This protocol is
uvicorn's own (httptools when installed, else h11) plus four rules:

- a request's header must arrive within `header_timeout_s` (of the connection, or of the previous
  response), its body within `body_timeout_s` after the header; else the connection is closed
  (408 when part of a request came);
- a header of more than `max_header_bytes` is answered 431 and the connection closed (h11 stops at
  the same size with a 400);
- at most `per_client` connections per client address and `total` in all: a new one past either
  closes the oldest connection of that client (or of all) that is waiting for a request, so idle or
  slow sockets make room for a client with a request; when none is idle the new one gets 503.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:  # uvicorn's faster parser, what it picks itself when installed
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as FastestProtocol
except ImportError:  # pragma: no cover - httptools not installed
    FastestProtocol = H11Protocol

SWEEP_S = 0.25
_TOO_BIG = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_BUSY_BODY = b'{"error": "too many connections (from this client, or in all); retry in a moment"}'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
         b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


@dataclass
class ConnectionLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 120.0
    per_client: int = 32
    total: int = 256
    max_header_bytes: int = 64 * 1024


class Registry:
    """The open connections in arrival order, with what each is doing; a sweep closes the late ones."""

    def __init__(self, limits: ConnectionLimits):
        self.limits = limits
        self.open: OrderedDict[Any, None] = OrderedDict()
        self.closed_late = 0          # connections closed by a read deadline
        self.evicted = 0              # idle connections closed to make room
        self.refused = 0              # new connections refused (503): every one busy
        self._sweeping: asyncio.TimerHandle | None = None

    def admit(self, conn: "Guarded") -> bool:
        """Register `conn`, making room if its client or the server is at the cap; False: refuse it."""
        host = conn.client[0] if conn.client else None
        mine = [c for c in self.open if (c.client[0] if c.client else None) == host]
        for crowd, cap in ((mine, self.limits.per_client), (list(self.open), self.limits.total)):
            if len(crowd) >= cap:
                idle = next((c for c in crowd if c.phase == "head"), None)
                if idle is None:
                    self.refused += 1
                    return False
                self.evicted += 1
                idle.close()
        self.open[conn] = None
        if self._sweeping is None:
            self._sweeping = conn.loop.call_later(SWEEP_S, self._sweep, conn.loop)
        return True

    def remove(self, conn: "Guarded") -> None:
        self.open.pop(conn, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        for conn in list(self.open):
            limit = {"head": self.limits.header_timeout_s, "body": self.limits.body_timeout_s}.get(conn.phase)
            if limit is not None and now - conn.since > limit:
                self.closed_late += 1
                conn.close(_TIMEOUT if conn.partial or conn.phase == "body" else b"")
        self._sweeping = loop.call_later(SWEEP_S, self._sweep, loop) if self.open else None


class Guarded:
    """Mixed into uvicorn's protocol class: each connection knows its phase, "head" (waiting for a
    request header), "body" (reading a request body) or "busy" (the app answering), and `since`:
    when that phase began; the registry enforces the deadlines and caps on it."""

    registry: Registry      # set on the class `guarded_protocol` makes (one per server)

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.phase, self.since, self.partial, self.head_bytes = "head", time.monotonic(), False, 0
        if not self.registry.admit(self):
            transport.write(_BUSY)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.remove(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.phase == "head":
            self.head_bytes += len(data)
        super().data_received(data)
        if self._track() == "head":
            self.partial = True        # part of the next request header
            if self.head_bytes > self.registry.limits.max_header_bytes:
                self.close(_TOO_BIG)

    def on_response_complete(self) -> None:
        self.partial, self.head_bytes = False, 0
        super().on_response_complete()    # may start a pipelined request
        self._track()

    def _track(self) -> str:
        """The phase from the request cycle: its body still coming (even after an early answer, a 413):
        body; none, or answered: head; else busy."""
        cycle = self.cycle
        phase = ("body" if cycle is not None and cycle.more_body else
                 "head" if cycle is None or cycle.response_complete else "busy")
        if phase != self.phase:
            self.phase, self.since = phase, time.monotonic()
        return phase

    def close(self, last_words: bytes = b"") -> None:
        if not self.transport.is_closing():
            if last_words:
                self.transport.write(last_words)
            self.transport.close()


def guarded_protocol(limits: ConnectionLimits, base: type = FastestProtocol) -> type:
    """A protocol class for `uvicorn.Config(http=...)` with its own registry (one per server)."""
    return type(f"Guarded{base.__name__}", (Guarded, base), {"registry": Registry(limits)})
