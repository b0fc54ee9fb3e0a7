"""`visionzoo serve`: a real uvicorn server on a loopback port, driven over HTTP and by Chromium.

One server for the module: the offline lite0 classifier (real ImageNet weights), a search index
built from skimage photos with `extract` + `build_index`, and two tiny stand-in task predictors
(detect: a box and a mask; segment: slow, for the per-request timeout). It requires an API key,
so every /v1 call here sends it.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_fuzz import bomb_png, malformed_request
from servers import free_port, serving

pytestmark = pytest.mark.xdist_group("serve")

KEY = "test-key-0123456789"
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("VISIONZOO_ARTIFACTS", REPO / "artifacts"))
CHROMIUM = "/usr/bin/chromium"
MAX_UPLOAD_MB = 2.0


class StandInDetector:
    """A detect Predictor per the task contract: one box (the image's centre) with a mask, in its pixels."""

    task = "detect"
    name = "stand-in-detector"
    classes = ["thing"]

    def __init__(self):
        self.batch_sizes: list[int] = []
        self.running = threading.Event()
        self.running.set()

    def __call__(self, images):
        self.batch_sizes.append(len(images))
        self.running.wait()  # a forward pass the test can hold while other requests queue behind it
        out = []
        for img in images:
            w, h = img.size
            mask = np.zeros((h, w), bool)
            mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = True
            out.append({"width": w, "height": h,
                        "detections": [{"label": "thing", "score": 0.9, "box": [w / 4, h / 4, 3 * w / 4, 3 * h / 4]}],
                        "mask": mask})
        return out


class SlowSegmenter:
    """Never answers while a test runs (the per-request timeout must fire); released at teardown."""

    task = "segmentation"
    name = "slow-segmenter"

    def __init__(self):
        self.release = threading.Event()

    def __call__(self, images):
        self.release.wait()
        return [{"width": i.size[0], "height": i.size[1]} for i in images]



@pytest.fixture(scope="module")
def index_dir(photo_dir, tmp_path_factory) -> Path:
    import visionzoo
    from visionzoo.downstream import build_index

    out = tmp_path_factory.mktemp("serve-index")
    visionzoo.extract([photo_dir], out / "feats")
    build_index(out / "feats", out / "index")
    return out


@pytest.fixture(scope="module")
def server(index_dir):
    """A real uvicorn server on 127.0.0.1 in a thread; yields (base_url, detector)."""
    from visionzoo.serve import create_app

    detector, segmenter = StandInDetector(), SlowSegmenter()
    app = create_app(models=["efficientnet_lite0", detector, segmenter], index=index_dir / "index",
                     api_key=KEY, max_upload_mb=MAX_UPLOAD_MB, batch_window_ms=30, timeout_s=3.0, threads=1)
    try:
        with serving(app, 600) as url:
            yield url, detector, app
    finally:
        segmenter.release.set()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server[0], headers={"X-API-Key": KEY}, timeout=600) as c:  # a guard, not a test
        yield c


def upload(*paths: Path, **form) -> dict:
    return {"files": [("file", (p.name, p.read_bytes(), "image/jpeg")) for p in paths],
            "data": {k: str(v) for k, v in form.items()}}


def test_health_and_models(server, client):
    assert httpx.get(server[0] + "/health").json()["status"] == "ok"  # no key needed
    info = client.get("/v1/models").json()
    by_task = {m["task"]: m for m in info["models"]}
    assert by_task["classification"]["num_classes"] == 1000
    assert by_task["classification"]["preprocessing"]["input_size"] == [3, 224, 224]
    assert by_task["detect"]["classes"] == ["thing"]
    assert info["index"]["count"] == 5 and info["index"]["served_by"] == "efficientnet_lite0"
    assert "/v1/classify" in client.get("/openapi.json").json()["paths"]
    assert "swagger" in client.get("/docs").text.lower()


