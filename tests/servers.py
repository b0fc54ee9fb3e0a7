"""Loopback servers for the tests that talk HTTP to `visionzoo serve`: in a thread (`serving`), or the
real command in a subprocess whose memory and CPU can be measured (`serve_process`)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app, start_timeout: float = 600.0) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 until the block ends; yields its base URL. A visionzoo app runs with
    the settings `visionzoo serve` uses (its connection guard included)."""
    import uvicorn

    port = free_port()
    if hasattr(app.state, "config"):
        from visionzoo.serve.app import server_config

        config = server_config(app, app.state.config, host="127.0.0.1", port=port, log_level="warning")
    else:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


class ServerProcess:
    """`visionzoo serve` in a subprocess: its URL, and its memory and CPU from /proc."""

    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc, self.url, self.log = proc, url, log

    def _status(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def rss(self) -> int:
        """Resident memory now, bytes."""
        return self._status("VmRSS")

    def peak_rss(self) -> int:
        """Peak resident memory since the last `reset_peak` (or the start), bytes."""
        return self._status("VmHWM")

    def reset_peak(self) -> None:
        """Start a new peak: Linux's clear_refs 5 resets VmHWM to the current RSS."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server used so far (all threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve_process(args: Sequence[str], log: Path, env: dict[str, str] | None = None,
                  start_timeout: float = 600.0) -> Iterator[ServerProcess]:
    """`python -m visionzoo serve --port FREE ARGS` until the block ends, once /health answers."""
    import httpx

    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "visionzoo", "serve", "--port", str(port), *map(str, args)],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield ServerProcess(proc, url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
