"""Downstream jobs on real feature files written by `visionzoo.extract` (lite0, offline).

lfw_subset (100 faces, 100 non-faces) is extracted once for the module: search, probe,
cluster and map run on it. Near-duplicate detection runs on distinct skimage photos with
planted resized and recompressed copies (tests/test_downstream_dedup.py).
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import visionzoo
from visionzoo.cli import app
from visionzoo.downstream import build_index, cluster, feature_map, is_probe_dir, search, train_probe
from visionzoo.errors import UsageError
from visionzoo.store import load_features

runner = CliRunner()
pytestmark = pytest.mark.xdist_group("downstream_lfw")  # one worker computes the module's features once


@pytest.fixture(scope="module")
def lfw_features(lfw_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lfwfeat") / "lfw.parquet"
    visionzoo.extract([str(lfw_dir)], out, "efficientnet_lite0")
    return out


def label(path: str) -> str:
    return Path(path).parent.name


def test_nearest_neighbour_mostly_shares_the_label(lfw_features, tmp_path):
    idx = build_index(lfw_features, tmp_path / "idx")
    assert idx.kind == "flat" and len(idx.paths) == 200
    results = search(tmp_path / "idx", idx.paths, k=1)
    agree = np.mean([label(r.neighbours[0].path) == label(r.query) for r in results])
    print(f"lfw_subset 1-NN label agreement (lite0 pre-logits, cosine): {agree:.3f}")
    assert agree >= 0.9
    assert all(r.neighbours[0].path != r.query for r in results)  # a stored query never finds itself


def test_approximate_index_recall_against_exact(lfw_features):
    exact = build_index(lfw_features, exact=True)
    approx = build_index(lfw_features, exact=False)
    assert approx.kind == "ivf" and approx.recall >= 0.95  # nprobe tuned on stored rows at build time
    paths, x = load_features(lfw_features)
    _, truth = exact.search_vectors(x, 10)
    _, found = approx.search_vectors(x, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
    print(f"IVF recall@10 vs exact on lfw_subset: {recall:.3f}")
    assert recall >= 0.9


def test_search_cli_image_queries_grid_and_bad_file(lfw_features, lfw_dir, tmp_path):
    assert runner.invoke(app, ["index", str(lfw_features), "--out", str(tmp_path / "idx")]).exit_code == 0
    # A new image (a face upscaled and recompressed, not in the index) and a corrupt file.
    Image.open(lfw_dir / "face" / "007.png").resize((50, 50)).save(tmp_path / "query.jpg", quality=80)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    res = runner.invoke(app, ["search", str(tmp_path / "idx"), str(tmp_path / "query.jpg"),
                              str(tmp_path / "broken.jpg"), "--top-k", "5", "--out", str(tmp_path / "s.json"),
                              "--grid", str(tmp_path / "g.png")])
    assert res.exit_code == 1, res.output
    out = {Path(r["query"]).name: r for r in json.loads((tmp_path / "s.json").read_text())}
    assert out["broken.jpg"]["error"] and not out["broken.jpg"]["neighbours"]
    top = out["query.jpg"]["neighbours"]
    assert len(top) == 5 and Path(top[0]["path"]).name == "007.png" and top[0]["score"] > 0.9
    assert [n["score"] for n in top] == sorted((n["score"] for n in top), reverse=True)
    assert Image.open(tmp_path / "g.png").size[0] > 500


def test_search_refuses_features_of_other_weights(lfw_features, lfw_dir, tmp_path):
    build_index(lfw_features, tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "index.json").read_text())
    meta["manifest"]["weights_sha256"] = "0" * 64
    (tmp_path / "idx" / "index.json").write_text(json.dumps(meta))
    Image.open(lfw_dir / "face" / "001.png").save(tmp_path / "new.png")
    res = runner.invoke(app, ["search", str(tmp_path / "idx"), str(tmp_path / "new.png")])
    assert res.exit_code == 2 and "weights" in res.output  # a usage error, one line, no traceback


def test_classic_pickle_needs_explicit_permission(lfw_features, tmp_path):
    paths, x = load_features(lfw_features)
    with open(tmp_path / "old.pkl", "wb") as f:
        pickle.dump({p: v for p, v in zip(paths, x)}, f)
    res = runner.invoke(app, ["index", str(tmp_path / "old.pkl"), "--out", str(tmp_path / "idx")])
    assert res.exit_code == 2 and "pickle" in res.output
    res = runner.invoke(app, ["index", str(tmp_path / "old.pkl"), "--out", str(tmp_path / "idx"), "--allow-pickle"])
    assert res.exit_code == 0, res.output
    assert search(tmp_path / "idx", paths[0], k=3)[0].neighbours  # stored paths work without a manifest
    assert search(tmp_path / "idx", os.path.join(os.path.dirname(paths[0]), ".", os.path.basename(paths[0])),
                  k=3)[0].neighbours[0].path != paths[0]  # the same file written differently is still stored
    Image.open(paths[0]).save(tmp_path / "new.png")
    with pytest.raises(UsageError, match="manifest"):
        search(tmp_path / "idx", tmp_path / "new.png", k=3)


@pytest.mark.parametrize("kind", ["logreg", "knn"])
def test_probe_cross_validated_accuracy_and_predict(lfw_features, lfw_dir, tmp_path, kind):
    report = train_probe(lfw_features, out=tmp_path / "probe", classifier=kind, cv=5)
    print(f"{kind} probe on lfw_subset: CV accuracy {report.accuracy:.3f}, macro F1 {report.macro_f1:.3f}")
    assert report.accuracy >= 0.95 and report.folds == 5 and report.count == 200
    assert set(report.per_class) == {"face", "nonface"} and min(m["f1"] for m in report.per_class.values()) >= 0.9
    assert is_probe_dir(tmp_path / "probe") and not is_probe_dir(lfw_dir)
    assert not any(p.suffix in (".pkl", ".pickle") for p in (tmp_path / "probe").iterdir())
    (tmp_path / "bad.png").write_bytes(b"")
    inputs = [str(lfw_dir / "face" / "003.png"), str(lfw_dir / "nonface" / "150.png"), str(tmp_path / "bad.png")]
    results = visionzoo.predict(tmp_path / "probe", inputs, top_k=2)
    by_name = {Path(r.path).name: r for r in results}
    assert by_name["003.png"].predictions[0].label == "face"
    assert by_name["150.png"].predictions[0].label == "nonface"
    assert by_name["bad.png"].error and not by_name["bad.png"].predictions
    assert abs(sum(p.probability for p in by_name["003.png"].predictions) - 1) < 1e-4


def test_saved_logreg_probe_matches_sklearn(lfw_features, tmp_path):
    """The probe is stored as arrays (no pickle) and reproduces sklearn's probabilities."""
    from visionzoo.downstream.features import l2_normalize
    from visionzoo.downstream.probe import Probe, _estimator

    train_probe(lfw_features, out=tmp_path / "probe")
    paths, x = load_features(lfw_features)
    y = np.array([label(p) == "nonface" for p in paths], int)
    reference = _estimator("logreg", len(y)).fit(l2_normalize(x.copy()), y).predict_proba(l2_normalize(x.copy()))
    np.testing.assert_allclose(Probe(tmp_path / "probe").probabilities(x), reference, atol=1e-4)
    # The CLI: folder labels by default, `--classifier` (not `--model`, which names a backbone elsewhere).
    res = runner.invoke(app, ["probe", str(lfw_features), "--classifier", "knn", "--cv", "3"])
    assert res.exit_code == 0, res.output
    assert "knn probe" in res.output and "nonface" in res.output
    assert runner.invoke(app, ["probe", str(lfw_features), "--model", "knn"]).exit_code == 2


