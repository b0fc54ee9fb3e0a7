"""Hostile clients for `visionzoo serve` (tests/test_serve_hostile.py, benchmarks/serve_hostile_bench.py):
the uploads and connections of issue 36's probes, each built small and deterministic.

Files: a 16-bit PNG claiming width x height (zeros, compressed: a few hundred KB to 2 MB), a zip,
an H.264 video of a large frame size, and a video of very many tiny frames. Connections: sockets
that send half a request header and stop, a body sent one byte at a time, an endless header.
"""
from __future__ import annotations

import io
import socket
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png16(width: int, height: int) -> bytes:
    """A valid 16-bit grayscale PNG of width x height (a smooth ramp down the rows, so it is not all zeros)."""
    packer = zlib.compressobj(9)
    parts = []
    for y in range(height):
        value = (y * 65535 // max(1, height - 1)).to_bytes(2, "big")
        parts.append(packer.compress(b"\0" + value * width))
    parts.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def zip_with_jpeg() -> bytes:
    """A zip archive holding a small JPEG (FFmpeg, left to guess, decodes such a file as an image)."""
    from PIL import Image

    jpeg = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(jpeg, "JPEG")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("a.jpg", jpeg.getvalue())
    return out.getvalue()


def video(path: Path, frames: int, size: tuple[int, int], rate: float) -> Path:
    """An H.264 mp4 of `frames` flat grey frames of `size` (width, height) at `rate` frames per second."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=int(rate) if float(rate).is_integer() else rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        grey = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 120, np.uint8), format="rgb24")
        for k in range(frames):
            grey.pts = k
            for packet in stream.encode(grey):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def multipart(name: str, data: bytes, field: str = "file") -> tuple[bytes, str]:
    """(body, content type) of a multipart upload of one file."""
    boundary = "vzhostile0123456789"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def half_headers(url: str, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    """`count` connections that each send half a request header and stop (slowloris)."""
    host, port = url.rsplit("//", 1)[1].split(":")
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind((source, 0))
        s.connect((host, int(port)))
        s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        socks.append(s)
    return socks


def closed_by_server(s: socket.socket, wait_s: float) -> tuple[bool, bytes]:
    """(whether the server closed `s` within wait_s, what it sent before)."""
    s.settimeout(wait_s)
    got = b""
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True, got
            got += data
    except (socket.timeout, TimeoutError):
        return False, got
    except OSError:         # reset by the server
        return True, got


def slow_body(url: str, key: str, total: int = 1000, every_s: float = 1.0,
              give_up_s: float = 30.0) -> tuple[bool, bytes, float]:
    """A request (with the right key) whose body of `total` bytes comes one byte every `every_s`:
    (closed by the server, what it answered, seconds until then)."""
    host, port = url.rsplit("//", 1)[1].split(":")
    s = socket.create_connection((host, int(port)))
    body, ctype = multipart("a.jpg", b"x" * total)
    s.sendall(f"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\nContent-Type: {ctype}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode())
    start = time.monotonic()
    try:
        for byte in body:
            s.sendall(bytes([byte]))
            closed, got = closed_by_server(s, every_s)
            if closed or got:
                return True, got, time.monotonic() - start
            if time.monotonic() - start > give_up_s:
                return False, b"", time.monotonic() - start
    except OSError:
        return True, b"", time.monotonic() - start
    finally:
        s.close()
    return False, b"", time.monotonic() - start


def endless_header(url: str, megabytes: int = 200) -> tuple[bytes, int]:
    """Send a header line growing up to `megabytes` until the server stops it: (its answer, bytes sent)."""
    host, port = url.rsplit("//", 1)[1].split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
    sent, chunk = 0, b"a" * 65536
    try:
        while sent < megabytes * 1024 * 1024:
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    _, got = closed_by_server(s, 5.0)
    s.close()
    return got, sent


def make_files(folder: Path) -> dict[str, Path]:
    """The hostile uploads of issue 36, by stem (the 100,000-frame video takes ~15 s to encode)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "huge16.png").write_bytes(png16(16000, 16000))
    (folder / "big16.png").write_bytes(png16(7000, 7000))
    (folder / "a.zip").write_bytes(zip_with_jpeg())
    video(folder / "wide.mp4", 1, (8192, 8192), 10)
    video(folder / "long.mp4", 100_000, (16, 16), 250)
    return {p.stem: p for p in folder.iterdir()}


def upload_probes(files: dict[str, Path], task_route: str = "/v1/faces") -> list[tuple[str, str, list, int]]:
    """(what, route, [(filename, bytes)], the status it must get) for each hostile upload."""
    huge, big = files["huge16"].read_bytes(), files["big16"].read_bytes()
    return [
        ("16000x16000 16-bit PNG named .mp4", task_route, [("x.mp4", huge)], 415),
        ("the same as .png", "/v1/classify", [("x.png", huge)], 413),
        ("the same as .png, task route", task_route, [("x.png", huge)], 413),
        ("zip named .mp4", task_route, [("a.mp4", files["a"].read_bytes())], 415),
        ("8192x8192 H.264 video", task_route, [("wide.mp4", files["wide"].read_bytes())], 413),
        ("7000x7000 16-bit PNG", "/v1/classify", [("big.png", big)], 200),
        ("16 of them in one request", "/v1/classify", [(f"big{i}.png", big) for i in range(16)], 200),
        ("7000x7000 16-bit PNG, task route", task_route, [("big.png", big)], 200),
    ]