def test_api_key_required(server):
    for headers in ({}, {"X-API-Key": "wrong-key-000"}, {"Authorization": "Bearer nope"}):
        r = httpx.get(server[0] + "/v1/models", headers=headers)
        assert r.status_code == 401 and "API key" in r.json()["error"]
    assert httpx.get(server[0] + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_classify_one_and_many(client, photo_dir):
    r = client.post("/v1/classify", **upload(photo_dir / "chelsea.jpg", k=3))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "efficientnet_lite0" and len(body["predictions"]) == 3
    assert "cat" in body["predictions"][0]["label"]
    files = upload(photo_dir / "chelsea.jpg", photo_dir / "coffee.jpg")["files"] + [("file", ("x.jpg", b"no", "image/jpeg"))]
    results = client.post("/v1/classify", files=files).json()["results"]
    assert [x["filename"] for x in results] == ["chelsea.jpg", "coffee.jpg", "x.jpg"]
    assert "espresso" in results[1]["predictions"][0]["label"] and len(results[1]["predictions"]) == 5
    assert results[2]["status"] == 415 and "not an image" in results[2]["error"]  # the others still answered


def test_embed_matches_extracted_features(client, photo_dir, index_dir):
    import visionzoo

    paths, feats = visionzoo.load_features(index_dir / "feats")
    body = client.post("/v1/embed", **upload(photo_dir / "coffee.jpg")).json()
    vec = np.asarray(body["embedding"])
    assert body["dim"] == len(vec) == feats.shape[1] and body["layer"] == "pre_logits"
    stored = feats[[Path(p).name for p in paths].index("coffee.jpg")]
    assert float(vec @ stored / np.linalg.norm(vec) / np.linalg.norm(stored)) > 0.999


def test_search_and_thumbnails(client, photo_dir):
    body = client.post("/v1/search", **upload(photo_dir / "chelsea.jpg", k=3)).json()
    hits = body["neighbours"]
    assert len(hits) == 3 and Path(hits[0]["path"]).name == "chelsea.jpg" and hits[0]["score"] > 0.99
    thumb = client.get(hits[0]["thumbnail"])
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 192
    outside = client.get("/v1/thumbnail", params={"path": str(Path(__file__))})  # not an indexed image
    assert outside.status_code == 404


def test_task_endpoint_and_batching_across_clients(client, server, photo_dir):
    detector = server[1]
    body = client.post("/v1/detect", **upload(photo_dir / "rocket.jpg")).json()
    w, h = Image.open(photo_dir / "rocket.jpg").size
    assert (body["width"], body["height"]) == (w, h) and body["model"] == "stand-in-detector"
    assert body["detections"][0]["box"] == [w / 4, h / 4, 3 * w / 4, 3 * h / 4]  # the image's own pixels
    assert body["mask"].startswith("data:image/png;base64,")                       # arrays travel as PNG
    photos = sorted(photo_dir.glob("*.jpg"))

    def queued() -> int:  # images in the held forward pass or waiting behind it
        models = client.get("/v1/models").json()["models"]
        return sum(detector.batch_sizes) + next(m["waiting"] for m in models if m["name"] == detector.name)

    detector.batch_sizes.clear()
    detector.running.clear()
    try:
        with ThreadPoolExecutor(8) as pool:  # 8 clients at once, one image each
            sent = [pool.submit(lambda i=i: client.post("/v1/detect", **upload(photos[i % 5])).status_code)
                    for i in range(8)]
            for _ in range(60_000):  # the first forward pass is held until every image is in it or queued: certain
                if queued() == 8:
                    break
                time.sleep(0.01)
            detector.running.set()
            codes = [f.result() for f in sent]
    finally:
        detector.running.set()
    assert codes == [200] * 8
    assert sum(detector.batch_sizes) == 8 and len(detector.batch_sizes) <= 2  # requests shared forward passes
    assert client.post("/v1/caption", **upload(photos[0])).status_code == 404  # no caption model loaded


def test_refusals_are_4xx_json_without_traces(client, photo_dir):
    jpeg = (photo_dir / "chelsea.jpg").read_bytes()
    cases = {
        413: [("big.jpg", os.urandom(int(MAX_UPLOAD_MB * 1024 * 1024) + 10)),
              ("bomb.png", bomb_png(40_000, 40_000))],
        415: [("notes.jpg", b"hello, I am not an image at all")],
        400: [("cut.jpg", jpeg[: len(jpeg) // 3]), ("empty.jpg", b"")],
    }
    for status, files in cases.items():
        for name, data in files:
            r = client.post("/v1/classify", files={"file": (name, data, "image/jpeg")})
            assert r.status_code == status, (name, r.text)
            assert r.json()["error"] and "Traceback" not in r.text
    chunked = (b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n" + os.urandom(2**20)
               for _ in range(3))  # no Content-Length: counted while read
    r = client.post("/v1/classify", content=chunked, headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "too large" in r.json()["error"]
    r = client.post("/v1/classify", files={"image": ("a.jpg", jpeg, "image/jpeg")})
    assert r.status_code == 422 and "file" in r.json()["error"]
    r = client.post("/v1/segment", files={"file": ("a.jpg", jpeg, "image/jpeg")})   # slower than the timeout
    assert r.status_code == 504 and "timed out" in r.json()["error"]


def test_fuzz_malformed_uploads_then_healthy(client, photo_dir):
    jpeg = (photo_dir / "coffee.jpg").read_bytes()
    rng = np.random.default_rng(0)
    statuses = []
    for i in range(300):
        r = client.request(**malformed_request(i, rng, jpeg, int(MAX_UPLOAD_MB * 1024 * 1024)))
        statuses.append(r.status_code)
        assert 400 <= r.status_code < 500, (i, r.status_code, r.text[:200])
        assert "Traceback" not in r.text
    assert len(set(statuses)) >= 5  # the kinds really differ (400, 404, 405, 413, 415, 422)
    assert client.get("/health").status_code == 200
    r = client.post("/v1/classify", **upload(photo_dir / "coffee.jpg"))
    assert "espresso" in r.json()["predictions"][0]["label"]


def test_exposure_warning_and_config_checks():
    from visionzoo.errors import UsageError
    from visionzoo.serve import ServeConfig
    from visionzoo.serve.config import exposure_warning

    assert exposure_warning("127.0.0.1", None) is None and exposure_warning("::1", None) is None
    assert exposure_warning("localhost", None) is None
    assert "WITHOUT an API key" in exposure_warning("0.0.0.0", None)
    assert exposure_warning("0.0.0.0", "a-long-enough-key") is None
    assert ServeConfig().host == "127.0.0.1"
    with pytest.raises(UsageError, match="no API key"):
        ServeConfig(host="0.0.0.0").check()
    with pytest.raises(UsageError):
        ServeConfig(api_key="short").check()


@pytest.mark.slow
def test_cli_serve_warns_when_exposed_and_answers(photo_dir, tmp_path):
    """`visionzoo serve --host 0.0.0.0 --insecure-no-key`: the loud warning, then a working server
    (without the flag it refuses to start: tests/test_serve_hostile.py)."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "VISIONZOO_API_KEY"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "visionzoo", "serve", "--host", "0.0.0.0", "--port", str(port),
                                 "--threads", "1", "--insecure-no-key"], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600  # a guard: a busy machine is slow to import and load
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        r = httpx.post(url + "/v1/classify", timeout=600, **upload(photo_dir / "chelsea.jpg"))
        assert "cat" in r.json()["predictions"][0]["label"]
    finally:
        proc.terminate()
        proc.wait(300)
    assert "WITHOUT an API key" in log.read_text()


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
def test_browser_upload_shows_label(server, photo_dir):
    """Chromium (headless, the system browser) opens the page, uploads a photo, sees labels, boxes, neighbours."""
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.add_init_script(f"localStorage.setItem('visionzoo-api-key', {KEY!r})")
            page.goto(server[0] + "/")
            sync_api.expect(page.locator("#status")).to_contain_text("efficientnet_lite0")
            page.set_input_files("#file", str(photo_dir / "chelsea.jpg"))
            sync_api.expect(page.locator("#labels li").first).to_contain_text("cat", timeout=300_000)
            sync_api.expect(page.locator("#similar figure")).to_have_count(5, timeout=300_000)
            sync_api.expect(page.locator("#found")).to_contain_text("thing", timeout=300_000)
            page.wait_for_timeout(300)  # thumbnails and the overlay finish drawing
            page.screenshot(path=str(ARTIFACTS / "serve_page.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "serve_page.png").stat().st_size > 10_000


def test_model_arguments_pick_the_task(tmp_path):
    """`--model` spellings: run folders by their config's task, TASK:NAME, options; a bad task is a UsageError."""
    import json

    from visionzoo.errors import UsageError
    from visionzoo.serve.models import parse_model_arg
    from visionzoo.zoo.rundir import CONFIG_FILE, RUN_FORMAT, WEIGHTS_FILE

    def run_dir(name: str, task: str | None) -> str:
        folder = tmp_path / name
        folder.mkdir()
        (folder / WEIGHTS_FILE).write_bytes(b"")
        (folder / CONFIG_FILE).write_text(json.dumps({"format": RUN_FORMAT, **({"task": task} if task else {})}))
        return str(folder)

    det = run_dir("det", "detection")
    assert (parse_model_arg(det).task, parse_model_arg(det).name) == ("detect", det)
    assert parse_model_arg(run_dir("clf", None)).task == "classify"
    arg = parse_model_arg(f"detect:{det},conf=0.5,masks=true")
    assert (arg.task, arg.name, arg.options) == ("detect", det, {"conf": 0.5, "masks": True})
    assert (parse_model_arg("faces").task, parse_model_arg("faces").name) == ("faces", None)
    assert parse_model_arg("faces:dlib").name == "dlib"
    assert parse_model_arg("efficientnet_lite1").task == "classify"
    assert parse_model_arg(StandInDetector()).task == "detect"
    with pytest.raises(UsageError, match="unknown task"):
        parse_model_arg(run_dir("odd", "painting"))
    with pytest.raises(UsageError, match="key=value"):
        parse_model_arg("detect:x,conf")