def test_probe_labels_from_csv_and_errors(lfw_features, tmp_path):
    paths, _ = load_features(lfw_features)
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\n" + "".join(f"{p},{'a' if i % 2 else 'b'}\n" for i, p in enumerate(paths[:60])))
    report = train_probe(lfw_features, csv, cv=3)
    assert report.count == 60 and report.unlabelled == 140
    assert 0.2 <= report.accuracy <= 0.8  # arbitrary labels: chance level, not memorised
    csv.write_text("path,label\n" + "".join(f"{p},only\n" for p in paths))
    with pytest.raises(UsageError, match="two labels"):
        train_probe(lfw_features, csv)


def test_cluster_auto_finds_faces_and_nonfaces(lfw_features, tmp_path):
    res = runner.invoke(app, ["cluster", str(lfw_features), "--clusters", "auto", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "c" / "clusters.json").read_text())
    rows = (tmp_path / "c" / "assignments.csv").read_text().splitlines()[1:]
    assert len(rows) == 200 and summary["k"] == 2
    assert len(list((tmp_path / "c").glob("cluster_*.png"))) == summary["k"]
    got = {}
    for line in rows:
        path, cid, _ = line.rsplit(",", 2)
        got.setdefault(int(cid), []).append(label(path))
    purity = sum(max(v.count("face"), v.count("nonface")) for v in got.values()) / 200
    print(f"k=auto -> {summary['k']} clusters, purity vs face/nonface {purity:.3f}")
    assert purity >= 0.9
    fixed = cluster(lfw_features, 4)
    assert fixed.k == 4 and sorted(fixed.sizes, reverse=True) == fixed.sizes and sum(fixed.sizes) == 200


