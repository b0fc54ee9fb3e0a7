"""`dedup` on real photos: every planted resized / recompressed / cropped / byte-identical copy is found,
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


RACCOON = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raccoon" / "images"
# Raccoon photos that are not themselves copies of one another (the set holds 11=116 and 52=74).
REAL = [f"raccoon-{n}.jpg" for n in (1, 3, 6, 8, 12, 17, 21, 23, 31, 41, 47, 62, 67, 73, 88, 96, 102, 131)]
ASPECTS = (None, 16 / 9, 3 / 4, 1.0, 2.0)   # originals cut to several aspect ratios (None: as shot)


def _cut(img: Image.Image, aspect: float | None) -> Image.Image:
    if aspect is None:
        return img
    w, h = img.size
    if w / h > aspect:
        nw = round(h * aspect)
        return img.crop(((w - nw) // 2, 0, (w - nw) // 2 + nw, h))
    nh = round(w / aspect)
    return img.crop((0, (h - nh) // 2, w, (h - nh) // 2 + nh))


def _copy(img: Image.Image, kind: int) -> tuple[Image.Image, int]:
    """A realistic copy: resized 0.4-0.9x, re-saved at quality 30-90, cropped by up to 5%."""
    w, h = img.size
    scale, quality, crop = [(0.4, 85, 0.0), (0.9, 30, 0.0), (1.0, 90, 0.05), (0.6, 40, 0.05), (0.75, 60, 0.03)][kind % 5]
    if crop:
        dx, dy = round(w * crop), round(h * crop)
        img = img.crop((dx // 2 + kind % 2, dy - dy // 2, w - dx + dx // 2 + kind % 2, h - dy // 2))
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS), quality


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict[str, set[str]]]:
    """Folder of originals plus copies; returns it and {original name: names of its copies}.

    skimage's photos get resized / hard-recompressed / byte-identical copies; the real raccoon
    photos (when shared/datasets is there) are cut to several aspect ratios and each gets a copy
    resized, recompressed or lightly cropped."""
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
            img.save(folder / f"{name}_q30.jpg", quality=30)
            made.add(f"{name}_q30.jpg")
        if n == 4:  # byte-identical copy under another name
            shutil.copy(folder / f"{name}.jpg", folder / "copy_of_rocket.jpg")
            made.add("copy_of_rocket.jpg")
        if made:
            copies[f"{name}.jpg"] = made
    if RACCOON.is_dir():
        for n, name in enumerate(REAL):
            img = _cut(Image.open(RACCOON / name).convert("RGB"), ASPECTS[n % len(ASPECTS)])
            img.save(folder / name, quality=95)
            copy, quality = _copy(img, n)
            copy.save(folder / f"copy{n}_{name}", quality=quality)
            copies[name] = {f"copy{n}_{name}"}
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
    originals = [i for i, p in enumerate(paths) if Path(p).stem in PHOTOS or Path(p).name in REAL]
    assert len(originals) == len(PHOTOS) + (len(REAL) if RACCOON.is_dir() else 0)
    report = find_duplicates(([paths[i] for i in originals], x[originals]))
    assert report.groups == []
    # Features alone with a loose threshold do pair distinct photos: the hash check keeps them apart.
    loose = find_duplicates(([paths[i] for i in originals], x[originals]), max_distance=None, threshold=0.3)
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


def test_whole_real_folder_pairs_only_true_copies():
    """Every pair of the 160 raccoon photos by hash: only the set's own copies are within the limit.

    The set holds two byte-level duplicates (11 = 116, 52 = 74) and one burst (186, 199: two
    frames a moment apart, same framing), which is a near-duplicate by any perceptual measure."""
    if not RACCOON.is_dir():
        pytest.skip(f"real photos not found at {RACCOON} (shared/datasets is not beside the repo)")
    from itertools import combinations

    from visionzoo.downstream.dedup import DEFAULT_MAX_DISTANCE, fingerprint, hash_distance

    paths = sorted(RACCOON.glob("*.jpg"))
    prints = [fingerprint(str(p)) for p in paths]
    close = sorted((paths[i].name, paths[j].name) for i, j in combinations(range(len(paths)), 2)
                   if hash_distance(prints[i], prints[j]) <= DEFAULT_MAX_DISTANCE)
    assert close == [("raccoon-11.jpg", "raccoon-116.jpg"), ("raccoon-186.jpg", "raccoon-199.jpg"),
                     ("raccoon-52.jpg", "raccoon-74.jpg")]


@pytest.fixture(scope="module")
def panning_video(tmp_path_factory) -> tuple[Path, Path]:
    """A slowly changing video (a camera panning across a real photo, 3 px a frame, 60 frames) and
    its lite0 features, one row per frame (`PATH#t=S`)."""
    from skimage import data
    from videos import write_video

    photo = Image.fromarray(data.astronaut()).resize((400, 400))
    frames = [photo.crop((3 * k, 3 * k // 2, 3 * k + 160, 3 * k // 2 + 120)) for k in range(60)]
    folder = tmp_path_factory.mktemp("pan")
    video = write_video(folder / "pan.mp4", frames, rate=10)
    out = folder / "pan.parquet"
    visionzoo.extract([str(video)], out, "efficientnet_lite0")
    return video, out


def test_slow_video_groups_do_not_chain(panning_video):
    """Neighbouring frames are alike all along the pan, so linking alike pairs would make one group
    of the whole clip; every frame dropped must instead be alike to the frame kept itself."""
    from visionzoo.downstream.dedup import DEFAULT_MAX_DISTANCE, fingerprint, hash_distance
    from visionzoo.store import load_features

    feats = panning_video[1]
    paths, _ = load_features(feats)
    assert len(paths) == 60
    prints = [fingerprint(p) for p in paths]
    # the chain exists: every frame is within the hash limit of the next, the ends far apart
    assert all(hash_distance(prints[k], prints[k + 1]) <= DEFAULT_MAX_DISTANCE for k in range(59))
    assert hash_distance(prints[0], prints[-1]) > DEFAULT_MAX_DISTANCE
    for threshold in (0.5, 0.9):
        report = find_duplicates(feats, threshold=threshold)
        assert report.groups, threshold
        row = {p: i for i, p in enumerate(paths)}
        for group in report.groups:
            keep = group[0]
            assert keep.action == "keep" and (keep.width, keep.height, keep.bytes) == (160, 120, 0)
            for m in group[1:]:
                assert m.similarity >= threshold
                assert hash_distance(prints[row[m.path]], prints[row[keep.path]]) <= DEFAULT_MAX_DISTANCE
        largest = max(map(len, report.groups))
        assert largest < 30, (threshold, largest)   # no group of half the clip or more
        # a frame is in one group at most; the earliest frame of a stretch is the one kept
        members = [m.path for g in report.groups for m in g]
        assert len(members) == len(set(members))
        print(f"min-similarity {threshold}: {len(report.groups)} groups, largest {largest}, lowest cosine "
              f"to the kept frame {min(m.similarity for g in report.groups for m in g):.3f}")


def test_dedup_cli_prints_frame_size(panning_video):
    res = CliRunner().invoke(app, ["dedup", str(panning_video[1])])
    assert res.exit_code == 0, res.output
    assert "160x120, cosine" in res.output and "0x0" not in res.output and " 0 B" not in res.output
