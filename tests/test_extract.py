"""extract: one preprocessing path with classify, layers and pooling, several models, resume after
SIGKILL, flat memory, embed_like."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import torch
from interrupt import kill_group, start_held
from PIL import Image

import visionzoo
from visionzoo.atomic import temporary_name
from visionzoo.errors import UsageError
from visionzoo.tasks.embed import embed_images, embed_like, layer_names, list_layers, pool_features

ENV = {**os.environ, "VISIONZOO_OFFLINE": "1"}


def make_images(folder, n: int, size: int = 48, seed: int = 0) -> list[str]:
    """n small distinct JPEGs (colour gradients plus noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size)
    paths = []
    for i in range(n):
        base = np.stack([np.add.outer(ramp * rng.random(), ramp * rng.random()) / 2] * 3, -1) * rng.random(3)
        img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"img_{i:05d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A saved run folder of a small untrained timm CNN taking 96 px inputs: fast volume runs."""
    from visionzoo.zoo import load_model, save_run_model

    torch.manual_seed(0)
    model = load_model("mobilenetv3_small_050", pretrained=False)
    model.zoo_spec = replace(model.zoo_spec, preprocessing=model.zoo_spec.preprocessing.with_size(96))
    return save_run_model(model, tmp_path_factory.mktemp("tiny") / "run")


