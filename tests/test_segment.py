"""Segmentation: mask layouts (index, palette, 0/255), bad pairs reported, a U-Net on the bundled encoder
learns a generated set, tiled prediction equals untiled, masks at the original size and orientation,
evaluate / ONNX export of a run, torchvision segmenters by name from a local weights file."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from interrupt import cli_args, history, kill_after_first_epoch
from PIL import Image, ImageDraw

from visionzoo.errors import UsageError, WeightsUnavailableError
from visionzoo.tasks import segment
from visionzoo.tasks.segment.data import load_seg_dataset
from visionzoo.tasks.segment.infer import label_map

pytestmark = pytest.mark.xdist_group("segment")
MEMBRANE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "membrane"


def _blobs(rng: np.random.Generator, size=(160, 128)) -> tuple[Image.Image, np.ndarray]:
    """Dark textured background with bright discs: the discs are class 1."""
    w, h = size
    img = Image.fromarray(rng.integers(20, 90, (h, w, 3), dtype=np.uint8))
    mask = Image.new("L", size, 0)
    d, m = ImageDraw.Draw(img), ImageDraw.Draw(mask)
    for _ in range(3):
        r = int(rng.integers(10, 24))
        cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, h - r))
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(v) for v in rng.integers(170, 255, 3)))
        m.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    return img, np.asarray(mask)


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("blobs")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(14):
        img, mask = _blobs(rng)
        img.save(root / "images" / f"b{i:02d}.jpg", quality=95)
        Image.fromarray(mask).save(root / "masks" / f"b{i:02d}.png")          # binary 0/255
    Image.new("RGB", (40, 40)).save(root / "images" / "lonely.jpg")             # no mask
    Image.new("L", (50, 50)).save(root / "masks" / "b00_other_size.png")         # no image
    Image.new("RGB", (64, 64)).save(root / "images" / "wrong.jpg")
    Image.new("L", (32, 32)).save(root / "masks" / "wrong.png")                   # other size
    (root / "classes.txt").write_text("background\nblob\n")
    return root


TRAIN = dict(epochs=8, crop_size=96, batch_size=4)


@pytest.fixture(scope="module")
def run(blobs, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("segrun") / "run"
    result = segment.train(blobs, out, log=None, workers=0, **TRAIN)
    return out, result


def test_dataset_pairs_and_bad_files(blobs, tmp_path):
    ds = load_seg_dataset(blobs)
    assert ds.labels == ["background", "blob"] and len(ds.train) + len(ds.val) == 14
    reasons = " | ".join(f"{Path(p).name}: {r}" for p, r in ds.failures)
    for name in ("lonely.jpg", "b00_other_size.png", "wrong"):
        assert name in reasons, reasons
    # Palette masks are read by index, not colour; values outside the classes are reported.
    pal = tmp_path / "pal"
    (pal / "image").mkdir(parents=True)
    (pal / "label").mkdir()
    for i, top in enumerate((2, 5)):
        Image.new("RGB", (32, 32)).save(pal / "image" / f"p{i}.png")
        m = Image.fromarray(np.array([[0] * 32] * 16 + [[top] * 32] * 16, dtype=np.uint8), mode="P")
        m.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [9] * (253 * 3))
        m.save(pal / "label" / f"p{i}.png")
    ds = load_seg_dataset(pal, classes=["bg", "a", "b"], val_split=0)
    assert [Path(s.image).name for s in ds.train] == ["p0.png"]
    assert any("p1.png" in p for p, _ in ds.failures)
    with pytest.raises(UsageError):
        load_seg_dataset(tmp_path / "nowhere")


def test_unet_learns_generated_blobs_and_saves_a_run(run):
    out, result = run
    assert result["report"]["miou"] >= 0.75, result["report"]    # bright discs on a dark ground
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "segment" and config["classes"] == ["background", "blob"]
    for name in ("model.safetensors", "history.csv", "curves.png", "report.json", "confusion_matrix.png"):
        assert (out / name).is_file(), name


def test_a_two_class_run_stores_its_threshold_and_predict_uses_it(run, blobs):
    out, result = run
    config = json.loads((out / "config.json").read_text())
    point = config["operating_point"]
    assert 0 < point["threshold"] < 1 and point["miou"] >= point["miou_at_half"], point
    # The histograms' mIoU is what the saved masks score on the same validation images.
    assert abs(config["metrics"]["val"]["miou"] - point["miou"]) < 2e-3, (config["metrics"]["val"], point)
    image = [str(blobs / "images" / "b03.jpg")]
    share = {conf: segment.predict(out, image, conf=conf)[0]["shares"]["blob"] for conf in (0.02, point["threshold"], 0.98)}
    assert share[0.02] > share[point["threshold"]] > share[0.98], share
    assert segment.predict(out, image)[0]["shares"] == segment.predict(out, image, conf=point["threshold"])[0]["shares"]


@pytest.mark.slow
def test_tiled_prediction_equals_untiled_on_a_3000x2000_image(run):
    from visionzoo.tasks.segment.model import load_segmenter

    seg = load_segmenter(run[0])
    rng = np.random.default_rng(1)
    tiles = [np.asarray(_blobs(rng, (600, 500))[0]) for _ in range(20)]
    big = np.concatenate([np.concatenate(tiles[r * 5:(r + 1) * 5], axis=1) for r in range(4)], axis=0)
    image = torch.from_numpy(big[:2000, :3000].copy()).permute(2, 0, 1)
    with torch.inference_mode():
        whole = label_map(seg.network(), image, tile=None)
        tiled = label_map(seg.network(), image, tile=512, overlap=0.25)
    assert tiled.shape == (2000, 3000)
    assert (whole == tiled).float().mean() > 0.995


def test_onnx_runtime_is_the_cpu_default_and_draws_pytorchs_masks(run, blobs):
    from visionzoo.data.decode import load_rgb

    onnx = segment.load_predictor(run[0], tile=256)
    eager = segment.load_predictor(run[0], tile=256, backend="torch")
    assert (onnx.backend, eager.backend) == ("onnx", "torch")
    photo = load_rgb(blobs / "images" / "b05.jpg")
    big = photo.resize((700, 560))                                 # tiled: 3 x 3 tiles of 256
    for img in (photo, big):
        assert (onnx.mask(img) == eager.mask(img)).mean() > 0.999


def test_predict_masks_at_original_size_and_orientation(run, blobs, tmp_path):
    out, _ = run
    src = Image.open(blobs / "images" / "b01.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6     # stored turned a quarter, displayed upright
    src.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rotated.png", exif=exif)
    src.convert("RGBA").save(tmp_path / "rgba.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG nope")
    rows = segment.predict(out, [tmp_path], masks_dir=tmp_path / "pred")
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["broken.png"]["error"] and by_name["rgba.png"]["error"] is None
    plain = np.asarray(Image.open(segment.predict(out, [blobs / "images" / "b01.jpg"], masks_dir=tmp_path / "p1")[0]["mask_png"]))
    for name in ("rotated.png", "rgba.png"):
        mask = np.asarray(Image.open(by_name[name]["mask_png"]))
        assert mask.shape == (src.height, src.width)
        assert (mask == plain).mean() > 0.97
    assert abs(sum(by_name["rgba.png"]["shares"].values()) - 1) < 1e-4


def test_cli_evaluate_and_onnx_export(run, blobs, tmp_path):
    out, _ = run
    result = subprocess.run([sys.executable, "-m", "visionzoo", "segment", "evaluate", str(out), str(blobs),
                             "--out", str(tmp_path / "ev")], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr          # the bad pairs are listed, and counted
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["miou"] >= 0.7 and {"iou", "dice"} <= set(report["per_class"]["blob"])
    assert (tmp_path / "ev" / "worst.png").is_file()
    onnx_path = segment.export_onnx(out, tmp_path / "seg.onnx")
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    img = np.asarray(Image.open(blobs / "images" / "b02.jpg").convert("RGB").resize((160, 128)), dtype=np.float32)
    logits = session.run(None, {"images": (img / 255).transpose(2, 0, 1)[None]})[0]
    assert logits.shape == (1, 2, 128, 160)


def test_pretrained_segmenter_by_name_from_a_local_weights_file(tmp_path, monkeypatch, photo_dir):
    import torchvision

    monkeypatch.setenv("VISIONZOO_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailableError, match="lraspp_mobilenet_v3_large"):
        segment.load_predictor("lraspp_mobilenet_v3_large")
    model = torchvision.models.get_model("lraspp_mobilenet_v3_large", weights=None, weights_backbone=None)
    torch.save(model.state_dict(), tmp_path / "lraspp.pth")
    predictor = segment.load_predictor("lraspp_mobilenet_v3_large", weights=tmp_path / "lraspp.pth")
    out = predictor([Image.open(photo_dir / "coffee.jpg").convert("RGB")])[0]
    assert out["mask"].shape == (out["height"], out["width"]) and "background" in out["shares"]


@pytest.mark.skipif(not MEMBRANE.is_dir(), reason="../shared/datasets/membrane is not beside the repo")
def test_membrane_set_is_read_as_binary_masks():
    ds = load_seg_dataset(MEMBRANE, val_split=0.2)
    assert len(ds.train) == 16 and len(ds.val) == 4 and not ds.failures
    assert all(s.binary for s in ds.train) and len(ds.labels) == 2


@pytest.mark.parametrize("arch", ["unet", "deeplabv3plus", "fpn"])
def test_each_decoder_builds_on_the_zoo_encoder_and_keeps_the_input_size(arch):
    from visionzoo.tasks.segment.model import SegConfig, build_segmenter

    model = build_segmenter(SegConfig(arch=arch, num_classes=3), pretrained_backbone=False).eval()
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 96, 128)).shape == (1, 3, 96, 128)
    with pytest.raises(UsageError, match="unknown --arch"):
        build_segmenter(SegConfig(arch="segformer"), pretrained_backbone=False)


@pytest.mark.slow
def test_killed_run_resumes_to_the_unbroken_result(run, blobs, tmp_path):
    """kill -9 inside epoch 2, then --resume: the epochs are seeded, so it ends where the unbroken run did."""
    out = tmp_path / "run"
    assert kill_after_first_epoch(["segment", "train", str(blobs), *cli_args(TRAIN)], out) == 1
    result = segment.train(blobs, out, resume=True, log=None)
    assert [r["epoch"] for r in history(out)] == [str(e) for e in range(1, 9)]
    assert result["report"]["miou"] == pytest.approx(run[1]["report"]["miou"], abs=0.02)
    assert result["config"]["best_epoch"] == run[1]["config"]["best_epoch"]


@pytest.mark.slow
def test_two_processes_stay_within_two_points_of_one(run, blobs, tmp_path):
    """--processes 2 (DDP over gloo): each rank trains on its slice of every batch (BatchNorm over its slice)."""
    two = segment.train(blobs, tmp_path / "two", log=None, num_workers=2, **TRAIN)
    assert two["config"]["training"]["num_workers"] == 2
    assert abs(two["report"]["miou"] - run[1]["report"]["miou"]) <= 0.02, (two["report"]["miou"], run[1]["report"])


@pytest.mark.slow
def test_video_gives_shares_per_frame_and_an_overlay_video(run, blobs, tmp_path):
    import av
    from videos import write_video

    out, _ = run
    stills = [Image.open(p).convert("RGB") for p in sorted((blobs / "images").glob("*.jpg"))[:3]]
    video = write_video(tmp_path / "blobs.mp4", [im for im in stills for _ in range(3)], 6)
    rows_file, masks = tmp_path / "shares.jsonl", tmp_path / "masks"
    result = subprocess.run([sys.executable, "-m", "visionzoo", "segment", "predict", str(out), str(video),
                             "--masks", str(masks), "--out", str(rows_file), "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    frames, summary = rows[:-1], rows[-1]
    assert len(frames) == 9 and all(abs(sum(r["shares"].values()) - 1) < 1e-4 for r in frames)
    stills[0].save(tmp_path / "still.png")
    still = segment.predict(out, [tmp_path / "still.png"])[0]["shares"]   # the image: same shares, within codec loss
    assert all(abs(frames[0]["shares"][k] - v) < 0.03 for k, v in still.items()), (frames[0]["shares"], still)
    assert summary["frames"] == 9 and set(summary["mean_shares"]) == set(frames[0]["shares"])
    with av.open(str(masks / "blobs.mp4")) as c:
        drawn = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(drawn) == 9 and drawn[0].shape[:2] == (stills[0].height, stills[0].width)


def test_one_odd_mask_never_redefines_the_classes(blobs, tmp_path):
    """Among 0/255 masks, a mask with values {0, 1, 3} is left out (its values named), and an anti-aliased
    0/255 mask (a patch of 128 on an edge) is kept with its edge snapped; the classes stay two."""
    import shutil

    data = tmp_path / "odd"
    shutil.copytree(blobs / "images", data / "images")
    shutil.copytree(blobs / "masks", data / "masks")
    odd = np.zeros((128, 160), np.uint8)
    odd[10:40, 10:40], odd[50:60, 50:60] = 1, 3
    Image.fromarray(odd).save(data / "masks" / "b01.png")
    soft = np.asarray(Image.open(blobs / "masks" / "b02.png")).copy()
    ys, xs = np.nonzero(soft)
    soft[ys[:40], xs[:40]] = 128                                       # a few anti-aliased edge pixels
    Image.fromarray(soft).save(data / "masks" / "b02.png")
    ds = load_seg_dataset(data, val_split=0)
    assert ds.labels == ["background", "foreground"]
    left_out = {Path(p).name: reason for p, reason in ds.failures}
    assert "b01.png" in left_out and "3" in left_out["b01.png"], left_out
    kept = {Path(s.mask).name: s for s in ds.train}
    assert "b02.png" in kept and kept["b02.png"].binary
    from visionzoo.tasks.segment.data import read_mask, to_classes

    assert set(np.unique(to_classes(read_mask(kept["b02.png"].mask)[0], True)).tolist()) == {0, 1}


def test_train_exits_1_when_pairs_were_left_out(blobs, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "visionzoo", "segment", "train", str(blobs), "--out",
                           str(tmp_path / "r"), "--epochs", "1", "--crop-size", "64", "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "lonely.jpg" in proc.stderr and (tmp_path / "r" / "config.json").is_file()


def test_a_mask_does_not_depend_on_the_other_images_of_the_call(run, blobs):
    predictor = segment.load_predictor(run[0])
    images = [Image.open(p).convert("RGB") for p in sorted((blobs / "images").glob("b0*.jpg"))[:2]]
    images.append(images[0].resize((230, 150)))
    for img, mixed in zip(images, predictor(images)):
        assert np.array_equal(predictor([img])[0]["mask"], mixed["mask"])
