"""`visionzoo audit` on real images with errors the tests plant themselves: flipped labels are flagged
with the right suggestion, copies across splits are found (and only they), unreadable, blank and
elongated files are named, `--fix` writes a split `train` reads, `--resume` reuses the features;
detection sets (the raccoon photos) get box checks from the rules and from cleanlab's object-detection
scores, segmentation sets (the membrane images) mask checks."""
from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from visionzoo.cli import app

pytestmark = pytest.mark.xdist_group("audit")  # the class-folder audit runs once per module
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
FLIPPED = ("face/003.png", "face/007.png", "face/011.png")      # train faces moved under nonface/


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def planted(lfw_sample, tmp_path_factory):
    """lfw faces / non-faces as train (30 + 30) and val (10 + 10) class folders with three flipped labels,
    two copies of train images in val (byte-identical; re-saved as JPEG), a truncated file, a blank image
    and a squashed one; audited once by the CLI from the data's parent folder (relative paths)."""
    root = tmp_path_factory.mktemp("audit")
    pool = lfw_sample(root / "pool", 40)
    for cls in ("face", "nonface"):
        files = sorted((pool / cls).glob("*.png"))
        for split, chosen in (("train", files[:30]), ("val", files[30:])):
            (root / "data" / split / cls).mkdir(parents=True, exist_ok=True)
            for f in chosen:
                shutil.move(f, root / "data" / split / cls / f.name)
    train, val = root / "data" / "train", root / "data" / "val"
    for name in FLIPPED:
        (train / name).rename(train / "nonface" / Path(name).name)
    shutil.copy(train / "face" / "000.png", val / "face" / "copy_000.png")
    Image.open(train / "nonface" / "105.png").convert("RGB").save(val / "nonface" / "copy_105.jpg", quality=70)
    (train / "face" / "broken.png").write_bytes((train / "face" / "001.png").read_bytes()[:60])
    Image.new("L", (25, 25), 128).save(train / "nonface" / "blank.png")
    Image.open(train / "face" / "002.png").resize((120, 20)).save(train / "face" / "long.png")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        res = CliRunner().invoke(app, ["audit", "data", "--out", "out", "--fix", "fixed"])
    finally:
        os.chdir(cwd)
    return root, res


def test_flipped_labels_are_flagged_with_the_label_they_belong_to(planted):
    root, res = planted
    rows = [r for r in _rows(root / "out" / "issues.csv") if r["kind"] == "label_error"]
    flagged = {r["path"]: r for r in rows}
    for name in FLIPPED:
        row = flagged[f"data/train/nonface/{Path(name).name}"]  # paths as the command line named DATA
        assert (row["given_label"], row["suggested_label"]) == ("nonface", "face"), row
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)  # most certain first
    report = json.loads((root / "out" / "report.json").read_text())
    assert report["labels"]["folds"] == 5 and report["labels"]["model"] == "efficientnet_lite0"
    assert report["findings"]["label_error"] == len(rows) <= 8


def test_copies_across_splits_are_leakage_and_nothing_else_is(planted):
    root, _ = planted
    rows = _rows(root / "out" / "issues.csv")
    leaks = {(r["path"], r["other_path"]): r for r in rows if r["kind"] == "leakage"}
    exact = leaks[("data/val/face/copy_000.png", "data/train/face/000.png")]
    assert exact["split"] == "val" and exact["other_split"] == "train" and "identical files" in exact["detail"]
    resaved = leaks[("data/val/nonface/copy_105.jpg", "data/train/nonface/105.png")]
    assert "near-identical" in resaved["detail"] and float(resaved["score"]) < float(exact["score"])
    # Distinct 25 px faces in one pose can hash alike (a known limit of perceptual hashes on crops this
    # small): their fine detail does not agree, so they are look-alikes, not copies.
    others = [r for r in rows if r["kind"] in ("leakage", "duplicate") and (r["path"], r["other_path"]) not in leaks]
    others += [r for k, r in leaks.items() if "copy_" not in k[0]]
    assert others == [], others
    # alike by hash but not shown to be copies: to review, never removed
    removed = {r["path"] for r in _rows(root / "fixed" / "removed.csv")}
    review = {(r["path"], r["kind"]) for r in _rows(root / "fixed" / "review.csv")}
    for r in rows:
        if r["kind"] == "look_alike":
            assert r["path"] not in removed and (r["path"], "look_alike") in review
            assert "not shown to be a copy" in r["detail"]


