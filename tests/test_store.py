"""Feature files: Parquet / npy / pkl hold identical features, manifests, pickles only on request, bad input."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

import visionzoo
from visionzoo.errors import UsageError

REQUIRED = {"model", "spec", "weights_sha256", "layer", "pool", "normalize", "dim", "dtype", "count", "failures",
            "format", "versions"}


@pytest.fixture(scope="module")
def three_formats(photo_dir, tmp_path_factory):
    """The sample photos extracted once per format (with one corrupt and one empty file among them)."""
    folder = tmp_path_factory.mktemp("store_inputs")
    for p in sorted(photo_dir.glob("*.jpg")):
        os.symlink(p, folder / p.name)
    (folder / "broken.jpg").write_bytes((photo_dir / "coffee.jpg").read_bytes()[:2000])
    (folder / "empty.png").write_bytes(b"")
    out = tmp_path_factory.mktemp("store_out")
    results = {fmt: visionzoo.extract([folder], out / f"feats.{fmt}", format=fmt, batch_size=4)
               for fmt in ("parquet", "npy", "pkl")}
    return folder, out, results


def test_parquet_npy_and_pkl_hold_identical_features(three_formats):
    folder, out, results = three_formats
    loaded = {fmt: visionzoo.load_features(r.outputs[0], allow_pickle=True) for fmt, r in results.items()}
    paths, matrix = loaded["parquet"]
    assert paths == sorted(str(folder / f"{n}.jpg") for n in ("astronaut", "camera", "chelsea", "coffee", "rocket"))
    assert matrix.dtype == np.float32 and matrix.shape == (5, 1280)
    assert np.all(np.linalg.norm(matrix, axis=1) > 1)  # real features, not zeros
    for fmt in ("npy", "pkl"):
        assert loaded[fmt][0] == paths
        np.testing.assert_array_equal(loaded[fmt][1], matrix)
    # The classic dict, readable by old scripts with plain pickle.
    with open(results["pkl"].outputs[0], "rb") as f:
        classic = pickle.load(f)
    assert isinstance(classic, dict) and sorted(classic) == paths
    assert all(isinstance(v, np.ndarray) and v.shape == (1280,) for v in classic.values())
    np.testing.assert_array_equal(classic[paths[2]], matrix[2])
    # The Parquet folder is a plain dataset any Arrow reader opens (underscore files are ignored).
    table = pq.read_table(results["parquet"].outputs[0])
    assert table.num_rows == 5 and set(table.column_names) == {"path", "feature"}


def test_failures_are_listed_with_reasons_in_every_format(three_formats):
    folder, out, results = three_formats
    for fmt, result in results.items():
        assert result.count == 5 and result.total == 7 and result.exit_code == 1
        reasons = dict(result.failures)
        assert set(reasons) == {str(folder / "broken.jpg"), str(folder / "empty.png")}
        assert "empty" in reasons[str(folder / "empty.png")]
        manifest = visionzoo.read_manifest(result.outputs[0])
        assert REQUIRED <= set(manifest)
        assert manifest["count"] == 5 and manifest["format"] == fmt and manifest["dim"] == 1280
        assert {f["path"] for f in manifest["failures"]} == set(reasons)
        assert manifest["spec"]["arch"] == "tf_efficientnet_lite0" and manifest["layer"] == "pre_logits"
    failures = pq.read_table(out / "feats.parquet" / "_failures.parquet").to_pylist()
    assert {r["path"] for r in failures} == set(dict(results["parquet"].failures))
    assert all(r["reason"] for r in failures)
    # A lone shard describes itself too.
    shard = next((out / "feats.parquet").glob("part-*.parquet"))
    assert visionzoo.read_manifest(shard)["weights_sha256"] == visionzoo.read_manifest(out / "feats.parquet")["weights_sha256"]


def test_pickle_needs_explicit_consent(three_formats):
    _, _, results = three_formats
    with pytest.raises(UsageError, match="arbitrary code"):
        visionzoo.load_features(results["pkl"].outputs[0])


def test_existing_output_is_refused_without_resume_and_cli_exit_codes(three_formats, tmp_path):
    folder, out, _ = three_formats
    with pytest.raises(UsageError, match="--resume"):
        visionzoo.extract([folder], out / "feats.parquet")
    cli = [sys.executable, "-m", "visionzoo", "extract", str(folder), "--quiet"]
    env = {**os.environ, "VISIONZOO_OFFLINE": "1"}
    refused = subprocess.run(cli + ["--out", str(out / "feats.npy")], capture_output=True, text=True, env=env)
    assert refused.returncode == 2 and "already exists" in refused.stderr
    before = (out / "feats.npy").stat().st_mtime_ns
    # --resume on a finished run computes nothing, rewrites nothing, still reports the failures.
    resumed = subprocess.run(cli + ["--out", str(out / "feats.npy"), "--resume"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 1, resumed.stderr
    assert "broken.jpg" in resumed.stderr and "0 computed now" in resumed.stderr
    assert (out / "feats.npy").stat().st_mtime_ns == before


def test_resume_refuses_other_inputs_or_settings(three_formats, photo_dir):
    folder, out, _ = three_formats
    with pytest.raises(UsageError, match="inputs"):
        visionzoo.extract([folder, photo_dir / "chelsea.jpg"], out / "feats.parquet", resume=True)
    with pytest.raises(UsageError, match="layer"):
        visionzoo.extract([folder], out / "feats.npy", layer="logits", resume=True)


def test_float16_files_load_as_float32(photo_dir, tmp_path, three_formats):
    _, _, results = three_formats
    result = visionzoo.extract([photo_dir / "chelsea.jpg", photo_dir / "coffee.jpg"], tmp_path / "half.npy",
                               dtype="float16")
    paths, matrix = visionzoo.load_features(result.outputs[0])
    assert np.load(result.outputs[0]).dtype == np.float16 and matrix.dtype == np.float32
    full = dict(zip(*visionzoo.load_features(results["parquet"].outputs[0])))
    for p, row in zip(paths, matrix):
        np.testing.assert_allclose(row, full[p.replace(str(photo_dir), str(three_formats[0]))], rtol=2e-3, atol=2e-3)
