"""`visionzoo serve` against hostile clients (issue 36): bounded memory and CPU per request, no lock-out
by idle or slow connections, nothing exposed by default.

Fast tier: the pure checks (Host / Origin rules, where the key comes from, refusing an exposed bind
without a key, pixels refused from the header, 16-bit images converted without a float64 copy).
Slow tier: the real command in a subprocess on a loopback port (so its memory and CPU are its own,
read from /proc), probed the way issue 36 probed it, with a normal client served during and after.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import pytest
from hostile import (
    closed_by_server,
    endless_header,
    half_headers,
    make_files,
    multipart,
    png16,
    slow_body,
    upload_probes,
    zip_with_jpeg,
)
from PIL import Image
from serve_fuzz import bomb_png
from servers import free_port, serve_process

KEY = "hostile-test-key-0123456789"
HEADERS = {"X-API-Key": KEY}
MEMORY_FACTOR = 1.5        # peak RSS under a hostile upload / idle RSS (issue 36)


# ----------------------------------------------------------------------------------------------- fast tier
def test_host_and_origin_rules():
    from visionzoo.serve.config import host_allowed, host_name, origin_allowed

    assert [host_name(h) for h in ("127.0.0.1:8000", "[::1]:8000", "LocalHost", "example.org.")] == \
        ["127.0.0.1", "::1", "localhost", "example.org"]
    for name in ("127.0.0.1", "::1", "localhost", "192.168.1.5"):   # loopback names; any IP literal
        assert host_allowed(name, [])
    for name in ("evil.example", "localhost.evil.example", ""):      # DNS rebinding needs a name: refused
        assert not host_allowed(name, [])
    assert host_allowed("vision.lan", ["vision.lan"]) and host_allowed("evil.example", ["*"])
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", [])
    assert not origin_allowed("http://127.0.0.1:9999", "127.0.0.1:8000", [])      # another local page
    assert not origin_allowed("http://evil.example", "127.0.0.1:8000", [])
    assert not origin_allowed("null", "127.0.0.1:8000", [])
    assert origin_allowed("https://app.example", "127.0.0.1:8000", ["app.example"])


def test_key_sources(tmp_path):
    from visionzoo.errors import UsageError
    from visionzoo.serve.config import resolve_key

    key_file = tmp_path / "key"
    key_file.write_text("from-a-file-0123\n")
    assert resolve_key(key_file=key_file, env={}) == ("from-a-file-0123", None)
    assert resolve_key(env={"VISIONZOO_API_KEY": "from-env-0123"}) == ("from-env-0123", None)
    key, warning = resolve_key(api_key="on-the-command-line", env={})
    assert key == "on-the-command-line" and "ps" in warning and "VISIONZOO_API_KEY" in warning
    assert resolve_key(env={}) == (None, None)
    with pytest.raises(UsageError, match="one way"):
        resolve_key(api_key="on-the-command-line", key_file=key_file, env={})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(UsageError, match="empty"):
        resolve_key(key_file=tmp_path / "empty", env={})
    with pytest.raises(UsageError, match="cannot read"):
        resolve_key(key_file=tmp_path / "missing", env={})


def test_exposed_bind_needs_a_key():
    from visionzoo.errors import UsageError
    from visionzoo.serve import ServeConfig

    ServeConfig(host="127.0.0.1").check()
    ServeConfig(host="0.0.0.0", api_key="long-enough-key").check()
    ServeConfig(host="0.0.0.0", insecure_no_key=True).check()
    for host in ("0.0.0.0", "192.168.1.5", "myhost.lan"):
        with pytest.raises(UsageError, match="no API key"):
            ServeConfig(host=host).check()


def test_cli_refuses_to_start_exposed_without_a_key():
    """`visionzoo serve --host 0.0.0.0` with no key: exit 2 and the reason, before any model loads."""
    env = {k: v for k, v in os.environ.items() if k != "VISIONZOO_API_KEY"}
    r = subprocess.run([sys.executable, "-m", "visionzoo", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "no API key" in r.stderr and "--insecure-no-key" in r.stderr, r.stderr


def test_pixels_and_containers_refused_from_the_header():
    from visionzoo.data.decode import ImageDecodeError, image_size
    from visionzoo.serve.video import container_of

    bomb = bomb_png(16000, 16000)
    tracemalloc.start()
    with pytest.raises(ImageDecodeError, match="too large"):
        image_size(bomb, "x.png", max_pixels=50_000_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000                    # decoded, it would be 768 MB
    assert image_size(png16(300, 200), "ok.png") == (300, 200)
    assert container_of(png16(16, 16)[:16]) is None and container_of(zip_with_jpeg()[:16]) is None
    assert container_of(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00") == "mp4"
    assert container_of(b"RIFF\x00\x00\x00\x00AVI LIST") == "avi"
    assert container_of(b"RIFF\x00\x00\x00\x00WEBPVP8 ") is None


def test_16bit_images_convert_without_a_float64_copy():
    from visionzoo.data.decode import load_rgb

    ramp = (np.arange(2000 * 1500, dtype=np.uint32).reshape(1500, 2000) % 65536).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")
    tracemalloc.start()
    img = load_rgb(buf.getvalue())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert img.size == (2000, 1500) and img.mode == "RGB"
    assert peak < 2000 * 1500 * 8                # the result (9 MB) and a band; a float64 copy alone is 24 MB
    got = np.asarray(img)[..., 0].astype(int)
    assert np.abs(got - np.round(ramp / 65535 * 255)).max() <= 1


def test_run_folders_are_named_by_their_name(tmp_path):
    from visionzoo.serve.models import public_name

    assert public_name(str(tmp_path / "runs" / "flowers")) == "flowers"
    assert public_name("efficientnet_lite0") == "efficientnet_lite0"
    assert public_name("fasterrcnn_resnet50_fpn_v2") == "fasterrcnn_resnet50_fpn_v2"


# ----------------------------------------------------------------------------------------------- slow tier
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return make_files(tmp_path_factory.mktemp("hostile"))


def _server(tmp_path_factory, name: str, *extra: str):
    log = tmp_path_factory.mktemp(name) / "serve.log"
    return serve_process(["--model", "efficientnet_lite0", "--model", "faces", "--threads", "1", "--video-jobs", "1",
                          *extra], log, env={"VISIONZOO_API_KEY": KEY, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with _server(tmp_path_factory, "server", "--timeout", "120", "--header-timeout", "3", "--body-timeout", "3",
                 "--max-connections-per-client", "32") as srv:
        yield srv


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    with _server(tmp_path_factory, "strict", "--timeout", "2") as srv:
        yield srv


def _photo() -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buf, "JPEG")
    return buf.getvalue()


def _classify(url: str) -> int:
    r = httpx.post(url + "/v1/classify", headers=HEADERS, timeout=120, files={"file": ("cat.jpg", _photo())})
    assert r.status_code != 200 or "cat" in r.json()["predictions"][0]["label"]
    return r.status_code


@contextmanager
def normal_client(url: str) -> Iterator[list[int]]:
    """A client classifying a photo, one request after another, while the block runs: its statuses."""
    statuses: list[int] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            statuses.append(_classify(url))

    worker = threading.Thread(target=run)
    worker.start()
    try:
        yield statuses
    finally:
        stop.set()
        worker.join(300)


def _post(url: str, route: str, *uploads: tuple[str, bytes]) -> httpx.Response:
    return httpx.post(url + route, headers=HEADERS, timeout=300, files=[("file", u) for u in uploads])


def _wait_idle(srv) -> None:
    """Until no video is being decoded and no decoded pixels are held (bounded)."""
    for _ in range(600):
        busy = httpx.get(srv.url + "/health", timeout=10).json()["busy"]
        if busy["video_jobs"] == 0 and busy["pixels_held"] == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"still busy: {busy}")


@pytest.mark.slow
def test_hostile_uploads_keep_memory_bounded_and_others_served(server, files):
    """Each upload of issue 36: its status, the server's peak RSS <= 1.5x idle, a normal client served
    while it runs and after; and the memory comes back."""
    for _ in range(2):   # warm both routes: idle is the server ready to answer
        assert _classify(server.url) == 200
        assert _post(server.url, "/v1/faces", ("cat.jpg", _photo())).status_code == 200
    idle = server.rss()
    report = []
    for name, route, uploads, status in upload_probes(files):
        server.reset_peak()
        with normal_client(server.url) as normal:
            r = _post(server.url, route, *uploads)
        peak = server.peak_rss()
        report.append(f"{name}: {r.status_code}, peak {peak / idle:.2f}x idle")
        assert r.status_code == status, (name, r.text[:300])
        assert "Traceback" not in r.text
        assert normal and set(normal) == {200}, (name, normal)
        assert peak <= MEMORY_FACTOR * idle, (name, peak / 2**20, idle / 2**20, report)
    _wait_idle(server)
    assert _classify(server.url) == 200
    assert server.rss() <= MEMORY_FACTOR * idle, (server.rss() / 2**20, idle / 2**20)
    print("\n".join(report))


@pytest.mark.slow
def test_two_hostile_uploads_at_once(server, files):
    server.reset_peak()
    idle = server.rss()
    huge = files["huge16"].read_bytes()
    with httpx.Client(headers=HEADERS, timeout=300) as c:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(
            c.post(server.url + "/v1/faces", files={"file": ("x.mp4", huge)}).status_code)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    assert results == [415, 415]
    assert server.peak_rss() <= MEMORY_FACTOR * idle


@pytest.mark.slow
def test_idle_connections_do_not_lock_others_out(server):
    """300 sockets that sent half a header: a normal request is still answered, and every one of them
    is closed by the server (the oldest make room for new clients; the rest at the header deadline)."""
    socks = half_headers(server.url, 300)
    try:
        assert _classify(server.url) == 200
        assert httpx.get(server.url + "/health", timeout=30).status_code == 200
        closed = [closed_by_server(s, 300)[0] for s in socks]
        assert all(closed), closed.count(False)
    finally:
        for s in socks:
            s.close()
    assert _classify(server.url) == 200


@pytest.mark.slow
def test_slow_body_and_endless_header_are_cut_off(server):
    idle = server.rss()
    server.reset_peak()
    closed, answer, _ = slow_body(server.url, KEY, total=1000, every_s=1.0, give_up_s=60)
    assert closed and (answer == b"" or answer.startswith(b"HTTP/1.1 408")), answer[:100]
    answer, sent = endless_header(server.url, megabytes=200)
    assert sent < 64 * 1024 * 1024, sent           # stopped long before 200 MB
    assert answer[:12] in (b"", b"HTTP/1.1 431", b"HTTP/1.1 400"), answer[:100]   # 400: h11 without httptools
    assert server.peak_rss() <= MEMORY_FACTOR * idle
    assert _classify(server.url) == 200


@pytest.mark.slow
def test_exposure_checks(server):
    r = httpx.get(server.url + "/v1/models", headers={**HEADERS, "Host": "evil.example"}, timeout=30)
    assert r.status_code == 403 and "Host" in r.json()["error"]
    r = httpx.post(server.url + "/v1/classify", headers={**HEADERS, "Origin": "http://evil.example"}, timeout=30,
                   files={"file": ("cat.jpg", _photo())})
    assert r.status_code == 403
    assert httpx.get(server.url + "/v1/models", timeout=30).status_code == 401
    page = httpx.get(server.url + "/", timeout=30)
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    models = httpx.get(server.url + "/v1/models", headers=HEADERS, timeout=30).text
    assert str(Path.home()) not in models and "/tmp" not in models
    r = httpx.post(server.url + "/v1/classify", headers=HEADERS, data={"model": "/etc/passwd"}, timeout=30,
                   files={"file": ("cat.jpg", _photo())})
    assert r.status_code == 404 and "/" not in r.json()["error"].split("loaded:")[1]


@pytest.mark.slow
def test_long_video_times_out_and_its_work_stops(strict, files):
    """100,000 frames (~25 CPU-s to decode) with --timeout 2: 504, the decoding stops, the CPU goes idle."""
    r = _post(strict.url, "/v1/faces", ("long.mp4", files["long"].read_bytes()))
    assert r.status_code == 504, r.text[:300]
    _wait_idle(strict)
    before = strict.cpu_seconds()
    time.sleep(1.0)
    assert strict.cpu_seconds() - before < 0.3
    assert "timed out after 2 s: the video was stopped" in strict.log.read_text()
    assert _classify(strict.url) == 200


@pytest.mark.slow
def test_disconnected_client_stops_its_video(server, files):
    """A client that sends the long video and hangs up: the server stops decoding it (its log says so)."""
    import socket

    body, ctype = multipart("long.mp4", files["long"].read_bytes())
    host, port = server.url.rsplit("//", 1)[1].split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(f"POST /v1/faces HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\nContent-Type: {ctype}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    for _ in range(600):    # until the server is decoding it
        if httpx.get(server.url + "/health", timeout=10).json()["busy"]["video_jobs"]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the video never started")
    s.close()
    _wait_idle(server)
    assert "client disconnected: the video was stopped" in server.log.read_text()
    assert _classify(server.url) == 200


def test_task_routes_decode_large_jpegs_at_reduced_size():
    """As `detect predict` does: a predictor that can rescale its answers (decode_size + rescale) gets a
    large JPEG decoded at about the size its network sees; the answer is in the upload's pixels."""
    from visionzoo.serve import ServeConfig
    from visionzoo.serve.models import ServedPredictor
    from visionzoo.tasks.detect.predictor import _rescale

    class Detector:
        task, decode_size, seen = "detect", 200, []

        def __call__(self, images):
            self.seen += [img.size for img in images]
            return [{"width": img.width, "height": img.height,
                     "detections": [{"label": "x", "score": 1.0, "box": [0, 0, img.width / 2, img.height / 2]}]}
                    for img in images]

        def rescale(self, result, size):
            return _rescale(result, size)

    buf = io.BytesIO()
    Image.fromarray(np.full((1200, 1600, 3), 90, np.uint8)).save(buf, "JPEG")
    served = ServedPredictor("d", "detect", Detector(), ServeConfig())
    try:
        item = served.prepare(buf.getvalue(), "big.jpg")
        [answer] = served._predict([item])
    finally:
        served.close()
    assert Detector.seen == [(400, 300)]                       # 1/4 scale in the DCT: short side >= 200
    assert (answer["width"], answer["height"]) == (1600, 1200)
    assert answer["detections"][0]["box"] == [0, 0, 800, 600]