def test_bad_files_are_named_and_the_exit_code_says_so(planted):
    root, res = planted
    assert res.exit_code == 1, res.output
    assert "data/train/face/broken.png" in res.output and "Traceback" not in res.output
    rows = _rows(root / "out" / "issues.csv")
    junk = {r["path"]: r["detail"] for r in rows if r["kind"] == "junk"}
    assert junk["data/train/nonface/blank.png"].startswith("near-blank")
    assert junk["data/train/face/long.png"].startswith("extreme aspect ratio: 120x20")
    assert [r["path"] for r in rows if r["kind"] == "unreadable"] == ["data/train/face/broken.png"]
    assert "data/train/nonface/blank.png" in {r["path"] for r in rows if r["kind"] == "outlier"}


def test_report_pictures_and_the_cleaned_split(planted):
    root, _ = planted
    out, fixed = root / "out", root / "fixed"
    report = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    assert report["verdict"] in md and "Review them" in report["verdict"] and not report["clean"]
    assert report["balance"]["counts"]["val"] == {"face": 11, "nonface": 11}
    for kind in ("label_error", "leakage", "junk", "unreadable"):
        assert Image.open(out / "montages" / f"{kind}.png").size[0] > 300
    from visionzoo.tasks.classify.data import load_dataset

    removed = {r["path"] for r in _rows(fixed / "removed.csv")}
    assert {"data/val/face/copy_000.png", "data/val/nonface/copy_105.jpg", "data/train/face/broken.png"} <= removed
    issues = _rows(out / "issues.csv")
    assert removed <= {r["path"] for r in issues if r["kind"] in ("unreadable", "leakage")}
    val = load_dataset(fixed / "val.csv", val_split=0)  # what `visionzoo train fixed/train.csv` reads
    assert len(val.train) == 22 - sum(p.startswith("data/val/") for p in removed)
    assert not any("copy_" in p for p in val.train.paths)
    train = load_dataset(fixed / "train.csv", val_split=0)
    assert len(train.train) == 62 and all(os.path.isfile(p) for p in train.train.paths)  # all but broken.png
    review = _rows(fixed / "review.csv")
    assert {Path(n).name for n in FLIPPED} <= {Path(r["path"]).name for r in review if r["kind"] == "label_error"}
    assert (root / "data" / "val" / "face" / "copy_000.png").is_file()  # the user's files are untouched


def test_resume_reuses_the_features_and_a_second_run_needs_it(planted, tmp_path):
    root, _ = planted
    out = shutil.copytree(root / "out", tmp_path / "out")  # the module's audit stays as the other tests read it
    runner = CliRunner()
    again = runner.invoke(app, ["audit", str(root / "data"), "--out", str(out)])
    assert again.exit_code == 2 and "--resume" in again.output
    res = runner.invoke(app, ["audit", str(root / "data"), "--out", str(out), "--resume", "--quiet"])
    assert res.exit_code == 1, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["features"]["computed"] == 0 and report["features"]["images"] == 84


def test_the_verdict_calls_a_set_clean_only_when_few_and_harmless_findings():
    from visionzoo.audit.report import verdict

    clean, rate, words = verdict({"label_error": 6, "outlier": 2}, 1000)
    assert clean and rate == 8.0 and "8 finding(s) in 1000 images (8.0 per 1,000)" in words and "looks clean" in words
    assert not verdict({"leakage": 1}, 1000)[0]  # one leaked copy inflates every score
    assert not verdict({"label_error": 30}, 1000)[0]


@pytest.mark.parametrize("args,message", [
    (["audit", "{data}", "--out", "{data}/report"], "inside DATA"),
    (["audit", "{data}", "--out", "{tmp}/o", "--task", "caption"], "unknown --task"),
    (["audit", "{tmp}/none", "--out", "{tmp}/o"], "no such dataset"),
    (["audit", "{data}", "--out", "{tmp}/o", "--task", "segment", "--model", "x"], "images/"),
])
def test_usage_errors_exit_2_before_any_work(lfw_sample, tmp_path, args, message):
    data = lfw_sample(tmp_path / "d", 3)
    res = CliRunner().invoke(app, [a.format(data=data, tmp=tmp_path) for a in args])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- detection
RACCOON = SHARED / "raccoon"


