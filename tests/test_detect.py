"""Detection: VOC / YOLO / COCO sets as labelling tools write them, training on the bundled backbone,
predict in original pixels (EXIF, resize), evaluate with COCO mAP agreeing with predict, Mask R-CNN
on polygons, ONNX export, COCO detectors by name from a local weights file, bad annotations."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from interrupt import cli_args, history, kill_after_first_epoch
from PIL import Image, ImageDraw

from visionzoo.errors import UsageError, WeightsUnavailableError
from visionzoo.tasks import detect
from visionzoo.tasks.detect.datasets import load_detection_data

pytestmark = pytest.mark.xdist_group("detect")
COLOURS = {"red": (220, 40, 40), "blue": (40, 60, 220)}


def _scene(rng: random.Random, size=(160, 120)) -> tuple[Image.Image, list[tuple[str, list[int]]]]:
    """A noisy background with one or two solid rectangles; their classes and boxes."""
    w, h = size
    noise = np.random.default_rng(rng.randrange(1 << 30)).integers(90, 160, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(noise)
    d = ImageDraw.Draw(img)
    objects = []
    for name in rng.sample(list(COLOURS), rng.choice([1, 2])):
        bw, bh = rng.randint(30, 60), rng.randint(30, 50)
        x1, y1 = rng.randint(0, w - bw - 1), rng.randint(0, h - bh - 1)
        d.rectangle([x1, y1, x1 + bw, y1 + bh], fill=COLOURS[name])
        objects.append((name, [x1, y1, x1 + bw, y1 + bh]))
    return img, objects


def _voc_xml(filename: str, size, objects) -> str:
    objs = "".join(f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                   f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects)
    return (f"<annotation><filename>{filename}</filename><path>C:\\Users\\someone\\Desktop\\{filename}</path>"
            f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>")


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("voc")
    (root / "images").mkdir()
    (root / "annotations").mkdir()
    rng = random.Random(0)
    for i in range(16):
        img, objects = _scene(rng)
        img.save(root / "images" / f"img{i:02d}.jpg", quality=95)
        (root / "annotations" / f"img{i:02d}.xml").write_text(_voc_xml(f"img{i:02d}.jpg", img.size, objects))
    (root / "annotations" / "broken.xml").write_text("<annotation><filename>x.jpg</filename>")  # unparsable
    Image.new("RGB", (50, 50)).save(root / "images" / "unlabelled.jpg")                     # no annotation
    return root


# 192: the 160 x 120 scenes fitted into 192 px (192 x 144), about what 128 px gave when it was the short side
TRAIN = dict(epochs=2, image_size=192, batch_size=4, freeze=1, val_split=0.25)


@pytest.fixture(scope="module")
def run(voc, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("detrun") / "run"
    detect.train(voc, out, log=None, **TRAIN)
    return out


def test_voc_reading_reports_bad_files_and_ignores_foreign_paths(voc):
    data = load_detection_data(voc)
    assert data.format == "voc" and sorted(data.classes) == ["blue", "red"] and len(data.samples) == 16
    reasons = {Path(i.file).name: i.reason for i in data.issues}
    assert "broken.xml" in reasons and "unlabelled.jpg" in reasons, reasons
    assert all(Path(s.path).parent == voc / "images" for s in data.samples)  # <path> C:\Users\... ignored


def test_yolo_and_coco_readers_give_pixel_boxes(tmp_path):
    yolo = tmp_path / "yolo"
    (yolo / "images").mkdir(parents=True)
    (yolo / "labels").mkdir()
    Image.new("RGB", (200, 100)).save(yolo / "images" / "a.jpg")
    Image.new("RGB", (200, 100)).save(yolo / "images" / "b.jpg")
    (yolo / "labels" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n")
    (yolo / "labels" / "b.txt").write_text("0 0.5 0.5 0.2 0.4\n7 0.5 0.5 0.1 0.1\n")
    (yolo / "data.yaml").write_text("names: [cat, dog]\n")
    data = load_detection_data(yolo)
    assert data.format == "yolo" and data.classes == ["cat", "dog"] and len(data.samples) == 1
    np.testing.assert_allclose(data.samples[0].boxes[0], [80, 30, 120, 70])
    assert any("b.txt" in i.file and "class 7" in i.reason for i in data.issues)  # reported, image left out
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100}],
            "categories": [{"id": 3, "name": "dog"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 20, 30, 40], "iscrowd": 0,
                             "area": 1200}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    data = load_detection_data(yolo / "images", tmp_path / "c.json")
    np.testing.assert_allclose(data.samples[0].boxes[0], [10, 20, 40, 60])
    with pytest.raises(UsageError, match="annotation format"):
        load_detection_data(tmp_path / "yolo" / "labels")


def test_run_folder_predict_and_evaluate_agree(run, voc, tmp_path):
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "detect" and sorted(config["classes"]) == ["blue", "red"]
    assert config["dataset"]["val_images"] == 4 and len(config["dataset"]["val_split"]["files"]) == 4
    assert (run / "curves.png").is_file() and (run / "report.json").is_file()
    from visionzoo.tasks.detect.training import PROPOSALS, fewest_proposals

    measured = {int(k): tuple(v) for k, v in config["proposals_val"].items()}   # tried on the val images
    assert set(PROPOSALS) <= set(measured) and config["detector"]["proposals"] == fewest_proposals(measured)
    report = detect.evaluate(run, voc, out=tmp_path / "ev")
    for key in ("map50", "map", "precision", "recall", "per_class"):
        assert key in report
    assert 0 <= report["map"] <= report["map50"] <= 1
    assert (tmp_path / "ev" / "pr_curve.png").is_file() and (tmp_path / "ev" / "worst.png").is_file()
    scored = {p["path"]: p for p in json.loads((tmp_path / "ev" / "predictions.json").read_text())}
    some = sorted(scored)[:3]
    predicted = detect.predict(run, some, conf=0.001)
    for p in predicted:
        got = [d["box"] for d in p["detections"]]
        want = [d["box"] for d in scored[p["path"]]["detections"]]
        np.testing.assert_allclose(got, want, atol=0.05)


def test_predict_is_in_original_pixels_for_rotated_and_resized_inputs(run, voc, tmp_path):
    src = Image.open(voc / "images" / "img00.jpg")
    big = src.resize((src.width * 3, src.height * 3))
    big.save(tmp_path / "big.jpg", quality=95)
    rotated = src.transpose(Image.Transpose.ROTATE_90)   # stored sideways, EXIF says turn it back
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(tmp_path / "rotated.png", exif=exif)  # lossless: same pixels once turned
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    results = detect.predict(run, [voc / "images" / "img00.jpg", tmp_path / "big.jpg", tmp_path / "rotated.png",
                                   tmp_path / "bad.jpg"], conf=0.001, draw=tmp_path / "drawn")
    base, big_r, rot_r, bad = (next(r for r in results if Path(r["path"]).name == name)
                               for name in ("img00.jpg", "big.jpg", "rotated.png", "bad.jpg"))
    assert (big_r["width"], big_r["height"]) == big.size and (rot_r["width"], rot_r["height"]) == src.size
    assert bad["error"] and "bad.jpg" in bad["path"]
    top = base["detections"][0]["box"]
    np.testing.assert_allclose(rot_r["detections"][0]["box"], top, atol=0.5)        # same photo, same place
    scaled = np.array(big_r["detections"][0]["box"]) / 3                               # 3x the pixels, same place
    assert max(_iou(scaled, np.array(d["box"])) for d in base["detections"][:5]) > 0.6
    assert len(list((tmp_path / "drawn").rglob("*.jpg"))) == 3


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union)


def test_cli_exit_codes_and_onnx_export(run, voc, tmp_path):
    result = subprocess.run([sys.executable, "-m", "visionzoo", "detect", "predict", str(run),
                             str(voc / "images" / "img01.jpg"), str(tmp_path / "missing.jpg"), "--out",
                             str(tmp_path / "p.json")], capture_output=True, text=True)
    assert result.returncode == 2 and "missing.jpg" in result.stderr   # a path that does not exist: usage error
    generic = subprocess.run([sys.executable, "-m", "visionzoo", "export", str(run), "--out", str(tmp_path / "g.onnx")],
                             capture_output=True, text=True)   # the generic export, checked against PyTorch inside
    assert generic.returncode == 0 and (tmp_path / "g.onnx").is_file(), generic.stderr
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["visionzoo"])
    assert meta["task"] == "detect" and sorted(meta["classes"]) == ["blue", "red"]
    x = np.asarray(Image.open(voc / "images" / "img01.jpg").convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255
    boxes, scores, labels = session.run(None, {"image": np.ascontiguousarray(x)})
    torch_top = detect.load_predictor(str(run), conf=0.0)([Image.open(voc / "images" / "img01.jpg").convert("RGB")])
    assert scores.size   # ONNX's best box is one of PyTorch's best (the Predictor resizes the photo first)
    assert max(_iou(boxes[scores.argmax()], np.array(d["box"])) for d in torch_top[0]["detections"][:5]) > 0.8


@pytest.mark.slow
def test_maskrcnn_trains_on_coco_polygons_and_predicts_masks(tmp_path):
    rng = random.Random(1)
    images, anns = [], []
    (tmp_path / "imgs").mkdir()
    for i in range(6):
        img, objects = _scene(rng)
        img.save(tmp_path / "imgs" / f"m{i}.png")
        images.append({"id": i + 1, "file_name": f"m{i}.png", "width": img.width, "height": img.height})
        for name, (x1, y1, x2, y2) in objects:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1 if name == "red" else 2,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
                         "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]]})
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    out = tmp_path / "mask_run"
    detect.train(tmp_path / "imgs", out, annotations=tmp_path / "coco.json", arch="maskrcnn", log=None, epochs=1,
                 image_size=128, batch_size=2, val_split=0.34)
    preds = detect.predict(out, [tmp_path / "imgs" / "m0.png"], conf=0.0, masks_dir=tmp_path / "masks")
    dets = preds[0]["detections"]
    assert dets and all("mask" in d and Path(d["mask_png"]).is_file() for d in dets)
    mask = np.asarray(Image.open(dets[0]["mask_png"]))
    assert mask.shape == (120, 160)
    plain = {**coco, "annotations": [{k: v for k, v in a.items() if k != "segmentation"} for a in anns]}
    (tmp_path / "boxes.json").write_text(json.dumps(plain))
    with pytest.raises(UsageError, match="masks"):   # boxes-only data cannot train Mask R-CNN
        detect.train(tmp_path / "imgs", tmp_path / "r2", annotations=tmp_path / "boxes.json", arch="maskrcnn",
                     log=None, epochs=1, image_size=128)


def test_coco_detector_by_name_from_a_local_weights_file(tmp_path, monkeypatch, photo_dir):
    import torch
    import torchvision

    monkeypatch.setenv("VISIONZOO_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailableError, match="ssdlite320_mobilenet_v3_large"):
        detect.load_predictor("ssdlite320_mobilenet_v3_large")
    model = torchvision.models.get_model("ssdlite320_mobilenet_v3_large", weights=None, weights_backbone=None)
    torch.save(model.state_dict(), tmp_path / "ssd.pth")
    predictor = detect.load_predictor("ssdlite320_mobilenet_v3_large", weights=tmp_path / "ssd.pth", conf=0.0)
    out = predictor([Image.open(photo_dir / "chelsea.jpg").convert("RGB")])[0]
    labels = {d["label"] for d in out["detections"]}
    assert labels and labels <= set(torchvision.models.get_model_weights("ssdlite320_mobilenet_v3_large")
                                    .DEFAULT.meta["categories"])


@pytest.mark.slow
def test_killed_run_resumes_to_the_unbroken_result(run, voc, tmp_path):
    """kill -9 inside epoch 2, then --resume: the epochs are seeded, so it ends where the unbroken run did."""
    out = tmp_path / "run"
    assert kill_after_first_epoch(["detect", "train", str(voc), *cli_args(TRAIN)], out) == 1
    lines: list[str] = []
    result = detect.train(voc, out, resume=True, log=lines.append)
    assert any(line.startswith("resuming after epoch 1 of 2") for line in lines), lines
    assert [r["epoch"] for r in history(out)] == ["1", "2"] and not (out / "checkpoint.pt").exists()
    unbroken = json.loads((run / "config.json").read_text())
    assert result["config"]["status"] == "complete" and result["config"]["best_epoch"] == unbroken["best_epoch"]
    assert result["config"]["metrics"]["val"]["map50"] == pytest.approx(unbroken["metrics"]["val"]["map50"], abs=0.02)


@pytest.mark.slow
def test_two_processes_train_as_one(voc, tmp_path):
    """--processes 2 (DDP over gloo): each rank gets its slice of every batch, each image its own augmentation
    and anchor samples, so the ranks train the one-process model (images of one size: equal padding)."""
    same = dict(TRAIN, scales=(1.0,), augment="none")
    detect.train(voc, tmp_path / "one", log=None, **same)
    two = detect.train(voc, tmp_path / "two", log=None, num_workers=2, **same)
    assert two["config"]["training"]["num_workers"] == 2 and sorted(p.name for p in (tmp_path / "two").iterdir()) \
        == sorted(p.name for p in (tmp_path / "one").iterdir())
    for a, b in zip(history(tmp_path / "one"), history(tmp_path / "two"), strict=True):
        assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=0.02)
    first = [float(h[0]["val_map50"]) for h in (history(tmp_path / "one"), history(tmp_path / "two"))]
    assert abs(first[0] - first[1]) <= 0.02, first
    assert detect.predict(tmp_path / "two", [voc / "images" / "img01.jpg"], conf=0.001)[0]["detections"]


@pytest.mark.slow
def test_video_track_cli_writes_frames_tracks_and_a_playable_video(run, tmp_path):
    """`detect predict RUN VIDEO --track`: a row per frame at PyAV's times, boxes with stable track ids
    on the two moving rectangles, a per-track summary, and an annotated mp4 with every frame."""
    import av
    from videos import moving_boxes

    video = tmp_path / "moving.mp4"
    truth = moving_boxes(video, n=30)
    out, drawn = tmp_path / "frames.jsonl", tmp_path / "drawn"
    # --conf 0.5: the operating point of this two-epoch detector (chosen on its 4 validation photos, about
    # 0.9) keeps only the red rectangle; tracks from a run's own point: test_video.py and the benchmark.
    result = subprocess.run([sys.executable, "-m", "visionzoo", "detect", "predict", str(run), str(video), "--track",
                             "--conf", "0.5", "--draw", str(drawn), "--out", str(out), "--quiet"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    frames, summary = rows[:-1], rows[-1]
    with av.open(str(video)) as c:
        times = [float(f.time) for f in c.decode(video=0)]
    assert [r["time"] for r in frames] == pytest.approx(times) and [r["frame"] for r in frames] == list(range(30))
    assert all("track_id" in d for r in frames for d in r["detections"])
    assert summary["path"] == str(video) and summary["error"] is None and summary["tracks"]
    assert {"track_id", "label", "first_seen", "last_seen", "frames", "mean_score"} <= set(summary["tracks"][0])
    # This two-epoch detector boxes each rectangle loosely and more than once, but one id stays on each
    # rectangle through most of the video (benchmarks/video_bench.py scores tracking with a real detector).
    for oid in (1, 2):
        frames_of: dict[int, int] = {}
        for objects, r in zip(truth, frames):
            box = np.array(next(b for i, _, b in objects if i == oid))
            for tid in {d["track_id"] for d in r["detections"] if d["track_id"] is not None
                        and _iou(box, np.array(d["box"])) >= 0.3}:
                frames_of[tid] = frames_of.get(tid, 0) + 1
        assert frames_of and max(frames_of.values()) >= 0.6 * len(frames), (oid, frames_of)
    with av.open(str(drawn / "moving.mp4")) as c:
        assert [round(float(f.time), 3) for f in c.decode(video=0)] == pytest.approx(times, abs=1e-3)


def test_train_exits_1_when_annotations_were_left_out(voc, tmp_path):
    """The same exit codes as every command: the broken XML and the unlabelled image are named, the run is
    saved without them, and the status is 1."""
    proc = subprocess.run([sys.executable, "-m", "visionzoo", "detect", "train", str(voc), "--out", str(tmp_path / "r"),
                           "--epochs", "1", "--image-size", "64", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "broken.xml" in proc.stderr and "left out" in proc.stderr and (tmp_path / "r" / "config.json").is_file()


def test_an_image_gets_the_same_boxes_alone_and_in_a_mixed_batch(run, voc, tmp_path):
    """A portrait, a landscape and an enlarged copy in one call, and each alone: the same boxes and scores
    (only images of one network size share a forward pass, so padding never changes an answer)."""
    src = Image.open(voc / "images" / "img03.jpg").convert("RGB")
    images = [src, src.transpose(Image.Transpose.ROTATE_90), src.resize((400, 220)),
              Image.open(voc / "images" / "img05.jpg").convert("RGB")]
    predictor = detect.load_predictor(str(run), conf=0.001, batch_size=4)
    together = predictor(images)
    for img, mixed in zip(images, together):
        alone = predictor([img])[0]
        assert len(alone["detections"]) == len(mixed["detections"]) > 0
        for a, b in zip(alone["detections"], mixed["detections"]):
            np.testing.assert_allclose(a["box"], b["box"], atol=1.0)
            assert a["score"] == pytest.approx(b["score"], abs=1e-4) and a["label"] == b["label"]


@pytest.mark.slow
def test_fine_tune_a_coco_detector_offline_from_a_weights_file(voc, tmp_path, monkeypatch):
    """`--from NAME`: torchvision's COCO detector, weights from a file (offline), its head replaced for the
    user's classes, every other tensor taken from the file; offline without the file, one clear message."""
    import torch
    import torchvision

    from visionzoo.tasks.detect.detector import load_detector

    monkeypatch.setenv("VISIONZOO_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    with pytest.raises(WeightsUnavailableError, match=name):
        detect.train(voc, tmp_path / "r0", start_from=name, epochs=1, log=None)
    coco = torchvision.models.get_model(name, weights=None, weights_backbone=None)
    torch.save(coco.state_dict(), tmp_path / "coco.pth")
    lines: list[str] = []
    result = detect.train(voc, tmp_path / "run", start_from=name, weights=str(tmp_path / "coco.pth"), epochs=1,
                          image_size=128, batch_size=4, freeze=2, val_split=0.25, log=lines.append)
    assert any("of the head are new" in line for line in lines), lines
    config = result["config"]
    assert config["detector"]["source"] == name and config["arch"] == "fasterrcnn"
    assert sorted(config["classes"]) == ["blue", "red"] and "operating_point" in config
    tuned = load_detector(tmp_path / "run").module.state_dict()
    first = next(k for k in coco.state_dict() if k.startswith("backbone.body") and k.endswith("weight"))
    assert torch.equal(tuned[first], coco.state_dict()[first])          # a frozen trunk tensor: the file's
    assert tuned["roi_heads.box_predictor.cls_score.weight"].shape[0] == 3  # background + 2 classes
    assert detect.predict(tmp_path / "run", [voc / "images" / "img01.jpg"], conf=0.0)[0]["error"] is None


def test_onnx_runtime_gives_pytorchs_boxes(run, voc):
    """On a CPU, predict runs the run's cached ONNX export; its boxes are PyTorch's."""
    images = [Image.open(voc / "images" / f"img{i:02d}.jpg").convert("RGB") for i in (2, 7)]
    onnx = detect.load_predictor(str(run), conf=0.05)
    torch_ = detect.load_predictor(str(run), conf=0.05, backend="torch")
    assert (onnx.backend, torch_.backend) == ("onnx", "torch")
    for a, b in zip(onnx(images), torch_(images)):
        assert [d["label"] for d in a["detections"]] == [d["label"] for d in b["detections"]]
        np.testing.assert_allclose([d["box"] for d in a["detections"]], [d["box"] for d in b["detections"]], atol=1.0)
        np.testing.assert_allclose([d["score"] for d in a["detections"]], [d["score"] for d in b["detections"]],
                                   atol=1e-3)


def test_array_suppression_is_torchvisions_nms_then_drops_boxes_inside_better_ones():
    """The operating point's NumPy suppression keeps what torchvision's batched_nms keeps, and box-in-box
    suppression drops a box only for a better box that is itself kept."""
    import torch
    from torchvision.ops import batched_nms

    from visionzoo.tasks.detect.operating import suppress_arrays

    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(0, 30))
        xy, wh = rng.uniform(0, 100, (n, 2)), rng.uniform(5, 60, (n, 2))
        boxes, scores = np.concatenate([xy, xy + wh], 1).astype(np.float32), rng.uniform(0, 1, n).astype(np.float32)
        labels, iou = rng.integers(0, 3, n), float(rng.choice([0.3, 0.5]))
        want = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), iou)
        assert suppress_arrays(boxes, scores, labels, iou, None).tolist() == want.tolist()
    # B lies inside A and C inside B, but C is not inside A: B goes for A, so C (whose container went) stays
    boxes = np.array([[0, 0, 100, 100], [40, 40, 120, 120], [70, 70, 118, 118]], np.float32)
    scores, labels = np.array([0.9, 0.8, 0.7], np.float32), np.zeros(3, int)
    kept = suppress_arrays(boxes, scores, labels, 0.99, 0.5)
    assert kept.tolist() == [0, 2], kept


