"""`visionzoo serve` under load and under hostile uploads, next to `visionzoo extract`, in one run.

  1. load: `visionzoo serve` (defaults: efficientnet_lite0, batch 32, 5 ms window) on 127.0.0.1;
     N clients (8) each POST one real photo at a time to /v1/classify for D seconds (30).
     Prints requests by status (5xx must be 0), p50/p95 latency, images/s, and the server's
     RSS sampled every second (after warm-up, peak, end: the end within 10% of the start).
  2. fuzz: 1,000 malformed requests (tests/serve_fuzz.py: random bytes, truncated JPEGs, zip
     bombs as PNG/GIF, wrong fields, broken multipart, bodies over the limit), 4 at a time.
     All must get a 4xx; then /health must answer.
  3. `visionzoo.extract` (defaults) over the same photos copied 4x: its marginal images/s (the
     whole call minus a one-batch call, so model loading is not counted against it), and the
     ratio served / extract (the issue asks >= 0.7).

The photos are the raccoon data set's JPEGs (/work/shared/datasets/raccoon, real photos of
mixed sizes). The server runs with --max-upload-mb 4 so the over-the-limit fuzz bodies stay small.

    flock /tmp/visionzoo-heavy.lock .venv/bin/python benchmarks/serve_bench.py          # ~2 min
    .venv/bin/python benchmarks/serve_bench.py --duration 5 --malformed 100              # smoke run
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets" / "raccoon"
sys.path.insert(0, str(REPO / "tests"))
from serve_fuzz import malformed_request  # noqa: E402

MAX_UPLOAD_MB = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "visionzoo", "serve", "--port", str(port), "--max-upload-mb", str(MAX_UPLOAD_MB)]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("server did not start in 120 s")
        time.sleep(0.2)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_test(url: str, photos: list[bytes], clients: int, duration: float, pid: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    rss: list[tuple[float, float]] = []
    stop = time.monotonic() + duration
    t0 = time.monotonic()

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=url, timeout=60) as c:
            while time.monotonic() < stop:
                data = photos[int(rng.integers(len(photos)))]
                t = time.perf_counter()
                try:
                    code = c.post("/v1/classify", files={"file": ("photo.jpg", data, "image/jpeg")}).status_code
                except httpx.TransportError:
                    code = 599  # counted as a server failure
                dt = time.perf_counter() - t
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1
                    if code == 200:
                        latencies.append(dt)

    def sample() -> None:
        while time.monotonic() < stop:
            rss.append((time.monotonic() - t0, rss_mb(pid)))
            time.sleep(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    server_cpu, client_cpu = cpu_s(pid), time.process_time()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    elapsed = time.monotonic() - t0
    server_cpu, client_cpu = cpu_s(pid) - server_cpu, time.process_time() - client_cpu
    sampler.join()
    lat = np.asarray(latencies) * 1000
    after_warmup = [m for t, m in rss if t >= min(5.0, duration / 3)] or [m for _, m in rss]
    return {"statuses": statuses, "ok": len(latencies), "elapsed": elapsed,
            "images_per_s": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "p95_ms": float(np.percentile(lat, 95)) if lat.size else float("nan"),
            "server_cpu_ms": 1000 * server_cpu / max(1, len(latencies)),
            "client_cpu_ms": 1000 * client_cpu / max(1, len(latencies)),
            "rss_start": after_warmup[0], "rss_peak": max(after_warmup), "rss_end": after_warmup[-1]}


def fuzz(url: str, jpeg: bytes, n: int) -> dict:
    statuses: dict[int, int] = {}
    failures: list[str] = []
    lock = threading.Lock()
    rng_lock = threading.Lock()
    rng = np.random.default_rng(0)

    def one(i: int, c: httpx.Client) -> None:
        with rng_lock:
            req = malformed_request(i, rng, jpeg, MAX_UPLOAD_MB * 1024 * 1024)
        try:
            r = c.request(**req)
            code, text = r.status_code, r.text
        except httpx.TransportError as exc:
            code, text = 599, repr(exc)
        with lock:
            statuses[code] = statuses.get(code, 0) + 1
            if not 400 <= code < 500 or "Traceback" in text:
                failures.append(f"request {i}: {code} {text[:120]}")

    def worker(k: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            for i in range(k, n, 4):
                one(i, c)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(worker, range(4)))
    health = httpx.get(url + "/health").status_code
    return {"statuses": statuses, "failures": failures, "health": health}


def extract_rate(photo_paths: list[Path], tmp: Path, copies: int = 4) -> dict:
    import visionzoo

    folder = tmp / "extract-in"
    folder.mkdir()
    for c in range(copies):
        for p in photo_paths:
            shutil.copy(p, folder / f"{c}_{p.name}")
    small = tmp / "extract-small"
    small.mkdir()
    for p in sorted(folder.iterdir())[:32]:
        shutil.copy(p, small / p.name)
    n = len(list(folder.iterdir()))
    t = time.perf_counter()
    visionzoo.extract([small], tmp / "feats-small")
    t_small = time.perf_counter() - t
    t = time.perf_counter()
    visionzoo.extract([folder], tmp / "feats")
    t_full = time.perf_counter() - t
    return {"n": n, "whole_call": n / t_full, "marginal": (n - 32) / max(1e-9, t_full - t_small)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--malformed", type=int, default=1000)
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing (the raccoon data set)")
    photo_paths = sorted(p for p in DATA.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    photos = [p.read_bytes() for p in photo_paths]
    print(f"{len(photos)} raccoon JPEGs, mean {np.mean([len(b) for b in photos]) / 1024:.0f} KB; "
          f"{os.cpu_count()} CPU cores")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="vz-serve-bench-") as tmp_name:
        tmp = Path(tmp_name)
        proc = start_server(port, tmp / "server.log")
        try:
            for p in photos[:16]:  # warm-up: ONNX session, thread pools
                httpx.post(url + "/v1/classify", files={"file": ("w.jpg", p, "image/jpeg")}, timeout=60)
            load = load_test(url, photos, args.clients, args.duration, proc.pid)
            models = httpx.get(url + "/v1/models").json()["models"][0]
            bad = fuzz(url, photos[0], args.malformed)
            alive = proc.poll() is None
        finally:
            proc.terminate()
            proc.wait(20)
        ext = extract_rate(photo_paths, tmp)

    five = sum(v for k, v in load["statuses"].items() if k >= 500)
    print(f"\nload: {args.clients} clients x {args.duration:g} s, one photo per request, /v1/classify")
    print(f"  requests by status     {dict(sorted(load['statuses'].items()))}   (5xx: {five})")
    print(f"  latency p50 / p95      {load['p50_ms']:.0f} ms / {load['p95_ms']:.0f} ms")
    print(f"  served images/s        {load['images_per_s']:.1f}")
    print(f"  server batches         {models['batches']} for {models['images']} images "
          f"(mean batch {models['images'] / max(1, models['batches']):.1f})")
    print(f"  CPU per image          server {load['server_cpu_ms']:.1f} ms, the clients {load['client_cpu_ms']:.1f} ms")
    print(f"  server RSS (MB)        {load['rss_start']:.0f} after warm-up, {load['rss_peak']:.0f} peak, "
          f"{load['rss_end']:.0f} at end ({'flat' if load['rss_end'] <= 1.1 * load['rss_start'] else 'GROWING'})")
    print(f"extract ({ext['n']} images, defaults): {ext['marginal']:.1f} images/s marginal, "
          f"{ext['whole_call']:.1f} over the whole call")
    ratio = load["images_per_s"] / ext["marginal"]
    print(f"  served / extract       {ratio:.2f}   (target >= 0.70)")
    four = sum(v for k, v in bad["statuses"].items() if 400 <= k < 500)
    print(f"fuzz: {args.malformed} malformed requests: {four} got 4xx, by status {dict(sorted(bad['statuses'].items()))}; "
          f"/health after: {bad['health']}; server alive: {alive}")
    for f in bad["failures"][:10]:
        print("  NOT 4xx:", f)
    flat = load["rss_end"] <= 1.1 * load["rss_start"]  # no leak: within 10% of the post-warm-up RSS
    ok = five == 0 and not bad["failures"] and bad["health"] == 200 and alive and ratio >= 0.7 and flat
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
