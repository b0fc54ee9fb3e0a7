"""Robust decoding: every awkward mode converts right; every bad file fails with a clear reason."""
from __future__ import annotations

import numpy as np
import pytest
from badfiles import bomb_png, write_bad_files, write_odd_modes
from PIL import Image

from visionzoo.data import ImageDecodeError, expand_inputs, load_rgb
from visionzoo.errors import UsageError


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    img.paste((0, 0, 255), (20, 0, 40, 20))  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # viewer rotates 90 deg clockwise: left half ends up on top
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = np.asarray(load_rgb(str(tmp_path / "r.jpg")))
    assert out.shape == (40, 20, 3)
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 60    # top is red
    assert out[35, 10, 2] > 200 and out[35, 10, 0] < 60  # bottom is blue


def test_modes_convert_to_8bit_rgb(tmp_path, photo_dir):
    photo = Image.open(photo_dir / "coffee.jpg")
    files = write_odd_modes(tmp_path, photo)
    gray_ref = np.asarray(photo.convert("L"), dtype=np.float64)
    for kind, path in files.items():
        img = load_rgb(str(path))
        assert img.mode == "RGB", kind
        arr = np.asarray(img, dtype=np.float64)
        if kind in ("gray", "gray16"):  # 16-bit is scaled to 8 bits, not clipped
            assert np.abs(arr[..., 0] - gray_ref).mean() < 1.0, kind
        if kind in ("rgba", "cmyk", "palette"):
            assert arr.shape[:2] == gray_ref.shape and 60 < arr.mean() < 200, kind


def test_transparent_pixels_become_white(tmp_path):
    Image.new("RGBA", (8, 8), (10, 200, 10, 0)).save(tmp_path / "t.png")
    assert np.asarray(load_rgb(str(tmp_path / "t.png"))).min() == 255


@pytest.mark.parametrize("kind,reason", [
    ("truncated", "truncated"), ("empty", "empty file"), ("not_image", "not an image"),
    ("unreadable", "cannot read"), ("bomb", "too large"),
])
def test_bad_files_raise_with_reason(kind, reason, tmp_path, photo_dir):
    path = write_bad_files(tmp_path, photo_dir / "coffee.jpg")[kind]
    with pytest.raises(ImageDecodeError) as info:
        load_rgb(str(path))
    assert reason in info.value.reason and info.value.path == str(path)


def test_large_jpeg_is_decoded_in_draft_mode(tmp_path, photo_dir):
    big = Image.open(photo_dir / "coffee.jpg").resize((3200, 2400))
    big.save(tmp_path / "big.jpg", quality=90)
    small = load_rgb(str(tmp_path / "big.jpg"), target_size=256)
    assert 256 <= min(small.size) < 2 * 256  # DCT-scaled to just above the resize size
    assert small.size[0] / small.size[1] == 3200 / 2400
    assert load_rgb(str(tmp_path / "big.jpg")).size == (3200, 2400)


def test_bomb_limit_is_configurable(tmp_path):
    bomb_png(tmp_path / "b.png", 5000, 5000)
    with pytest.raises(ImageDecodeError, match="too large"):
        load_rgb(str(tmp_path / "b.png"), max_pixels=1_000_000)


def test_expand_inputs_folders_globs_and_errors(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/1.jpg", "a/b/2.PNG", "a/readme.txt", "a/.hidden.jpg", "3.webp"):
        (tmp_path / name).write_bytes(b"x")
    listed = expand_inputs([tmp_path / "a", str(tmp_path / "*.webp"), tmp_path / "a" / "1.jpg"])
    assert listed.files == sorted([str(tmp_path / "3.webp"), str(tmp_path / "a/1.jpg"), str(tmp_path / "a/b/2.PNG")])
    assert listed.skipped == [str(tmp_path / "a/readme.txt")]
    assert expand_inputs(tmp_path / "a" / "readme.txt").files == [str(tmp_path / "a" / "readme.txt")]
    with pytest.raises(UsageError, match="no such file"):
        expand_inputs([tmp_path / "missing.jpg"])
    with pytest.raises(UsageError, match="no files match"):
        expand_inputs([str(tmp_path / "*.gif")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no image files"):
        expand_inputs([tmp_path / "empty"])


@pytest.mark.parametrize("pre", [
    dict(),                                                            # timm's ImageNet default, bicubic
    dict(input_size=(3, 260, 260), interpolation="bilinear", crop_pct=1.0, mean=(0.5,) * 3, std=(0.5,) * 3),
    dict(input_size=(3, 240, 240), crop_pct=0.882),
    dict(crop_pct=1.15),                                               # crop larger than the resize: padding
    dict(crop_mode="squash"),                                          # timm's own transform, as arrays
])
def test_array_transform_equals_the_torch_transform(pre, photo_dir):
    """The PIL / NumPy transform every command uses gives timm's numbers: exactly where nothing is
    resized, to resampling rounding where it resizes only the centre crop's box (a few of the
    pixels one or two levels apart), never a shifted or rescaled crop."""
    from visionzoo.data import eval_array_transform, eval_transform
    from visionzoo.data.transforms import timm_eval_transform
    from visionzoo.zoo.spec import Preprocessing

    p = Preprocessing(**pre)
    reference, arrays, tensors = timm_eval_transform(p), eval_array_transform(p), eval_transform(p)
    levels = np.asarray(p.std, np.float32)[:, None, None] * 255  # one 8-bit level, in normalised units
    cat = Image.open(photo_dir / "chelsea.jpg").convert("RGB")
    for img in (cat, cat.resize((199, 601)), cat.resize((256, 300)), cat.resize((90, 70)), cat.resize((257, 256))):
        got, want = arrays(img), reference(img).numpy()
        assert got.dtype == np.float32 and got.shape == tuple(p.input_size)
        np.testing.assert_array_equal(tensors(img).numpy(), got)
        if p.resize_size in img.size or p.crop_mode == "squash":
            np.testing.assert_array_equal(got, want)
        else:
            off = np.abs(got - want) * levels
            assert off.max() <= 8 and (off > 1.01).mean() < 0.01 and abs((got - want).mean()) * levels.mean() < 0.02


def test_ordered_map_keeps_order_and_stays_a_bounded_way_ahead():
    import time

    from visionzoo.ordered import ordered_map

    pulled = []

    def items():
        for x in range(40):
            pulled.append(x)
            yield x

    def slow(x: int) -> int:
        time.sleep(0.002 * (x % 4))  # later items often finish first
        return x

    results = ordered_map(slow, items(), 2)
    assert next(results) == 0
    assert pulled == [0, 1, 2, 3]  # workers + 1 ahead, then one more: memory stays flat on any folder
    assert list(results) == list(range(1, 40))