def test_runs_saved_before_a_default_changed_keep_their_network():
    """A config.json without the newer keys rebuilds the network it was trained as (LEGACY), not today's."""
    from visionzoo.tasks.detect.config import LEGACY, DetectorConfig

    old = {"arch": "fasterrcnn", "num_classes": 1, "img_size": 384, "mean": [0.5] * 3, "std": [0.5] * 3}
    cfg = DetectorConfig.from_dict(old)
    assert (cfg.image_size, cfg.max_size, cfg.fpn_channels, cfg.box_head, cfg.proposals) == (384, 640, 128, 1024, 500)
    assert all(getattr(cfg, k) == v for k, v in LEGACY.items())
    assert DetectorConfig.from_dict(DetectorConfig().to_dict()) == DetectorConfig()   # a new run: what it saved


def test_predict_from_a_cached_onnx_export_never_imports_torch(run, voc):
    """Start-up on a CPU is the config and the ONNX session: once the export is cached, no torch."""
    photo = str(voc / "images" / "img04.jpg")
    want = detect.predict(run, [photo])[0]["detections"]          # exports (with torch) and caches
    code = ("import sys, json; from visionzoo.tasks.detect import predict; "
            f"rows = predict({str(run)!r}, [{photo!r}], device='cpu'); "
            "print(json.dumps([rows[0]['detections'], 'torch' in sys.modules]))")
    got, torch_loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                  check=True).stdout)
    assert not torch_loaded and got == want



