"""The Ray engine computes the local runner's partitions as Ray tasks: the same rows, order, values
and manifest on real photos; a run stopped part-way resumes under either engine; classify too."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
from visionzoo import (
    classify,  # noqa: E402
    extract,  # noqa: E402
)
from visionzoo.store import load_features  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")   # one local Ray per worker process; keep them together
RACCOON = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raccoon" / "images"
TIMING = {"seconds", "images_per_second", "created", "finished", "started", "elapsed"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    if not RACCOON.is_dir():
        pytest.skip("../shared/datasets/raccoon is not beside the repo")
    folder = tmp_path_factory.mktemp("raccoons")
    for p in sorted(RACCOON.glob("*.jpg"))[:30]:
        shutil.copy(p, folder / p.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder


@pytest.fixture(scope="module")
def ray_local():
    import ray

    yield ray
    ray.shutdown()


def _manifest(out: Path) -> dict:
    return {k: v for k, v in json.loads((out / "_manifest.json").read_text()).items() if k not in TIMING}


@pytest.mark.slow
def test_ray_engine_equals_local_and_resumes_across_engines(photos, tmp_path, ray_local):
    local, on_ray = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    extract(photos, local, partition_size=8)
    extract(photos, on_ray, partition_size=8, engine="ray")
    (lp, lf), (rp, rf) = load_features(local), load_features(on_ray)
    assert list(rp) == list(lp) and len(lp) == 30
    np.testing.assert_allclose(rf, lf, atol=1e-5)
    assert sorted(p.name for p in on_ray.iterdir()) == sorted(p.name for p in local.iterdir())
    a, b = _manifest(local), _manifest(on_ray)
    assert {k: a[k] for k in a if k != "engine"} == {k: b[k] for k in b if k != "engine"}
    # A run stopped part-way (shards 1 and 3 missing) is finished by the other engine, and vice versa.
    for first, then in ((local, "ray"), (on_ray, "local")):
        shards = sorted(first.glob("part-*.parquet"))
        for shard in shards[1::2]:
            shard.unlink()
        manifest = json.loads((first / "_manifest.json").read_text())   # as a killed run leaves it
        (first / "_manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
        result = extract(photos, first, partition_size=8, resume=True, engine=then)
        assert result.computed == 15     # the two missing partitions (8 + 7 photos), nothing else
        paths, feats = load_features(first)
        assert list(paths) == list(lp)
        np.testing.assert_allclose(feats, lf, atol=1e-5)


@pytest.mark.slow
def test_classify_on_ray_equals_local(photos, ray_local):
    files = sorted(str(p) for p in photos.glob("*.jpg"))[:12]   # broken.jpg sorts first
    local = classify(files, top_k=3)
    on_ray = classify(files, top_k=3, engine="ray")
    assert [r.path for r in on_ray] == [r.path for r in local]
    for a, b in zip(local, on_ray):
        assert [p.label for p in a.predictions] == [p.label for p in b.predictions]
        assert (a.error is None) == (b.error is None)
    assert on_ray[0].path.endswith("broken.jpg") and on_ray[0].error and not on_ray[1].error
