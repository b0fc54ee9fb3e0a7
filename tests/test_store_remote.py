"""Feature files on an object store: `extract --out s3://...` against a real S3 API (a local moto
server), equal to a local run, atomic per shard, resumable, read back by visionzoo's readers."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("moto.server")
from PIL import Image  # noqa: E402
from pyarrow import fs as pafs  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import visionzoo  # noqa: E402
from visionzoo.batch import partition  # noqa: E402
from visionzoo.cli import app  # noqa: E402
from visionzoo.downstream.features import open_features  # noqa: E402
from visionzoo.store import Location, finished_shards, load_features, read_manifest  # noqa: E402
from visionzoo.store.location import _resolve  # noqa: E402

BUCKET = "vz-test"


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free port, reached the way users reach S3: AWS_* environment variables."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
            mp.setenv(key, value)
        _resolve.cache_clear()
        fs = pafs.FileSystem.from_uri(f"s3://{BUCKET}?allow_bucket_creation=true")[0]
        fs.create_dir(BUCKET)
        yield fs, f"{host}:{port}"
        _resolve.cache_clear()
    server.stop()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Ten small distinct JPEGs and one broken file."""
    folder = tmp_path_factory.mktemp("remote_imgs")
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(folder / f"img_{i:02d}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder


@pytest.fixture(scope="module")
def local_run(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("remote_local") / "feats.parquet"
    visionzoo.extract([images], out, partition_size=4, batch_size=4)
    return out, *load_features(out)


def _keys(fs, prefix: str) -> list[str]:
    return sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(prefix, allow_not_found=True)))


def test_extract_to_s3_equals_a_local_run_and_reads_back(s3, images, local_run):
    fs, _ = s3
    local, paths, feats = local_run
    uri = f"s3://{BUCKET}/cli/feats.parquet"
    done = CliRunner().invoke(app, ["extract", str(images), "--out", uri, "--partition-size", "4",
                                    "--batch-size", "4", "--quiet"])
    assert done.exit_code == 1, done.output  # broken.jpg failed, the rest is written
    assert uri in done.output and "broken.jpg" in done.output
    assert _keys(fs, f"{BUCKET}/cli/feats.parquet") == sorted(p.name for p in local.iterdir())
    got_paths, got = load_features(uri)
    assert got_paths == paths and len(paths) == 10
    np.testing.assert_allclose(got, feats, rtol=1e-5, atol=1e-6)
    manifest = read_manifest(uri)
    assert manifest["status"] == "complete" and manifest["count"] == 10
    assert open_features(uri).paths == paths  # what search / cluster / probe / dedup open
    assert [f["path"] for f in manifest["failures"]] == [str(images / "broken.jpg")]
    # The same store through the URI's own query, with no endpoint in the environment.
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_ENDPOINT_URL")
        by_query = f"{uri}?endpoint_override={s3[1]}&scheme=http"
        assert load_features(by_query)[0] == paths
        assert str(Location.of(by_query)) == by_query


def test_interrupted_run_resumes_on_s3_without_recomputing(s3, images, local_run, monkeypatch):
    fs, _ = s3
    _, paths, feats = local_run
    uri = f"s3://{BUCKET}/resume/feats.parquet"
    written: list[int] = []
    real = partition.write_shard

    def failing(folder, k, *args, **kwargs):
        if k == 1 and not written.count(-1):
            written.append(-1)
            raise RuntimeError("injected crash after shard 0")
        written.append(k)
        return real(folder, k, *args, **kwargs)

    monkeypatch.setattr(partition, "write_shard", failing)
    with pytest.raises(RuntimeError, match="injected"):
        visionzoo.extract([images], uri, partition_size=4, batch_size=4)
    assert finished_shards(uri) == {0}
    assert read_manifest(uri)["status"] == "running" and read_manifest(uri)["count"] == 3
    with pytest.raises(visionzoo.errors.UsageError, match="--resume"):
        visionzoo.extract([images], uri, partition_size=4, batch_size=4)
    with pytest.raises(visionzoo.errors.UsageError, match="cannot create s3://no-such-bucket/x.parquet"):
        visionzoo.extract([images], "s3://no-such-bucket/x.parquet")  # buckets are never created
    result = visionzoo.extract([images], uri, partition_size=4, batch_size=4, resume=True)
    assert written == [0, -1, 1, 2] and result.computed == 11 - 4  # shard 0 is not recomputed
    got_paths, got = load_features(uri)
    assert got_paths == paths
    np.testing.assert_allclose(got, feats, rtol=1e-5, atol=1e-6)
    assert not [k for k in _keys(fs, f"{BUCKET}/resume/feats.parquet") if k.endswith(".tmp")]