def test_the_predict_command_never_imports_torch_either(run, voc, tmp_path):
    """The whole `visionzoo detect predict` process, as a user starts it, on a CPU with the export cached: the
    same boxes as the Python API's, and no torch imported (start-up)."""
    photo, out = str(voc / "images" / "img04.jpg"), tmp_path / "boxes.json"
    want = detect.predict(run, [photo])[0]["detections"]          # exports (with torch) and caches
    code = ("import sys; from visionzoo.cli import main\n"
            f"sys.argv = ['visionzoo', 'detect', 'predict', {str(run)!r}, {photo!r}, '--out', {str(out)!r}, '-q']\n"
            "try: main()\nexcept SystemExit as exc: assert not exc.code, exc.code\nprint('torch' in sys.modules)")
    torch_loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert torch_loaded.split()[-1] == "False" and json.loads(out.read_text())[0]["detections"] == want

def test_large_jpegs_decode_at_the_size_the_detector_letterboxes_to(tmp_path):
    """JPEG draft mode goes down to the network's size: the long side's cap counts too."""
    from visionzoo.data.decode import load_rgb

    Image.new("RGB", (1600, 800), (90, 120, 60)).save(tmp_path / "wide.jpg")
    assert load_rgb(str(tmp_path / "wide.jpg"), target_size=384).size == (800, 400)
    assert load_rgb(str(tmp_path / "wide.jpg"), target_size=384, max_side=384).size == (400, 200)


