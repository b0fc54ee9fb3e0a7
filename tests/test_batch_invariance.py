"""An image's answer never depends on what else is in the batch, the call, or the other clients' requests:
faces in a list vs alone, and `visionzoo serve` answering concurrent clients that send photos of different
sizes exactly as it answers each of them alone. (Each task's own test file checks its predictor the same
way: classify, extract, detect, segment, caption.)"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from servers import serving

FACES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "faces"
pytestmark = pytest.mark.xdist_group("serve")


@pytest.mark.skipif(not FACES.is_dir(), reason="needs ../shared/datasets/faces")
def test_faces_alone_and_together(tmp_path):
    from visionzoo.tasks.faces import detect

    Image.open(FACES / "paul_rudd" / "1.jpg").resize((300, 420)).save(tmp_path / "small.jpg")
    files = [FACES / "multiface.jpg", FACES / "kate_siegel" / "1.jpg", tmp_path / "small.jpg"]
    together = {r["path"]: r for r in detect(files)}
    for f in files:
        mixed, alone = together[str(f)], detect([f])[0]
        assert len(alone["faces"]) == len(mixed["faces"]) > 0
        for a, b in zip(alone["faces"], mixed["faces"]):
            np.testing.assert_allclose(a["box"], b["box"], atol=1.0)



@pytest.fixture(scope="module")
def server():
    """lite0 and a detector on the bundled backbone (untrained heads: every box is kept at conf 0)."""
    import torch

    from visionzoo.serve import create_app
    from visionzoo.tasks.detect.config import DetectorConfig
    from visionzoo.tasks.detect.detector import BACKGROUND, Detector
    from visionzoo.tasks.detect.model import build_detector
    from visionzoo.tasks.detect.predictor import Predictor

    torch.manual_seed(0)
    module = build_detector(DetectorConfig(num_classes=2, image_size=192, max_size=320), pretrained_backbone=True)
    detector = Predictor(Detector(module, [BACKGROUND, "a", "b"], "untrained"), conf=0.0, batch_size=8)
    app = create_app(models=["efficientnet_lite0", detector], batch_window_ms=50, max_batch=16, threads=1)
    with serving(app, 60) as url:
        yield url


def _photos(folder: Path) -> list[Path]:
    from skimage import data

    shapes = {"chelsea": None, "coffee": (300, 200), "astronaut": (200, 360), "rocket": None, "camera": (640, 250)}
    out = []
    for name, size in shapes.items():
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        (img.resize(size) if size else img).save(folder / f"{name}.jpg", quality=92)
        out.append(folder / f"{name}.jpg")
    return out


@pytest.mark.slow
def test_serve_answers_concurrent_clients_as_it_answers_each_alone(server, tmp_path):
    photos = _photos(tmp_path)
    with httpx.Client(base_url=server, timeout=600) as client:
        def ask(route: str, p: Path) -> dict:
            r = client.post(f"/v1/{route}", files=[("file", (p.name, p.read_bytes(), "image/jpeg"))])
            assert r.status_code == 200, r.text
            return r.json()

        for route in ("classify", "detect"):
            alone = {p.name: ask(route, p) for p in photos}
            with ThreadPoolExecutor(8) as pool:  # 8 clients at once: their images share forward passes
                jobs = [(p, pool.submit(ask, route, p)) for p in photos * 3]
                crowd = [(p, job.result()) for p, job in jobs]
            for p, got in crowd:
                want = alone[p.name]
                if route == "classify":
                    assert [x["index"] for x in got["predictions"]] == [x["index"] for x in want["predictions"]]
                    np.testing.assert_allclose([x["probability"] for x in got["predictions"]],
                                               [x["probability"] for x in want["predictions"]], atol=1e-4)
                else:
                    assert len(got["detections"]) == len(want["detections"]) > 0
                    np.testing.assert_allclose([d["box"] for d in got["detections"]],
                                               [d["box"] for d in want["detections"]], atol=1.0)
                    np.testing.assert_allclose([d["score"] for d in got["detections"]],
                                               [d["score"] for d in want["detections"]], atol=1e-4)
        models = {m["task"]: m for m in client.get("/v1/models").json()["models"]}
        assert models["detect"]["classes"] == ["a", "b"]   # /v1/models lists a detector's classes