def test_atomic_output_on_s3_leaves_nothing_when_a_write_fails(s3):
    fs, _ = s3
    target = Location.of(f"s3://{BUCKET}/atomic dir/part-00000.parquet")  # keys are taken literally
    with pytest.raises(OSError, match="network"):
        with target.atomic_output() as out:
            out.write(b"half a shard")
            raise OSError("network gone")
    assert not target.exists() and _keys(fs, f"{BUCKET}/atomic dir") == []
    with target.atomic_output() as out:
        out.write(b"whole")
    assert target.read_bytes() == b"whole" and _keys(fs, f"{BUCKET}/atomic dir") == ["part-00000.parquet"]


@pytest.mark.parametrize("fmt", ["npy", "pkl"])
def test_npy_and_pkl_on_s3(s3, images, local_run, fmt):
    fs, _ = s3
    _, paths, feats = local_run
    result = visionzoo.extract([images], f"s3://{BUCKET}/{fmt}/feats", format=fmt, partition_size=4, batch_size=4)
    assert result.outputs == [f"s3://{BUCKET}/{fmt}/feats.{fmt}"]
    got_paths, got = load_features(result.outputs[0], allow_pickle=True)
    assert got_paths == paths
    np.testing.assert_allclose(got, feats, rtol=1e-5, atol=1e-6)
    expected = {"npy": ["feats.npy", "feats.npy.manifest.json", "feats.paths.txt"],
                "pkl": ["feats.pkl", "feats.pkl.manifest.json"]}[fmt]
    assert _keys(fs, f"{BUCKET}/{fmt}") == expected  # the .parts folder is gone
    assert read_manifest(result.outputs[0])["count"] == 10


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ray_engine_writes_its_shards_to_s3(s3, images, local_run):
    pytest.importorskip("ray")
    import ray

    _, paths, feats = local_run
    uri = f"s3://{BUCKET}/ray/feats.parquet"
    ray.shutdown()  # a Ray started before the fixture set AWS_* would have workers without them
    try:
        result = visionzoo.extract([images], uri, partition_size=4, batch_size=4, engine="ray", num_workers=2)
    finally:
        ray.shutdown()
    assert result.count == 10 and finished_shards(uri) == {0, 1, 2}
    got_paths, got = load_features(uri)
    assert got_paths == paths
    np.testing.assert_allclose(got, feats, rtol=1e-5, atol=1e-6)


def test_inputs_from_s3_prefix_and_glob(s3, images, local_run, tmp_path):
    fs, _ = s3
    _, paths, feats = local_run
    for p in sorted(images.iterdir()):
        with fs.open_output_stream(f"{BUCKET}/imgs/{p.name}") as f:
            f.write(p.read_bytes())
    with fs.open_output_stream(f"{BUCKET}/imgs/notes.txt") as f:
        f.write(b"not an image")
    result = visionzoo.extract([f"s3://{BUCKET}/imgs/"], tmp_path / "feats.parquet", partition_size=4)
    assert result.skipped == [f"s3://{BUCKET}/imgs/notes.txt"]
    assert result.failures[0][0] == f"s3://{BUCKET}/imgs/broken.jpg"
    got_paths, got = load_features(result.outputs[0])
    assert got_paths == [f"s3://{BUCKET}/imgs/{p.rpartition('/')[2]}" for p in paths]
    np.testing.assert_allclose(got, feats, rtol=1e-5, atol=1e-6)
    listed = visionzoo.data.inputs.expand_inputs(f"s3://{BUCKET}/imgs/img_0[0-4].jpg").files
    assert listed == [f"s3://{BUCKET}/imgs/img_0{i}.jpg" for i in range(5)]
    with pytest.raises(visionzoo.errors.UsageError, match="no such file"):
        visionzoo.data.inputs.expand_inputs(f"s3://{BUCKET}/nothing-here/")
