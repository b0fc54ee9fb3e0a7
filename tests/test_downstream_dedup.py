"""`dedup` on real photos: every planted resized / recompressed / byte-identical copy is found,
the original is the one kept, and distinct photos are never paired."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import visionzoo
from visionzoo.cli import app
from visionzoo.downstream import find_duplicates

pytestmark = pytest.mark.xdist_group("downstream_dedup")  # one worker computes the module's features once

# Distinct real photos that skimage ships (no download): people, animals, objects, scenes,
# microscopy, astronomy, documents and textures.
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
          "retina", "stereo_motorcycle", "clock", "coins", "moon", "brick", "grass", "gravel", "page", "text")


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict[str, set[str]]]:
    """Folder of originals plus copies; returns it and {original name: names of its copies}."""
    from skimage import data

    folder = tmp_path_factory.mktemp("dedup") / "photos"
    folder.mkdir()
    copies: dict[str, set[str]] = {}
    for n, name in enumerate(PHOTOS):
        arr = getattr(data, name)()
        img = Image.fromarray(arr[0] if isinstance(arr, tuple) else arr).convert("RGB")
        img.save(folder / f"{name}.jpg", quality=92)
        w, h = img.size
        made = set()
        if n % 2 == 0:  # resized to half size
            img.resize((w // 2, h // 2), Image.LANCZOS).save(folder / f"{name}_small.jpg", quality=90)
            made.add(f"{name}_small.jpg")
        if n % 3 == 0:  # recompressed hard
            img.save(folder / f"{name}_q25.jpg", quality=25)
            made.add(f"{name}_q25.jpg")
        if n == 4:  # byte-identical copy under another name
            shutil.copy(folder / f"{name}.jpg", folder / "copy_of_rocket.jpg")
            made.add("copy_of_rocket.jpg")
        if made:
            copies[f"{name}.jpg"] = made
    return folder, copies


@pytest.fixture(scope="module")
def features(planted, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dedupfeat") / "photos.parquet"
    visionzoo.extract([str(planted[0])], out, "efficientnet_lite0")
    return out


def test_finds_every_planted_copy_and_no_false_pair(planted, features):
    folder, copies = planted
    report = find_duplicates(features)
    found = {}
    for group in report.groups:
        keep = [Path(m.path).name for m in group if m.action == "keep"]
        assert len(keep) == 1
        found[keep[0]] = {Path(m.path).name for m in group if m.action == "drop"}
    if "copy_of_rocket.jpg" in found:  # identical bytes and size: either name may be kept
        found["rocket.jpg"] = found.pop("copy_of_rocket.jpg") - {"rocket.jpg"} | {"copy_of_rocket.jpg"}
    assert found == copies
    sims = [m.similarity for g in report.groups for m in g if m.action == "drop"]
    print(f"{len(copies)} originals with {sum(map(len, copies.values()))} planted copies: all found; "
          f"lowest feature cosine of a copy {min(sims):.3f}; {report.pairs_checked} candidate pairs checked")


def test_distinct_photos_alone_have_no_duplicates(planted, features, tmp_path):
    from visionzoo.store import load_features

    paths, x = load_features(features)
    originals = [i for i, p in enumerate(paths) if Path(p).stem in PHOTOS]
    assert len(originals) == len(PHOTOS)
    report = find_duplicates(([paths[i] for i in originals], x[originals]))
    assert report.groups == []
    # Features alone with a loose threshold do pair distinct photos: the pixel check keeps them apart.
    loose = find_duplicates(([paths[i] for i in originals], x[originals]), pixel_threshold=None, threshold=0.3)
    assert loose.groups


def test_dedup_cli_csv_and_unreadable_file(planted, features, tmp_path):
    folder, copies = planted
    res = CliRunner().invoke(app, ["dedup", str(features), "--out", str(tmp_path / "d.csv")])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "d.csv").open()))
    assert {r["action"] for r in rows} == {"keep", "drop"}
    drops = {Path(r["path"]).name for r in rows if r["action"] == "drop"}
    assert len(drops) == sum(map(len, copies.values()))
    for r in rows:
        if r["action"] == "keep":
            assert int(r["width"]) * int(r["height"]) >= max(int(o["width"]) * int(o["height"]) for o in rows
                                                             if o["group"] == r["group"])
    # A file deleted after extraction cannot be confirmed: reported, exit status 1, the rest still grouped.
    from visionzoo.store import load_features

    paths, _ = load_features(features)
    gone = next(p for p in paths if Path(p).name == "astronaut_small.jpg")
    moved = tmp_path / "moved.jpg"
    shutil.move(gone, moved)
    try:
        report = find_duplicates(features)
        assert [p for p, _ in report.unreadable] == [gone]
        assert len(report.drops) == len(drops) - 1
        res = CliRunner().invoke(app, ["dedup", str(features)])
        assert res.exit_code == 1 and "astronaut_small.jpg" in res.output
    finally:
        shutil.move(moved, gone)