def test_connection_guard_cuts_slow_headers_and_makes_room():
    """The protocol guard on a trivial app: a half-sent header is cut off with 408; past the per-client
    cap the oldest idle connection is closed for a new one, which is answered; a huge header gets 431."""
    import uvicorn

    from visionzoo.serve.connections import ConnectionLimits, guarded_protocol

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})

    protocol = guarded_protocol(ConnectionLimits(header_timeout_s=1.0, body_timeout_s=1.0, per_client=3, total=10,
                                                 max_header_bytes=4096))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, log_level="warning",
                                        lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(12000):
        if srv.started:
            break
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        socks = half_headers(url, 3)
        for _ in range(12000):        # until the server has registered all three (a guard, not a clock)
            if len(protocol.registry.open) == 3:
                break
            time.sleep(0.05)
        assert httpx.get(url + "/", timeout=10).text == "ok"        # a fourth: the oldest idle one makes room
        assert closed_by_server(socks[0], 300)[0] and protocol.registry.evicted == 1
        closed, said = closed_by_server(socks[1], 300)                # the others: the header deadline
        assert closed and said.startswith(b"HTTP/1.1 408")
        answer, sent = endless_header(url, megabytes=8)
        assert answer[:12] in (b"HTTP/1.1 431", b"HTTP/1.1 400", b""), answer[:60]
        assert httpx.get(url + "/", timeout=10).text == "ok"
    finally:
        srv.should_exit = True
        thread.join(10)
        for s in socks:
            s.close()