def _voc_copy(src: Path, dest: Path, name: str, edit=None) -> None:
    """A raccoon photo and its VOC file under dest/, optionally with `edit(objects)` applied to its boxes."""
    (dest / "images").mkdir(parents=True, exist_ok=True)
    (dest / "annotations").mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "images" / f"{name}.jpg", dest / "images" / f"{name}.jpg")
    tree = ET.parse(src / "annotations" / f"{name}.xml")
    if edit:
        edit(tree.getroot())
    tree.write(dest / "annotations" / f"{name}.xml")


def _add_box(node: ET.Element, box: list[int]) -> None:
    obj = ET.SubElement(node, "object")
    ET.SubElement(obj, "name").text = "raccoon"
    bb = ET.SubElement(obj, "bndbox")
    for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box):
        ET.SubElement(bb, k).text = str(v)


@pytest.mark.slow
@pytest.mark.skipif(not RACCOON.is_dir(), reason="needs ../shared/datasets/raccoon")
def test_detection_audit_checks_boxes_splits_and_files(tmp_path, monkeypatch):
    """Raccoon photos as train/ and val/ VOC folders with a degenerate box, a box drawn twice, a box
    reaching outside its photo, an unparsable annotation and a resized copy in val; boxes judged by
    cross-fitted detectors (one short epoch each here)."""
    from visionzoo.audit import detector

    monkeypatch.setattr(detector, "EPOCHS", 1)
    monkeypatch.setattr(detector, "IMAGE_SIZE", 128)
    names = [f"raccoon-{n}" for n in (1, 3, 6, 8, 12, 17, 21, 23)]
    data = tmp_path / "boxes"

    def twice(node: ET.Element) -> None:
        _add_box(node, [int(float(node.find(f"object/bndbox/{k}").text)) for k in ("xmin", "ymin", "xmax", "ymax")])

    edits = {"raccoon-3": lambda n: _add_box(n, [20, 20, 22, 90]), "raccoon-6": twice,
             "raccoon-8": lambda n: _add_box(n, [-40, 10, 100, 100])}
    for name in names[:6]:
        _voc_copy(RACCOON, data / "train", name, edits.get(name))
    for name in names[6:]:
        _voc_copy(RACCOON, data / "val", name)
    img = Image.open(RACCOON / "images" / "raccoon-1.jpg")
    img.resize((img.width * 7 // 10, img.height * 7 // 10)).save(data / "val" / "images" / "raccoon-1b.jpg", quality=80)
    tree = ET.parse(RACCOON / "annotations" / "raccoon-1.xml")  # the copy keeps its boxes, scaled
    tree.getroot().find("filename").text = "raccoon-1b.jpg"
    for node in tree.getroot().iter():
        if node.tag in ("width", "height", "xmin", "ymin", "xmax", "ymax"):
            node.text = str(int(node.text) * 7 // 10)
    tree.write(data / "val" / "annotations" / "raccoon-1b.xml")
    (data / "val" / "annotations" / "broken.xml").write_text("<annotation><filename>")
    res = CliRunner().invoke(app, ["audit", str(data), "--out", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == 1 and "broken.xml" in res.output, res.output
    rows = _rows(tmp_path / "out" / "issues.csv")
    details = [(Path(r["path"]).name, r["detail"]) for r in rows if r["kind"] == "box_error"]
    assert ("raccoon-3.jpg", "degenerate box [20, 20, 22, 90]: 2x70 px") in details
    assert any(n == "raccoon-6.jpg" and d.startswith("boxed twice") for n, d in details)
    assert any(n == "raccoon-8.xml" and "reaches outside the image; clipped" in d for n, d in details)
    leak = [(Path(r["path"]).name, Path(r["other_path"]).name) for r in rows if r["kind"] == "leakage"]
    assert leak == [("raccoon-1b.jpg", "raccoon-1.jpg")]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["task"] == "detect" and "2 cross-fitted detectors" in report["boxes"]["predictions"]
    assert set(report["balance"]["counts"]) == {"train", "val"} and report["images"] == 9
    assert sorted(p.name for p in (tmp_path / "out" / "detectors").iterdir() if p.is_dir()) == ["fold0", "fold1"]
    run = tmp_path / "out" / "detectors" / "fold0"  # a detection run folder, as `--model RUN` takes
    res = CliRunner().invoke(app, ["audit", str(data), "--out", str(tmp_path / "out2"), "--model", str(run), "-q"])
    assert res.exit_code == 1, res.output
    report = json.loads((tmp_path / "out2" / "report.json").read_text())
    assert report["boxes"]["predictions"].startswith(f"boxes of the trained detector {run}")
    assert not (tmp_path / "out2" / "detectors").exists()


@pytest.mark.skipif(not RACCOON.is_dir(), reason="needs ../shared/datasets/raccoon")
def test_detector_disagreement_names_the_missing_and_the_misplaced_box():
    """cleanlab's object-detection scores on real raccoon boxes against a detector that finds every raccoon:
    the image whose box was removed and the one whose box was moved off the raccoon are the ones flagged."""
    from visionzoo.audit.boxes import model_findings
    from visionzoo.audit.inventory import Item, read

    inv = read(RACCOON, "detect")
    samples = inv.samples[:16]
    preds = [{"path": s.path, "detections": [{"label": "raccoon", "score": 0.95, "box": b.tolist()} for b in s.boxes]}
             for s in samples]
    given = [copy.deepcopy(s) for s in samples]
    given[2].boxes, given[2].labels, given[2].crowd = given[2].boxes[:0], given[2].labels[:0], given[2].crowd[:0]
    x1, y1, x2, y2 = given[5].boxes[0]
    given[5].boxes[0] = [0, 0, (x2 - x1) / 3, (y2 - y1) / 3]
    found, summary = model_findings(given, preds, inv.classes, {s.path: Item(s.path, "all") for s in samples})
    by_path = {f.path: f for f in found}
    assert set(by_path) == {samples[2].path, samples[5].path}, found
    assert by_path[samples[2].path].detail.startswith("missing box: the detector finds a 'raccoon' at")
    assert by_path[samples[5].path].detail.startswith("badly placed box [0, 0")
    assert summary["flagged"] == 2


# --------------------------------------------------------------------------- segmentation
MEMBRANE = SHARED / "membrane"


@pytest.mark.skipif(not MEMBRANE.is_dir(), reason="needs ../shared/datasets/membrane")
def test_segmentation_audit_checks_masks_and_copies(tmp_path):
    """Membrane images (shrunk to 128 px) with index masks: a class painted into one mask only, a mask of
    the wrong size, an image without a mask, and a copy of an image (with its mask) under another name."""
    data = tmp_path / "seg"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    (data / "classes.txt").write_text("background\nmembrane\nstray\n")
    for n in range(6):
        img = Image.open(MEMBRANE / "image" / f"{n}.png").resize((128, 128))
        mask = np.asarray(Image.open(MEMBRANE / "label" / f"{n}.png").convert("L").resize((128, 128))) > 127
        mask = mask.astype(np.uint8)
        if n == 1:
            mask[10:20, 10:20] = 2
        img.save(data / "images" / f"{n}.png")
        size = (100, 100) if n == 2 else (128, 128)
        Image.fromarray(mask).resize(size, Image.NEAREST).save(data / "masks" / f"{n}.png")
    Image.open(MEMBRANE / "image" / "7.png").resize((128, 128)).save(data / "images" / "lonely.png")
    shutil.copy(data / "images" / "0.png", data / "images" / "0b.png")
    shutil.copy(data / "masks" / "0.png", data / "masks" / "0b.png")
    res = CliRunner().invoke(app, ["audit", str(data), "--out", str(tmp_path / "out"), "--fix", str(tmp_path / "fix"),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path / "out" / "issues.csv")
    kinds = {(r["kind"], Path(r["path"]).name) for r in rows}
    assert {("rare_class", "1.png"), ("mask_error", "2.png"), ("mask_error", "lonely.png"),
            ("duplicate", "0b.png")} <= kinds, kinds
    assert [r["given_label"] for r in rows if r["kind"] == "rare_class"] == ["stray"]
    # neighbouring serial sections are alike, but only the planted copy is called one
    assert [Path(r["path"]).name for r in rows if r["kind"] in ("leakage", "duplicate")] == ["0b.png"]
    kept = [Path(r["path"]).name for r in _rows(tmp_path / "fix" / "all.csv")]
    assert sorted(kept) == ["0.png", "1.png", "3.png", "4.png", "5.png"]  # the copy left out of a set without splits
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["task"] == "segment" and report["balance"]["counts"]["all"]["stray"] == 1