def test_the_fewest_proposals_that_cost_no_accuracy_against_the_most():
    """Measured on the raccoons: 100 proposals are within 0.01 of 300's; and a count always qualifies (the most),
    even when the best mAP50 and the best mAP50-95 come from different counts."""
    from visionzoo.tasks.detect.training import fewest_proposals

    raccoons = {300: (0.9892, 0.5431), 100: (0.9829, 0.5568), 50: (0.9686, 0.5415), 25: (0.9669, 0.5207)}
    assert fewest_proposals(raccoons) == 100
    assert fewest_proposals({300: (0.99, 0.40), 100: (0.95, 0.60), 50: (0.90, 0.30)}) == 300


def test_the_export_pads_the_backbone_by_constants_and_gives_the_unfolded_boxes(run, tmp_path, monkeypatch):
    """The TF-ported backbone's run-time "same" padding is exported as constant Conv pads (no Pad, no shape
    arithmetic in the trunk), and the graph answers exactly as the export that pads at run time."""
    import contextlib

    import onnx
    import onnxruntime as ort

    from visionzoo.tasks.detect import export
    from visionzoo.tasks.detect.detector import load_detector

    folded = export.export_detector(load_detector(run), tmp_path / "folded.onnx")
    monkeypatch.setattr(export, "constant_padding", lambda module: contextlib.nullcontext(0))
    plain = export.export_detector(load_detector(run), tmp_path / "plain.onnx")
    trunk = lambda path: [n.op_type for n in onnx.load(str(path)).graph.node if "/backbone/body/" in n.name]  # noqa: E731
    assert "Pad" in trunk(plain) and "Pad" not in trunk(folded) and "Shape" not in trunk(folded)
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (folded, plain)]
    rng = np.random.default_rng(0)
    for h, w in ((144, 192), (97, 150), (192, 61)):     # any size: the transform pads it to a multiple of 32
        x = rng.random((3, h, w), dtype=np.float32)
        a, b = (s.run(None, {"image": x}) for s in sessions)
        assert a[0].shape == b[0].shape and all(np.allclose(u, v, atol=1e-4) for u, v in zip(a, b))


