"""`visionzoo serve` under the hostile clients of issue 36: the figures its closing note asks for.

Two servers (the real command in a subprocess, efficientnet_lite0 + faces, key from
$VISIONZOO_API_KEY): one with --timeout 120, one with --timeout 2. Prints
  1. each hostile upload (tests/hostile.py): status, the server's peak RSS / its idle RSS (Linux
     VmHWM, reset before each probe with /proc/PID/clear_refs), and RSS after them all;
  2. 300 sockets holding half a request header open: a normal request's status and latency, and how
     many of the 300 the server has closed 1 s later (the oldest make room; the rest at --header-timeout);
  3. a body at one byte a second and a 200 MB header: when and how they are cut off;
  4. a foreign Host and Origin; `--host 0.0.0.0` without a key;
  5. a 100,000-frame mp4 with --timeout 2: status, seconds to the answer, and the seconds after the
     504 until the server's CPU is idle (under 5% of a core over 0.5 s), its CPU-s in the 2 s after.

    .venv/bin/python benchmarks/serve_hostile_bench.py             # ~3 min (encoding the videos: ~30 s)
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from hostile import closed_by_server, endless_header, half_headers, make_files, slow_body, upload_probes  # noqa: E402
from servers import free_port, serve_process  # noqa: E402

KEY = "bench-key-0123456789abcdef"
HEADERS = {"X-API-Key": KEY}
MB = 2**20


def photo() -> bytes:
    import io

    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buf, "JPEG")
    return buf.getvalue()


def post(url: str, route: str, uploads: list) -> httpx.Response:
    return httpx.post(url + route, headers=HEADERS, timeout=600, files=[("file", u) for u in uploads])


def load() -> str:
    return "load %.1f %.1f %.1f" % os.getloadavg()


def server(tmp: Path, name: str, *extra: str):
    return serve_process(["--model", "efficientnet_lite0", "--model", "faces", "--video-jobs", "1", *extra],
                         tmp / f"{name}.log", env={"VISIONZOO_API_KEY": KEY})


def uploads_and_connections(srv, files: dict[str, Path]) -> None:
    cat = photo()
    for _ in range(2):
        post(srv.url, "/v1/classify", [("cat.jpg", cat)])
        post(srv.url, "/v1/faces", [("cat.jpg", cat)])
    idle = srv.rss()
    print(f"\n1. hostile uploads (idle RSS {idle / MB:.0f} MB; {load()})")
    print(f"   {'upload':<38} {'status':>6} {'peak MB':>8} {'x idle':>7} {'s':>6}")
    for name, route, uploads, _ in upload_probes(files):
        srv.reset_peak()
        t = time.monotonic()
        r = post(srv.url, route, uploads)
        took = time.monotonic() - t
        peak = srv.peak_rss()
        print(f"   {name:<38} {r.status_code:>6} {peak / MB:>8.0f} {peak / idle:>7.2f} {took:>6.1f}")
    time.sleep(1)
    print(f"   RSS after them all: {srv.rss() / MB:.0f} MB ({srv.rss() / idle:.2f}x idle)")

    print(f"\n2. 300 connections holding half a header ({load()})")
    socks = half_headers(srv.url, 300)
    t = time.monotonic()
    r = post(srv.url, "/v1/classify", [("cat.jpg", cat)])
    print(f"   a normal request meanwhile: {r.status_code} in {time.monotonic() - t:.2f} s")
    time.sleep(1)
    closed = sum(closed_by_server(s, 0.01)[0] for s in socks)
    print(f"   closed by the server 1 s later: {closed} of 300 (the others at --header-timeout)")
    t = time.monotonic()
    closed = sum(closed_by_server(s, 30)[0] for s in socks)
    print(f"   all closed {time.monotonic() - t:.1f} s after that: {closed} of 300")
    for s in socks:
        s.close()

    print(f"\n3. slow clients ({load()})")
    closed, answer, took = slow_body(srv.url, KEY, total=1000, every_s=1.0, give_up_s=120)
    print(f"   body at 1 byte/s: closed={closed} after {took:.1f} s, answer {answer[:30]!r}")
    srv.reset_peak()
    before = srv.rss()
    answer, sent = endless_header(srv.url, 200)
    print(f"   200 MB header: stopped after {sent / MB:.1f} MB sent, answer {answer[:30]!r}, "
          f"peak RSS +{(srv.peak_rss() - before) / MB:.0f} MB")

    print("\n4. exposure")
    r = httpx.get(srv.url + "/v1/models", headers={**HEADERS, "Host": "evil.example"})
    print(f"   foreign Host: {r.status_code} {r.json()['error'][:60]}")
    r = httpx.post(srv.url + "/v1/classify", headers={**HEADERS, "Origin": "http://evil.example"},
                   files={"file": ("cat.jpg", cat)})
    print(f"   foreign Origin: {r.status_code} {r.json()['error'][:60]}")


def long_video(srv, files: dict[str, Path]) -> None:
    print(f"\n5. 100,000-frame mp4 ({files['long'].stat().st_size / MB:.1f} MB) with --timeout 2 ({load()})")
    data = files["long"].read_bytes()
    t = time.monotonic()
    r = post(srv.url, "/v1/faces", [("long.mp4", data)])
    answered = time.monotonic()
    cpu_at_answer = srv.cpu_seconds()
    print(f"   status {r.status_code} after {answered - t:.2f} s: {r.json().get('error', '')[:70]}")
    samples = [(answered, cpu_at_answer)]
    idle_after = None
    while time.monotonic() - answered < 10:
        time.sleep(0.1)
        samples.append((time.monotonic(), srv.cpu_seconds()))
        old = [s for s in samples if s[0] <= samples[-1][0] - 0.5]
        if old and idle_after is None and (samples[-1][1] - old[-1][1]) / (samples[-1][0] - old[-1][0]) < 0.05:
            idle_after = old[-1][0] - answered
    in_2s = [c for when, c in samples if when - answered <= 2.0][-1] - cpu_at_answer
    print(f"   server CPU idle {idle_after if idle_after is not None else float('nan'):.2f} s after the 504; "
          f"CPU-s in the 2 s after it: {in_2s:.2f}")


def exposed_without_key() -> None:
    env = {k: v for k, v in os.environ.items() if k != "VISIONZOO_API_KEY"}
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "visionzoo", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                       capture_output=True, text=True, env=env, timeout=300, check=False)
    print(f"   --host 0.0.0.0 without a key: exit {r.returncode} in {time.monotonic() - t:.1f} s: "
          f"{r.stderr.strip().splitlines()[-1][:110]}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="vz-hostile-") as tmp:
        tmp = Path(tmp)
        t = time.monotonic()
        files = make_files(tmp / "files")
        print(f"hostile files made in {time.monotonic() - t:.0f} s; {os.cpu_count()} CPUs; {load()}")
        with server(tmp, "main", "--timeout", "120", "--header-timeout", "5", "--body-timeout", "5") as srv:
            uploads_and_connections(srv, files)
        exposed_without_key()
        with server(tmp, "strict", "--timeout", "2") as srv:
            long_video(srv, files)


if __name__ == "__main__":
    main()
