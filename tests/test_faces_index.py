"""Faces over a photo library: dlib's ResNet in ONNX Runtime equal to dlib, the face index (fast
pipeline, kill -9 and --resume, adding photos, the Ray engine, bad input), find over an index,
grouping into people, aligned crops and coloured meshes; on the shared faces data set and
photos made from it."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("dlib")
pytest.importorskip("ai_edge_litert")

from badfiles import write_bad_files, write_odd_modes  # noqa: E402
from faces_data import DATA, PEOPLE, held_out, jpeg, needs_data, portrait  # noqa: E402
from interrupt import kill_group, start_held  # noqa: E402

pytestmark = [pytest.mark.xdist_group("faces_index"), needs_data]
ENV = {**os.environ, "VISIONZOO_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _head(person: str, side: int) -> Image.Image:
    """The face of a portrait with a little around it, `side` px square (the face ~70% of it)."""
    from visionzoo.tasks.faces.detectors import face_boxes

    img = portrait(person, 1024)
    (box,), _ = face_boxes(img)
    cx, cy, half = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 0.7 * (box[2] - box[0])
    return img.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half))).resize((side, side))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """library/: each portrait in 4 changed copies and 2 scenes with two people, the group photo
    twice, 3 photos without faces; gallery/: a held-out copy of each portrait (mirrored, cropped,
    recompressed); truth: {file name: people in it}."""
    from skimage import data as skdata

    root = tmp_path_factory.mktemp("library")
    lib, gal, truth = root / "library", root / "gallery", {}
    lib.mkdir()
    for p in PEOPLE:
        img = portrait(p)
        w, h = img.size
        (gal / p).mkdir(parents=True)
        held_out(img, 40).save(gal / p / "held.jpg")
        copies = [img.resize((w // 2, h // 2)), img.rotate(12, expand=True, fillcolor=(90, 90, 90)),
                  img.convert("L").crop((0, 0, w, int(h * 0.8))), jpeg(img, 25)]
        for k, c in enumerate(copies):
            c.save(lib / f"{p}_{k}.jpg", quality=88)
            truth[f"{p}_{k}.jpg"] = [p]
    for k, (a, b) in enumerate(zip(PEOPLE, PEOPLE[1:] + PEOPLE[:1])):
        scene = Image.fromarray(skdata.coffee()).resize((1500, 1000))
        for x, p in ((80, a), (800, b)):
            scene.paste(portrait(p, 560), (x, 300))
        scene.save(lib / f"scene_{k}.jpg", quality=90)
        truth[f"scene_{k}.jpg"] = [a, b]
    group = Image.open(DATA / "multiface.jpg").convert("RGB")
    group.save(lib / "group.jpg")
    group.resize((900, 472)).save(lib / "group_small.jpg")
    truth["group.jpg"] = truth["group_small.jpg"] = ["stranger"] * 6
    for name in ("coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(skdata, name)()).save(lib / f"{name}.jpg")
        truth[f"{name}.jpg"] = []
    return root, lib, gal, truth


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "visionzoo", "faces", *args, "--quiet"], env=ENV, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def _rows(index: Path) -> list[tuple]:
    """Every row of an index, all columns, in key order (what `identical` means for an index)."""
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in sorted(index.glob("part-*.parquet"))]
    rows = [r for t in tables for r in zip(*(t.column(c).to_pylist() for c in t.column_names))]
    return sorted(rows, key=lambda r: r[0])


# --------------------------------------------------------------------------- the embedder
def test_onnx_resnet_equals_dlib_on_every_shared_face(tmp_path):
    import dlib

    from visionzoo.data.decode import load_rgb
    from visionzoo.errors import UsageError
    from visionzoo.tasks.faces.detectors import detect_faces
    from visionzoo.tasks.faces.dlib_format import read_dlib_resnet
    from visionzoo.tasks.faces.models import dlib_model_path, face_recognizer
    from visionzoo.tasks.faces.recognize import align, embed_chips

    cosines = []
    for path in [DATA / p / "1.jpg" for p in PEOPLE] + [DATA / "multiface.jpg"]:
        img = load_rgb(str(path))
        arr = np.asarray(img)
        faces = detect_faces(img)
        points, chips = align(arr, [f.box for f in faces], [f.points for f in faces])
        ours = embed_chips(chips)
        for f, mine in zip(faces, ours):
            rect = dlib.rectangle(*[int(round(v)) for v in f.box[:2]], *[int(round(v)) - 1 for v in f.box[2:]])
            parts = dlib.points([dlib.point(int(x), int(y)) for x, y in f.points])
            ref = np.asarray(face_recognizer().compute_face_descriptor(arr, dlib.full_object_detection(rect, parts)))
            cosines.append(float(mine @ ref / np.linalg.norm(mine) / np.linalg.norm(ref)))
            assert np.abs(mine - ref).max() < 1e-4
    assert len(cosines) == 10 and min(cosines) >= 0.9999, cosines
    # another file, or a damaged one, is refused rather than misread
    broken = tmp_path / "broken.dat"
    broken.write_bytes(dlib_model_path("resnet").read_bytes()[:5_000_000])
    with pytest.raises(UsageError, match="not dlib's face-recognition ResNet"):
        read_dlib_resnet(broken)
    with pytest.raises(UsageError, match="not dlib's face-recognition ResNet"):
        read_dlib_resnet(dlib_model_path("sp5"))


def test_fast_pipeline_finds_the_same_faces_and_answers(tmp_path):
    """Reduced-size decode, detection there, aligned chips from crops: the same boxes as
    `faces detect`, descriptors close to dlib's own on the full photo, the same verify answers."""
    from visionzoo.data.decode import load_rgb
    from visionzoo.tasks.faces.detectors import detect_faces
    from visionzoo.tasks.faces.indexing import index_photos
    from visionzoo.tasks.faces.recognize import THRESHOLD, distances, reference_descriptors

    paths = [str(DATA / p / "1.jpg") for p in PEOPLE] + [str(DATA / "multiface.jpg")]
    fast = index_photos(paths)
    ours, ref = [], []
    for photo in fast:
        img = load_rgb(photo.path)
        faces = detect_faces(img)
        assert len(photo) == len(faces) and photo.error is None
        d = reference_descriptors(np.asarray(img), [f.box for f in faces])
        for box, emb in zip(photo.boxes, photo.embeddings):
            j = int(np.argmin([np.abs(f.box - box).sum() for f in faces]))
            assert np.abs(faces[j].box - box).max() < 0.03 * (box[2] - box[0])
            ours.append(emb)
            ref.append(d[j])
    ours, ref = np.stack(ours), np.stack(ref)
    assert np.sqrt(((ours - ref) ** 2).sum(1)).max() < 0.15
    same_ours, same_ref = distances(ours, ours) <= THRESHOLD, distances(ref, ref) <= THRESHOLD
    assert (same_ours == same_ref).all() and same_ref.sum() == len(ref)  # ten different people