def test_the_export_check_finds_the_same_boxes_in_any_order_and_refuses_a_moved_one():
    """ONNX Runtime and PyTorch may list boxes of near-equal scores in another order (dozens of cells a tile
    did: a Mask R-CNN's export was refused and predict fell back to PyTorch); the check matches boxes, not
    rows, and still refuses a box off by a pixel or with another label."""
    from visionzoo.tasks.detect.export import _found

    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 300, (40, 2, 2)).astype(np.float32)
    boxes, labels = np.sort(corners, axis=1).reshape(40, 4), rng.integers(1, 3, 40)
    order = rng.permutation(40)
    assert _found(boxes, labels, boxes[order] + 0.2, labels[order])
    moved = boxes.copy()
    moved[7, 2] += 1.0
    assert not _found(boxes, labels, moved[order], labels[order])
    relabelled = labels.copy()
    relabelled[3] = 3 - relabelled[3]
    assert not _found(boxes, labels, boxes[order], relabelled[order])
    assert not _found(boxes[:1], labels[:1], boxes[:0], labels[:0]) and _found(boxes[:0], labels[:0], boxes, labels)


def test_the_exported_rpn_decodes_only_the_anchors_it_keeps_and_gives_the_same_boxes(run, voc, tmp_path,
                                                                                       monkeypatch):
    """The export's RPN makes and decodes only its per-level top anchors (no grid of every anchor: no Range in
    the anchor generator), and the graph answers exactly as the export that decodes every anchor, on the
    run's photos and on noise of any size (many proposals, every level)."""
    import contextlib

    import onnx
    import onnxruntime as ort

    from visionzoo.tasks.detect import export
    from visionzoo.tasks.detect.detector import load_detector

    selected = export.export_detector(load_detector(run), tmp_path / "selected.onnx")
    monkeypatch.setattr(export, "decoded_after_selection", lambda module: contextlib.nullcontext(0))
    every = export.export_detector(load_detector(run), tmp_path / "every.onnx")
    anchors = lambda path: [n.op_type for n in onnx.load(str(path)).graph.node if "anchor_generator" in n.name]  # noqa: E731
    assert "Range" in anchors(every) and "Range" not in anchors(selected)
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (selected, every)]
    rng = np.random.default_rng(0)
    photos = [np.asarray(Image.open(voc / "images" / f"img{i:02d}.jpg").convert("RGB"), np.float32).transpose(2, 0, 1)
              / 255 for i in (1, 5)]
    found = 0
    for x in [*photos, *(rng.random((3, h, w), dtype=np.float32) for h, w in ((144, 192), (97, 150), (192, 61)))]:
        a, b = (s.run(None, {"image": np.ascontiguousarray(x)}) for s in sessions)
        assert a[0].shape == b[0].shape and all(np.array_equal(u, v) for u, v in zip(a, b))
        found += len(a[0])
    assert found > 0