def test_map_png_and_html_keep_neighbourhoods(lfw_features, tmp_path):
    result = feature_map(lfw_features, tmp_path / "map.html", method="tsne")
    assert result.xy.shape == (200, 2) and result.method == "tsne"
    page = (tmp_path / "map.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 200 and "mousemove" in page and "<script src" not in page
    d = ((result.xy[:, None] - result.xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    agree = np.mean(np.array(result.labels)[d.argmin(1)] == np.array(result.labels))
    print(f"t-SNE map: 1-NN label agreement in 2-D {agree:.3f}")
    assert agree >= 0.9
    res = runner.invoke(app, ["map", str(lfw_features), "--out", str(tmp_path / "map.png")])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "map.png").size[0] > 400


def test_folder_query_uses_stored_rows_and_usage_errors(lfw_features, lfw_dir, tmp_path):
    idx = build_index(lfw_features)
    results = search(idx, str(lfw_dir / "nonface"), k=3)  # stored files: no model needed, never themselves
    assert len(results) == 100 and all(r.neighbours and r.neighbours[0].path != r.query for r in results)
    with pytest.raises(UsageError, match="neither an index folder nor a feature file"):
        search(tmp_path, "x.jpg")
    direct = search(lfw_features, str(lfw_dir / "nonface"), k=3)  # a feature file is indexed in memory
    assert [[n.path for n in r.neighbours] for r in direct] == [[n.path for n in r.neighbours] for r in results]
    with pytest.raises(UsageError, match=".png or .html"):
        feature_map(lfw_features, tmp_path / "map.pdf")
    with pytest.raises(UsageError, match="between 1 and"):
        cluster(lfw_features, 500)
    res = runner.invoke(app, ["cluster", str(lfw_features), "--clusters", "many"])
    assert res.exit_code == 2 and "--clusters" in res.output


def test_feature_files_work_from_any_folder_and_after_a_move(tmp_path, monkeypatch):
    """Rows name their images by absolute path and the manifest records the collection's folder, so
    dedup, cluster and search work from anywhere; a moved collection is named, and --root points at it."""
    from skimage import data

    photos = tmp_path / "project" / "photos"
    photos.mkdir(parents=True)
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        Image.fromarray(getattr(data, name)()).save(photos / f"{name}.jpg", quality=90)
    cat = Image.open(photos / "chelsea.jpg")
    cat.resize((cat.width // 2, cat.height // 2)).save(photos / "chelsea_small.jpg", quality=85)
    monkeypatch.chdir(tmp_path / "project")
    visionzoo.extract(["photos"], "feats.parquet")          # relative paths, as a user types them
    monkeypatch.chdir(tmp_path)                              # ... and later works from elsewhere
    res = runner.invoke(app, ["dedup", "project/feats.parquet"])
    assert res.exit_code == 0 and "chelsea_small.jpg" in res.output and "1 group(s)" in res.output, res.output
    res = runner.invoke(app, ["cluster", "project/feats.parquet", "--clusters", "2", "--out", "c"])
    assert res.exit_code == 0 and (tmp_path / "c" / "cluster_00.png").is_file(), res.output
    found = visionzoo.search("project/feats.parquet", ["project/photos/coffee.jpg"], k=2)[0]
    assert found.error is None and all(Path(n.path).name != "coffee.jpg" for n in found.neighbours)

    (tmp_path / "project" / "photos").rename(tmp_path / "moved")
    res = runner.invoke(app, ["dedup", "project/feats.parquet"])
    assert res.exit_code == 2 and "--root" in res.output and "is missing" in res.output, res.output
    res = runner.invoke(app, ["dedup", "project/feats.parquet", "--root", "moved"])
    assert res.exit_code == 0 and str(tmp_path / "moved" / "chelsea_small.jpg") in res.output, res.output
    res = runner.invoke(app, ["cluster", "project/feats.parquet", "--clusters", "2", "--out", "c2"])
    assert res.exit_code == 2 and "--root" in res.output