# --------------------------------------------------------------------------- the index
@pytest.mark.slow
def test_index_kill9_resume_is_identical_and_a_second_run_adds_nothing(library, tmp_path):
    _, lib, _, _ = library
    whole, crashed = tmp_path / "whole.parquet", tmp_path / "crashed.parquet"
    done = _run("index", str(lib), "--out", str(whole), "--partition-size", "2")
    assert done.returncode == 0, done.stderr
    proc = start_held(["faces", "index", str(lib), "--out", str(crashed), "--partition-size", "2", "--quiet"],
                      "shard:1", tmp_path / "run.log")  # held after its first shard: killed mid-run
    assert kill_group(proc) == -signal.SIGKILL
    assert len(list(crashed.glob("part-*.parquet"))) == 1 < len(list(whole.glob("part-*.parquet")))
    again = _run("index", str(lib), "--out", str(crashed))
    assert again.returncode == 2 and "--resume" in again.stderr  # an interrupted run is never silently mixed
    resumed = _run("index", str(lib), "--out", str(crashed), "--partition-size", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _rows(crashed) == _rows(whole)
    assert json.loads((crashed / "_manifest.json").read_text())["count"] == len(_rows(whole))
    stamps = {p.name: p.stat().st_mtime_ns for p in crashed.iterdir()}
    second = _run("index", str(lib), "--out", str(crashed))
    assert second.returncode == 0 and "nothing added" in second.stderr
    assert {p.name: p.stat().st_mtime_ns for p in crashed.iterdir()} == stamps  # not a byte rewritten


def test_adding_photos_reads_only_the_new_ones_and_bad_files_are_named(library, tmp_path):
    from visionzoo.batch.faces_index import index_faces
    from visionzoo.tasks.faces.faceindex import load_index

    _, lib, _, _ = library
    photos = tmp_path / "photos"
    shutil.copytree(lib, photos)
    out = tmp_path / "faces.parquet"
    first = index_faces([photos], out, partition_size=8)
    assert first.computed == len(list(lib.iterdir())) and not first.failures
    # later: new photos, awkward ones among them
    face = portrait("paul_rudd", 600)
    bad = write_bad_files(photos / "new", photos / "paul_rudd_0.jpg")
    odd = write_odd_modes(photos / "new", face)
    face.resize((6, 6)).save(photos / "new" / "tiny.png")
    grid = Image.new("RGB", (10 * 200, 10 * 160), (200, 200, 200))  # 100 faces of ~90 px in one photo
    heads = [_head(p, 130) for p in PEOPLE]
    for i in range(100):
        grid.paste(heads[i % 4], ((i % 10) * 200 + 35, (i // 10) * 160 + 15))
    grid.save(photos / "new" / "hundred.jpg", quality=90)
    second = index_faces([photos], out, partition_size=8)
    assert second.computed == len(bad) + len(odd) + 2  # only the new files were read
    assert {Path(p).name for p, _ in second.failures} == {p.name for p in bad.values()}
    assert all(reason for _, reason in second.failures)
    ix = load_index(out)
    per_photo = {}
    for photo, box in zip(ix.photos, ix.boxes):
        per_photo.setdefault(Path(photo).name, []).append(box)
    assert len(per_photo["hundred.jpg"]) >= 95
    assert "tiny.png" not in per_photo
    ref = per_photo[odd["rgba"].name][0]
    for kind in ("gray", "rgba", "cmyk", "palette", "gray16", "exif"):
        (box,) = per_photo[odd[kind].name]
        assert np.abs(box - ref).max() < 0.05 * (ref[2] - ref[0]), kind  # EXIF-rotated: the same upright face
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["count"] == len(ix) and len(manifest["failures"]) == len(bad)


@pytest.mark.slow
def test_ray_engine_writes_the_same_index(library, tmp_path):
    pytest.importorskip("ray")
    from visionzoo.batch.faces_index import index_faces

    _, lib, _, _ = library
    photos = sorted(lib.glob("*_0.jpg")) + [lib / "group.jpg", lib / "coffee.jpg"]
    local, on_ray = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    index_faces(photos, local, partition_size=3)
    try:
        index_faces(photos, on_ray, partition_size=3, engine="ray", num_workers=2)
    finally:
        import ray

        ray.shutdown()
    assert _rows(on_ray) == _rows(local) and len(_rows(local)) == 12  # 4 portraits, 2 in scene_0, 6 in the group


# --------------------------------------------------------------------------- find, cluster, name
@pytest.fixture(scope="module")
def indexed(library, tmp_path_factory):
    root, lib, gal, truth = library
    out = tmp_path_factory.mktemp("indexed") / "faces.parquet"
    done = _run("index", str(lib), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_find_every_photo_of_each_gallery_person(library, indexed, tmp_path, monkeypatch):
    _, lib, gal, truth = library
    monkeypatch.setenv("VISIONZOO_CACHE", str(tmp_path / "cache"))
    done = _run("find", str(gal), "--index", str(indexed), "--out", str(tmp_path / "matches.json"))
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "matches.json").read_text())
    assert set(rows[0]) == {"person", "path", "box", "distance"}
    found = {(r["person"], Path(r["path"]).name) for r in rows}
    wanted = {(p, name) for name, people in truth.items() for p in people if p in PEOPLE}
    assert found == wanted  # recall and precision 1 on this library
    assert all(r["distance"] <= 0.6 for r in rows)
    sheets = sorted((tmp_path / "matches_sheets").glob("*.jpg"))
    assert [s.stem for s in sheets] == PEOPLE
    sheet = Image.open(sheets[0])
    assert sheet.width == 150 * 6 and sheet.height > 150  # six faces of angelina_jolie in a row
    as_csv = _run("find", str(gal), "--index", str(indexed), "--out", str(tmp_path / "m.csv"), "--draw",
                  str(tmp_path / "sheets"))
    assert as_csv.returncode == 0, as_csv.stderr
    table = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert len(table) == len(rows) and {"person", "path", "x1", "y2", "distance"} <= set(table[0])
    assert len(list((tmp_path / "sheets").glob("*.jpg"))) == 4
    both = _run("find", str(gal), str(lib), "--index", str(indexed))
    assert both.returncode == 2  # QUERIES or --index

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    from typer.testing import CliRunner

    from visionzoo.cli import app
    from visionzoo.tasks.faces import sheets as sheets_module

    monkeypatch.setattr(sheets_module, "contact_sheet", full_disk)  # the pictures fail, after the results
    failed = CliRunner().invoke(app, ["faces", "find", str(gal), "--index", str(indexed), "--out",
                                      str(tmp_path / "kept.json"), "--quiet"])
    assert failed.exit_code != 0 and "No space left" in f"{failed.exception} {failed.output}"
    assert json.loads((tmp_path / "kept.json").read_text()) == rows  # no result lost to a picture


def test_cluster_groups_people_and_a_named_group_becomes_a_gallery_person(library, indexed, tmp_path, monkeypatch):
    from visionzoo.tasks.faces.faceindex import load_index

    _, lib, _, truth = library
    monkeypatch.setenv("VISIONZOO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "people"
    done = _run("cluster", "--index", str(indexed), "--out", str(out))
    assert done.returncode == 0, done.stderr
    table = list(csv.DictReader((out / "clusters.csv").open()))
    ix = load_index(indexed)
    assert len(table) == len(ix) and {"path", "x1", "y1", "x2", "y2", "cluster"} <= set(table[0])
    assert all(float(r[c]) >= 0 for r in table for c in ("x1", "y1", "x2", "y2"))  # boxes inside the photo
    groups: dict[str, set[str]] = {}
    for r in table:
        people = truth[Path(r["path"]).name]
        if len(people) == 1 and people[0] in PEOPLE:  # photos with one known person: their face's group
            groups.setdefault(people[0], set()).add(r["cluster"])
    for p in PEOPLE:
        assert len(groups[p]) == 1 and "-1" not in groups[p], (p, groups[p])  # one group per person ...
    assert len({next(iter(g)) for g in groups.values()}) == 4                 # ... and four different groups
    summary = json.loads((out / "clusters.json").read_text())
    assert summary["faces"] == len(ix) and len(list((out / "sheets").glob("group_*.jpg"))) == summary["groups"]
    # naming: the group folder of paul_rudd's faces, moved into a gallery, is that person
    paul = out / "groups" / f"group_{int(next(iter(groups['paul_rudd']))):03d}"
    crops = list(paul.glob("*.jpg"))
    assert 1 <= len(crops) <= 5 and all(Image.open(c).width <= 300 for c in crops)
    shutil.copytree(paul, tmp_path / "named" / "Paul")
    found = _run("find", str(tmp_path / "named"), "--index", str(indexed), "--out", str(tmp_path / "paul.json"))
    assert found.returncode == 0, found.stderr
    names = {Path(r["path"]).name for r in json.loads((tmp_path / "paul.json").read_text())}
    assert names == {name for name, people in truth.items() if "paul_rudd" in people}


def test_a_face_index_is_a_feature_file_for_search_and_dedup(library, indexed, tmp_path, monkeypatch):
    """Rows keyed PHOTO#faceK@x1,y1,x2,y2: dedup hashes the face itself (no "cannot read file"),
    search embeds a query photo's largest face with the index's own model."""
    from visionzoo.downstream import find_duplicates, search

    _, lib, gal, truth = library
    monkeypatch.setenv("VISIONZOO_CACHE", str(tmp_path / "cache"))
    report = find_duplicates(indexed)
    assert report.unreadable == [] and report.groups
    for group in report.groups:
        assert all(m.width > 0 and m.bytes == 0 for m in group)  # a face's size in pixels; no bytes of its own
    # each face of the group photo is found again in its smaller copy
    pairs = {(Path(g[0].path.split("#")[0]).name, Path(m.path.split("#")[0]).name) for g in report.groups for m in g}
    assert ("group.jpg", "group_small.jpg") in pairs
    found = search(indexed, [str(gal / "paul_rudd" / "held.jpg")], k=3)
    assert found[0].error is None
    assert all("paul_rudd" in truth[Path(n.path.split("#")[0]).name] for n in found[0].neighbours)
    res = subprocess.run([sys.executable, "-m", "visionzoo", "dedup", str(indexed)], env=ENV, capture_output=True,
                         text=True, timeout=600, check=False)
    assert res.returncode == 0 and "cannot read" not in res.stdout + res.stderr, res.stderr


# --------------------------------------------------------------------------- crops and meshes
def test_detect_crops_are_the_embedders_chips(library, tmp_path):
    import trimesh

    from visionzoo.store.formats import load_features
    from visionzoo.tasks.faces import embed
    from visionzoo.tasks.faces.recognize import embed_chips

    _, lib, _, _ = library
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(lib / "scene_0.jpg", src)
    done = _run("detect", str(src), "--crops", str(tmp_path / "chips"), "--out", str(tmp_path / "f.json"))
    assert done.returncode == 0, done.stderr
    assert "XNNPACK" not in done.stderr  # LiteRT's own start-up line does not reach the user
    crops = sorted((tmp_path / "chips").glob("*.jpg"))
    assert [c.name for c in crops] == ["scene_0_face0.jpg", "scene_0_face1.jpg"]
    assert Image.open(crops[0]).size == (150, 150)
    embed([str(src)], tmp_path / "e.npy")
    _, feats = load_features(tmp_path / "e.npy")
    from_crops = embed_chips(np.stack([np.asarray(Image.open(c).convert("RGB")) for c in crops]))
    assert np.sqrt(((from_crops - feats) ** 2).sum(1)).max() < 0.05  # the same chips (JPEG q95 aside)
    mesh = _run("mesh", str(src / "scene_0.jpg"), "--out", str(tmp_path / "mesh"))
    assert mesh.returncode == 0, mesh.stderr
    obj = tmp_path / "mesh" / "scene_0_face0.obj"
    lines = obj.read_text().splitlines()
    colours = np.array([[float(v) for v in ln.split()[4:7]] for ln in lines if ln.startswith("v ")])
    assert colours.shape == (468, 3) and colours.std(0).min() > 0.02  # the photo's colours, not one flat tone
    m = trimesh.load(obj, process=False, maintain_order=True)
    assert m.visual.uv.shape == (468, 2) and m.visual.material.image is not None
    # each vertex's colour is the photo's pixel under it
    vertices = np.array([[float(v) for v in ln.split()[1:3]] for ln in lines if ln.startswith("v ")])
    photo = np.asarray(Image.open(src / "scene_0.jpg").convert("RGB"), np.float64) / 255
    x, y = np.clip(vertices[:, 0].astype(int), 0, photo.shape[1] - 1), np.clip((-vertices[:, 1]).astype(int), 0, photo.shape[0] - 1)
    assert np.abs(photo[y, x] - colours).mean() < 0.06