def test_int8_quantizes_the_trunk_on_the_runs_own_photos_and_keeps_its_boxes(run, voc, tmp_path, monkeypatch):
    """--precision int8: only the backbone is quantized (QDQ around its convolutions), calibrated on the photos
    the run was trained on; the confident boxes stay where fp32 puts them. GPU / torch requests are refused,
    and so is a run whose photos are gone when no --calibration folder is given."""
    import shutil

    import onnx

    monkeypatch.setenv("VISIONZOO_ONNX_CACHE", str(tmp_path / "cache"))
    images = [Image.open(voc / "images" / f"img{i:02d}.jpg").convert("RGB") for i in range(16)]
    fp32 = detect.load_predictor(str(run))
    int8 = detect.load_predictor(str(run), precision="int8")
    quantized = [p for p in (tmp_path / "cache" / "detect" / "int8").glob("*.onnx") if ".ort-" not in p.name]
    assert len(quantized) == 1 and int8.backend == "onnx"
    nodes = onnx.load(str(quantized[0])).graph.node
    dequantized = {o for n in nodes if n.op_type == "DequantizeLinear" for o in n.output}
    int8_weights = [n.name for n in nodes if n.op_type == "Conv" and n.input[1] in dequantized]
    fp32_weights = [n.name for n in nodes if n.op_type == "Conv" and n.input[1] not in dequantized]
    assert int8_weights and all("/backbone/body/" in name for name in int8_weights)   # the trunk's, and only
    assert fp32_weights and not any("/backbone/body/" in name for name in fp32_weights)
    found = [max((_iou(np.array(d["box"]), np.array(e["box"])) for e in b["detections"] if e["label"] == d["label"]),
                 default=0) > 0.5 for a, b in zip(fp32(images), int8(images)) for d in a["detections"] if d["score"] > 0.5]
    assert len(found) >= 3 and np.mean(found) >= 0.8, found   # fp32's confident boxes: int8 finds them too
    with pytest.raises(UsageError, match="CPU"):
        detect.load_predictor(str(run), precision="int8", device="cuda")
    with pytest.raises(UsageError, match="ONNX Runtime"):
        detect.load_predictor(str(run), precision="int8", backend="torch")
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    config = json.loads((moved / "config.json").read_text())
    config["dataset"]["source"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="--calibration"):
        detect.load_predictor(str(moved), precision="int8")
    assert detect.load_predictor(str(moved), precision="int8", calibration=voc / "images").backend == "onnx"


