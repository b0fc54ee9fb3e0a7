"""Copies versus look-alikes (visionzoo/data/copies.py): resized and recompressed copies of real
photos agree in fine detail; a burst-like shifted shot, the next slice of a volume or a frame of a
moving scene is as alike by perceptual hash yet is no copy."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from visionzoo.data.copies import MAX_DISTANCE, detail_agreement, fingerprint, hash_distance, is_copy

MEMBRANE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "membrane" / "image"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    """Real photos, each with a resized + recompressed copy and a shot a few pixels over (a burst)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("copies")
    out = {}
    for k, name in enumerate(("astronaut", "chelsea", "coffee", "rocket", "camera")):
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        w, h = img.size
        img.crop((0, 0, w - 12, h - 12)).save(folder / f"{name}.png")
        scale, quality = (0.5, 0.6, 0.75, 0.9, 0.4)[k], (40, 60, 85, 30, 90)[k]
        small = img.crop((0, 0, w - 12, h - 12)).resize((round((w - 12) * scale), round((h - 12) * scale)),
                                                          Image.LANCZOS)
        small.save(folder / f"{name}_copy.jpg", quality=quality)
        img.crop((6, 6, w - 6, h - 6)).save(folder / f"{name}_burst.png")
        out[name] = folder
    return out


def test_copies_agree_in_detail_look_alikes_do_not(photos):
    for name, folder in photos.items():
        orig, copy, burst = (str(folder / f) for f in (f"{name}.png", f"{name}_copy.jpg", f"{name}_burst.png"))
        assert hash_distance(fingerprint(orig), fingerprint(copy)) <= MAX_DISTANCE
        assert hash_distance(fingerprint(orig), fingerprint(burst)) <= MAX_DISTANCE, name  # alike by hash
        assert is_copy(detail_agreement(orig, copy)), name
        assert not is_copy(detail_agreement(orig, burst)), name


@pytest.mark.skipif(not MEMBRANE.is_dir(), reason="needs ../shared/datasets/membrane")
def test_neighbouring_serial_sections_are_not_copies():
    sections = [str(MEMBRANE / f"{n}.png") for n in range(10)]
    prints = [fingerprint(p) for p in sections]
    alike = [(a, b) for a in range(10) for b in range(a + 1, 10) if hash_distance(prints[a], prints[b]) <= MAX_DISTANCE]
    assert alike  # sections this close do hash alike ...
    assert not any(is_copy(detail_agreement(sections[a], sections[b])) for a, b in alike)  # ... but are no copies
