"""What one server runs with, as one object; where its key comes from; which Host names it answers to."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
KEY_ENV = "VISIONZOO_API_KEY"


@dataclass
class ServeConfig:
    """Options of `visionzoo serve` (and of `create_app` / `run` in Python).

    `models` holds names, run folders (any task: the folder's config.json "task" decides),
    `TASK:NAME` for task models by name (e.g. `faces`, `faces:dlib`, `detect:fasterrcnn_resnet50_fpn_v2`),
    optionally followed by `,key=value` options for the task's `load_predictor`; an already loaded
    classification `nn.Module` or task Predictor (an object with `task` and `__call__`) works too. Empty: the offline default classifier.
    """

    models: list[Any] = field(default_factory=list)
    index: str | os.PathLike | None = None       # a `visionzoo index` folder (or a feature file)
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    insecure_no_key: bool = False                # bind a non-loopback address without a key anyway
    allow_hosts: list[str] = field(default_factory=list)   # Host / Origin names beyond loopback ("*": any)
    max_upload_mb: float = 25.0                  # whole request body; larger -> 413
    max_pixels: int = 50_000_000                 # per image or video frame (decompression bombs); larger -> 413
    max_frames: int = 200_000                    # frames a video's header may declare; more -> 413
    max_files: int = 32                          # images per request
    max_batch: int = 32                          # images per forward pass across requests
    batch_window_ms: float = 5.0                 # how long the first image of a batch waits for others
    max_queue: int = 512                         # images waiting per model before 503
    timeout_s: float = 30.0                      # per request, videos too; past it -> 504 and the work stops
    video_jobs: int | None = None                # videos decoded at once (others queue) [default: cores / 2]
    max_connections: int = 256                   # open connections; past it the oldest idle one is closed
    max_connections_per_client: int = 32        # the same for each client address
    header_timeout_s: float = 10.0               # a request's header must arrive within this
    body_timeout_s: float = 120.0                # and its body within this after the header
    max_header_kb: int = 64                      # header size limit (400 beyond)
    backend: str = "auto"                        # auto (ONNX Runtime on CPU), torch, onnx
    device: str = "auto"
    threads: int | None = None                   # inference threads [default: all cores]
    precision: str = "fp32"                      # int8: classifiers run their quantized ONNX export (CPU)
    calibration: str | os.PathLike | None = None  # int8: calibration photos [default: the bundled ones]
    log_level: str = "info"

    def check(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port {self.port} is not between 0 and 65535")
        for name in ("max_upload_mb", "max_pixels", "max_frames", "max_files", "max_batch", "max_queue", "timeout_s",
                     "max_connections", "max_connections_per_client", "header_timeout_s", "body_timeout_s",
                     "max_header_kb"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name.replace('_', '-')} must be positive")
        if self.video_jobs is not None and self.video_jobs < 1:
            raise UsageError("video-jobs must be at least 1")
        if self.batch_window_ms < 0:
            raise UsageError("batch-window-ms must be >= 0")
        if self.api_key is not None and len(self.api_key) < 8:
            raise UsageError("the API key is too short to protect anything (use at least 8 characters)")
        if not is_loopback(self.host) and not self.api_key and not self.insecure_no_key:
            raise UsageError(f"--host {self.host} is reachable from other machines and no API key is set: set "
                             f"{KEY_ENV} or pass --key-file FILE (or --insecure-no-key to serve without one)")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """The loud warning for a server reachable from other machines with no key (--insecure-no-key), else None."""
    if is_loopback(host) or api_key:
        return None
    bar = "!" * 78
    return (f"{bar}\n!! WARNING: serving on {host}, reachable from other machines, WITHOUT an API key.\n"
            f"!! Anyone who can reach this port can run the models and see the indexed images.\n"
            f"!! Set {KEY_ENV} or pass --key-file FILE, or bind to 127.0.0.1.\n{bar}")


def resolve_key(api_key: str | None = None, key_file: str | os.PathLike | None = None,
                env: dict[str, str] | None = None) -> tuple[str | None, str | None]:
    """(the key, a warning or None) from --key-file, else $VISIONZOO_API_KEY, else --api-key (which `ps` shows
    to every local user, hence the warning). Two sources at once is a usage error: which one holds is unclear."""
    env = os.environ if env is None else env
    from_env = env.get(KEY_ENV) or None
    given = [name for name, v in (("--key-file", key_file), ("--api-key", api_key)) if v]
    if len(given) > 1:
        raise UsageError("pass the key one way: --key-file FILE or $VISIONZOO_API_KEY (not --api-key as well)")
    if key_file:
        try:
            key = open(key_file, encoding="utf-8").read().strip()
        except OSError as exc:
            raise UsageError(f"cannot read the key file {key_file}: {exc.strerror or exc}") from None
        if not key:
            raise UsageError(f"the key file {key_file} is empty")
        return key, None
    if api_key:
        return api_key, ("warning: --api-key puts the key on the command line, where `ps` shows it to every user "
                         f"of this machine; set {KEY_ENV} or use --key-file FILE instead")
    return from_env, None


def host_name(value: str) -> str:
    """The name part of a Host header or an Origin's netloc: no port, no brackets, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        value = value.rsplit(":", 1)[0]
    return value.rstrip(".")


def host_allowed(name: str, allow: list[str]) -> bool:
    """A Host name this server answers to: loopback names, IP literals (a DNS-rebinding page can only
    reach a server through a name it controls, never through an address), and `allow` ("*": any)."""
    if not name:
        return False
    if "*" in allow or name in LOOPBACK_NAMES or name in (a.lower() for a in allow):
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def origin_allowed(origin: str, host_header: str, allow: list[str]) -> bool:
    """A browser's Origin may call the API: the page's own origin (same host and port as the request's
    Host), or a name in `allow`. "null" (sandboxed frames, file://) and any other site are refused."""
    if "*" in allow:
        return True
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    if parts.netloc.lower() == host_header.strip().lower():
        return True
    return host_name(parts.netloc) in (a.lower() for a in allow)