@pytest.fixture(scope="module")
def torch_prelogits(photo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract") / "torch"
    result = visionzoo.extract([photo_dir], out, backend="torch")
    return result, *visionzoo.load_features(out)


def test_extract_equals_classify_backbone_and_embed(photo_dir, lite0, torch_prelogits, tmp_path):
    result, paths, matrix = torch_prelogits
    assert result.backends == ["torch"] and matrix.shape == (5, 1280)
    # Same preprocessing path as classify: softmax of extracted logits == classify's probabilities.
    visionzoo.extract([photo_dir], tmp_path / "logits", layer="logits", backend="torch")
    _, logits = visionzoo.load_features(tmp_path / "logits")
    for r, row in zip(visionzoo.classify([photo_dir], model=lite0, top_k=5), logits):
        probs = torch.from_numpy(row).softmax(0)
        assert [p.index for p in r.predictions] == probs.topk(5).indices.tolist()
        np.testing.assert_allclose([p.probability for p in r.predictions], probs.topk(5).values.numpy(), atol=2e-6)
    # ... and the in-memory embedding gives the same vectors.
    emb = embed_images([photo_dir], lite0)
    assert emb.paths == paths
    np.testing.assert_allclose(emb.matrix, matrix, rtol=1e-5, atol=1e-5)
    # The default (ONNX Runtime on CPU) agrees with PyTorch per image.
    auto = visionzoo.extract([photo_dir], tmp_path / "auto")
    assert auto.backends == ["onnx"]
    _, onnx_matrix = visionzoo.load_features(tmp_path / "auto")
    cos = (onnx_matrix * matrix).sum(1) / np.linalg.norm(onnx_matrix, axis=1) / np.linalg.norm(matrix, axis=1)
    assert cos.min() >= 0.9999


def test_layers_pooling_and_normalize(photo_dir, lite0, tmp_path):
    infos = {i.name: i for i in list_layers(lite0)}
    assert infos["blocks.4"].channels == 112 and infos["blocks.4"].reduction == 16
    assert infos["forward_features"].channels == 1280 and infos["pre_logits"].channels == 1280
    assert infos["logits"].channels == 1000
    files = [str(photo_dir / "chelsea.jpg"), str(photo_dir / "camera.jpg")]
    visionzoo.extract(files, tmp_path / "gem", layer="blocks.4", pool="gem", normalize=True, backend="torch")
    manifest = visionzoo.read_manifest(tmp_path / "gem")
    assert (manifest["layer"], manifest["pool"], manifest["normalize"], manifest["dim"]) == ("blocks.4", "gem", True, 112)
    _, gem = visionzoo.load_features(tmp_path / "gem")
    np.testing.assert_allclose(np.linalg.norm(gem, axis=1), 1.0, atol=1e-5)
    # The stage output, pooled by hand, is what was stored.
    from visionzoo.data import eval_transform, load_rgb

    x = torch.stack([eval_transform(lite0.zoo_spec.preprocessing)(load_rgb(f, 224)) for f in sorted(files)])
    with torch.inference_mode():
        stage = lite0.blocks[:5](lite0.bn1(lite0.conv_stem(x)))
    by_hand = torch.nn.functional.normalize(stage.clamp(min=1e-6).pow(3).mean((2, 3)).pow(1 / 3), dim=1)
    np.testing.assert_allclose(gem, by_hand.numpy(), atol=1e-4)
    visionzoo.extract(files, tmp_path / "none.npy", layer="blocks.4", pool="none", backend="torch")
    assert visionzoo.load_features(tmp_path / "none.npy")[1].shape == (2, 112 * 14 * 14)
    t = torch.rand(2, 3, 4, 4)
    assert torch.equal(pool_features(t, "max"), t.amax((2, 3)))
    assert torch.allclose(pool_features(t, "avgmax"), (t.mean((2, 3)) + t.amax((2, 3))) / 2)
    with pytest.raises(UsageError, match="blocks.4"):
        visionzoo.extract(files, tmp_path / "bad", layer="blocks.99")
    with pytest.raises(UsageError, match="already pooled"):
        visionzoo.extract(files, tmp_path / "bad", pool="max")
    assert not (tmp_path / "bad").exists()


def test_torchvision_models_expose_stages():
    model = visionzoo.load_model("torchvision:resnet18", pretrained=False)
    assert {"layer1", "layer4", "pre_logits", "logits"} <= set(layer_names(model))
    layer4 = {i.name: i for i in list_layers(model)}["layer4"]
    assert (layer4.channels, layer4.reduction) == (512, 32)


def test_several_models_decode_each_image_once(photo_dir, tiny_run, torch_prelogits, tmp_path, monkeypatch):
    import visionzoo.batch.reader as reader

    calls = []
    real = reader.load_rgb
    monkeypatch.setattr(reader, "load_rgb", lambda path, *a, **k: calls.append(path) or real(path, *a, **k))
    result = visionzoo.extract([photo_dir], tmp_path / "both", model=f"efficientnet_lite0,{tiny_run}",
                               workers=0, backend="torch")
    assert len(calls) == 5 and len(result.outputs) == 2
    _, ref_paths, ref = torch_prelogits
    paths, lite = visionzoo.load_features(result.outputs[0])
    assert paths == ref_paths
    np.testing.assert_allclose(lite, ref, rtol=1e-5, atol=1e-5)
    tiny_manifest = visionzoo.read_manifest(result.outputs[1])
    assert tiny_manifest["model"] == str(tiny_run) and tiny_manifest["spec"]["preprocessing"]["input_size"][-1] == 96
    assert visionzoo.load_features(result.outputs[1])[1].shape == (5, tiny_manifest["dim"])


@pytest.mark.slow
def test_resume_after_sigkill_matches_a_clean_run(tmp_path):
    files = make_images(tmp_path / "imgs", 160, size=64)
    clean = visionzoo.extract([tmp_path / "imgs"], tmp_path / "clean", partition_size=16, batch_size=8)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "visionzoo", "extract", str(tmp_path / "imgs"), "--out", str(out),
           "--partition-size", "16", "--batch-size", "8", "--quiet"]
    proc = start_held(cmd[3:], "shard:3", tmp_path / "killed.log")  # held after its third shard
    assert kill_group(proc) == -signal.SIGKILL
    written = len(list(out.glob("part-*.parquet")))
    assert written == 3, written
    assert not (out / "_failures.parquet").exists()
    # What a kill in the middle of a shard leaves: a hidden half shard of the dead writer (swept on resume),
    # beside one of a writer still running (kept).
    dead, live = (out / temporary_name("part-00003.parquet"), out / temporary_name("part-00004.parquet"))
    dead = dead.with_name(dead.name.replace(f".{os.getpid()}.", f".{proc.pid}."))
    dead.write_bytes(b"PAR1 half")
    live.write_bytes(b"PAR1 half")
    resumed = subprocess.run(cmd + ["--resume"], env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{160 - 16 * written} computed now" in resumed.stderr  # nothing finished is recomputed
    paths, matrix = visionzoo.load_features(out)
    ref_paths, ref = visionzoo.load_features(clean.outputs[0])
    assert paths == ref_paths == sorted(files) and len(set(paths)) == 160
    np.testing.assert_allclose(matrix, ref, rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in out.iterdir()) == sorted(["_failures.parquet", "_manifest.json", live.name] + [
        f"part-{k:05d}.parquet" for k in range(10)])


def _peak_rss_mb(folder, out, tiny_run) -> float:
    # The flattened first feature map (16 x 48 x 48 floats, 147 kB an image): holding every row
    # of 2,000 images would add ~300 MB to a ~400 MB process, so a leak cannot hide.
    code = textwrap.dedent(f"""
        import resource, visionzoo
        visionzoo.extract([{str(folder)!r}], {str(out)!r}, model={str(tiny_run)!r}, layer="conv_stem",
                          pool="none", dtype="float16", partition_size=100, batch_size=50, workers=1)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    """)
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def test_peak_memory_is_flat_in_the_number_of_images(tmp_path, tiny_run):
    make_images(tmp_path / "few", 200, size=24, seed=1)
    make_images(tmp_path / "many", 2000, size=24, seed=2)
    few = _peak_rss_mb(tmp_path / "few", tmp_path / "few.parquet", tiny_run)
    many = _peak_rss_mb(tmp_path / "many", tmp_path / "many.parquet", tiny_run)
    manifest = visionzoo.read_manifest(tmp_path / "many.parquet")
    assert manifest["count"] == 2000 and manifest["dim"] == 16 * 48 * 48
    assert many <= 1.5 * few, (few, many)


def test_embed_like_reproduces_a_feature_file_and_refuses_other_weights(photo_dir, tiny_run, tmp_path):
    visionzoo.extract([photo_dir], tmp_path / "f", model=str(tiny_run), layer="forward_features", pool="max",
                      normalize=True)
    manifest = visionzoo.read_manifest(tmp_path / "f")
    paths, matrix = visionzoo.load_features(tmp_path / "f")
    again = embed_like(manifest, [photo_dir / "rocket.jpg", photo_dir / "astronaut.jpg"])
    rows = [paths.index(p) for p in again.paths]
    cos = (again.matrix * matrix[rows]).sum(1)  # both unit length
    assert cos.min() >= 0.9999
    with pytest.raises(UsageError, match="differ"):
        embed_like({**manifest, "weights_sha256": "0" * 64}, [photo_dir / "rocket.jpg"])


def _extract_in_fresh_process(inputs, out, model, cache) -> bool:
    """Run extract in a new Python; True when it had to import torch."""
    code = textwrap.dedent(f"""
        import sys, visionzoo
        visionzoo.extract([{str(inputs)!r}], {str(out)!r}, model={str(model)!r})
        print("torch" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], env={**ENV, "VISIONZOO_ONNX_CACHE": str(cache)},
                          capture_output=True, text=True, check=True)
    return done.stdout.split()[-1] == "True"


def test_a_repeat_run_starts_from_the_export_index_without_torch(photo_dir, tiny_run, tmp_path):
    import shutil

    from visionzoo.zoo import load_model, save_run_model

    run = shutil.copytree(tiny_run, tmp_path / "run")
    cache = tmp_path / "onnx"
    assert _extract_in_fresh_process(photo_dir, tmp_path / "first", run, cache)  # builds, exports, remembers
    assert not _extract_in_fresh_process(photo_dir, tmp_path / "again", run, cache)  # ONNX Runtime alone
    first, again = visionzoo.read_manifest(tmp_path / "first"), visionzoo.read_manifest(tmp_path / "again")
    for key in ("model", "spec", "weights_sha256", "preprocessing", "dim", "backend"):
        assert first[key] == again[key], key
    np.testing.assert_array_equal(visionzoo.load_features(tmp_path / "first")[1],
                                  visionzoo.load_features(tmp_path / "again")[1])
    # New weights in the same folder miss the index: the model is rebuilt, and the features change.
    model = load_model(run)
    with torch.no_grad():
        model.get_classifier().weight.mul_(0)
        model.conv_stem.weight.mul_(2)
    save_run_model(model, run, {"task": "classify"})
    assert _extract_in_fresh_process(photo_dir, tmp_path / "retrained", run, cache)
    assert visionzoo.read_manifest(tmp_path / "retrained")["weights_sha256"] != first["weights_sha256"]
    assert not np.allclose(visionzoo.load_features(tmp_path / "retrained")[1],
                           visionzoo.load_features(tmp_path / "first")[1])


def test_a_feature_does_not_depend_on_the_other_images_of_its_batch(photo_dir, tmp_path):
    """Five photos of different sizes and aspect ratios in one run, each photo alone in another: equal rows."""
    together = visionzoo.extract([photo_dir], tmp_path / "together", batch_size=8)
    paths, rows = visionzoo.load_features(together.outputs[0])
    for i, path in enumerate(paths):
        alone = visionzoo.extract([path], tmp_path / f"alone{i}", batch_size=8)
        np.testing.assert_allclose(visionzoo.load_features(alone.outputs[0])[1][0], rows[i], atol=1e-4)


def test_extract_features_equal_timms_preprocessing_to_rounding(photo_dir, lite0, torch_prelogits):
    """extract resizes only the centre crop's box of each photo and normalises by table lookup;
    its features must be those of timm's own transform (resize the whole photo, crop, normalise)
    to resampling rounding: cosine >= 0.9999 on real photos, and the same top label."""
    from visionzoo.data import load_rgb
    from visionzoo.data.transforms import timm_eval_transform

    _, paths, matrix = torch_prelogits
    pre = lite0.zoo_spec.preprocessing
    reference = timm_eval_transform(pre)
    x = torch.stack([reference(load_rgb(p, pre.resize_size)) for p in paths])
    with torch.no_grad():
        want = lite0.forward_head(lite0.forward_features(x), pre_logits=True).numpy()
        labels = lite0(x).argmax(1)
    cos = (matrix * want).sum(1) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(want, axis=1))
    assert cos.min() >= 0.9999 and not np.array_equal(matrix, want), cos  # not a vacuous comparison
    got = np.stack([r.predictions[0].index for r in visionzoo.classify([photo_dir], model=lite0, top_k=1)])
    np.testing.assert_array_equal(got, labels.numpy())