def test_an_explicit_image_size_warns_once_that_it_is_now_the_square_side(tmp_path, monkeypatch):
    """--image-size used to be the short side; passed explicitly it now warns (once) what it means, and the
    default says nothing."""
    import warnings

    from visionzoo.tasks.detect import training

    def warnings_of(**options) -> list[str]:
        with warnings.catch_warnings(record=True) as caught, pytest.raises(UsageError):
            warnings.simplefilter("always")
            detect.train(tmp_path / "missing", tmp_path / "out", log=None, **options)
        return [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]

    monkeypatch.setattr(training, "_SIZE_WARNED", [])
    assert warnings_of() == []
    first = warnings_of(image_size=512)
    assert len(first) == 1 and "side of the square" in first[0] and "short side before" in first[0]
    assert warnings_of(image_size=512) == []                      # once a process
    monkeypatch.setattr(training, "_SIZE_WARNED", [])
    cli = [sys.executable, "-m", "visionzoo", "detect", "train", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]
    quiet = subprocess.run(cli, capture_output=True, text=True)
    loud = subprocess.run([*cli, "--image-size", "512"], capture_output=True, text=True)
    assert quiet.returncode == loud.returncode == 2
    assert "side of the square" in loud.stderr and "side of the square" not in quiet.stderr
