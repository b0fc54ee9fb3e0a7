"""Malformed requests for `visionzoo serve`: each must get a 4xx (tests/test_serve.py, benchmarks/serve_bench.py).

`malformed_request(i, rng, jpeg, max_upload_bytes)` returns keyword arguments for
`httpx.Client.request` (method, url, files / data / content / headers), cycling through kinds:
random bytes, truncated and corrupted JPEGs, decompression bombs as PNG and GIF, empty files,
extreme aspect ratios, wrong field names and values, broken multipart, bodies over the limit.
"""
from __future__ import annotations

import io
import struct
import zlib
from typing import Any, Callable

import numpy as np
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int, height: int, real_zeros: int = 10) -> bytes:
    """A PNG claiming width x height pixels; `real_zeros` bytes of zeros really compressed inside (a zip bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * real_zeros, 9)) + _png_chunk(b"IEND", b""))


def bomb_gif(width: int, height: int) -> bytes:
    """A GIF whose logical screen and frame claim width x height pixels."""
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00\x3b")


def _upload(data: bytes, name: str = "photo.jpg", field: str = "file", **form: Any) -> dict[str, Any]:
    return {"method": "POST", "url": "/v1/classify", "files": {field: (name, data, "image/jpeg")},
            "data": {k: str(v) for k, v in form.items()}}


def _kinds(rng: np.random.Generator, jpeg: bytes, limit: int) -> list[Callable[[], dict[str, Any]]]:
    def jpeg_magic_then_garbage() -> bytes:
        return b"\xff\xd8\xff\xe0" + rng.integers(0, 256, int(rng.integers(10, 5000)), dtype=np.uint8).tobytes()

    def wide_png() -> bytes:
        buf = io.BytesIO()
        Image.new("L", (int(rng.integers(60_000, 65_000)), 1)).save(buf, "PNG")
        return buf.getvalue()

    boundary = "vzfuzz"
    return [
        lambda: _upload(rng.integers(0, 256, int(rng.integers(1, 20_000)), dtype=np.uint8).tobytes()),
        lambda: _upload(jpeg[: int(rng.integers(1, len(jpeg) // 2))]),                     # truncated JPEG
        lambda: _upload(jpeg_magic_then_garbage()),                                           # a JPEG's magic, then garbage
        lambda: _upload(bomb_png(int(rng.integers(20_000, 60_000)), int(rng.integers(20_000, 60_000)),
                                 real_zeros=2_000_000), "bomb.png"),                           # zip bomb as PNG
        lambda: _upload(bomb_gif(65_535, 65_535), "bomb.gif"),
        lambda: _upload(b"", "empty.jpg"),
        lambda: _upload(wide_png(), "wide.png"),                                               # resized, it would not fit
        lambda: _upload(b"%PDF-1.4\n" + rng.integers(0, 256, 500, dtype=np.uint8).tobytes(), "doc.pdf"),
        lambda: _upload(jpeg, field="image"),                                                  # wrong field name
        lambda: _upload(jpeg, k="many"),                                                       # wrong field value
        lambda: _upload(jpeg, k=-3),
        lambda: {"method": "POST", "url": "/v1/classify", "json": {"file": "cat.jpg"}},        # not multipart
        lambda: {"method": "POST", "url": "/v1/classify",                                      # broken multipart
                 "content": f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n".encode()
                 + rng.integers(0, 256, 300, dtype=np.uint8).tobytes(),
                 "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}},
        lambda: {"method": "POST", "url": "/v1/classify", "files": [("file", (f"r{j}.jpg", rng.bytes(64), "image/jpeg"))
                                                                     for j in range(int(rng.integers(2, 5)))]},
        lambda: _upload(rng.bytes(limit + 1024), "huge.jpg"),                                  # body over the limit
        lambda: {"method": "POST", "url": "/v1/segment", "files": {"file": ("x.jpg", rng.bytes(100), "image/jpeg")}}
        if rng.random() < 0.5 else {"method": "GET", "url": "/v1/classify"},                   # unknown task / method
    ]


def malformed_request(i: int, rng: np.random.Generator, jpeg: bytes, max_upload_bytes: int) -> dict[str, Any]:
    """The i-th malformed request (kinds in turn, contents random)."""
    kinds = _kinds(rng, jpeg, max_upload_bytes)
    return kinds[i % len(kinds)]()
