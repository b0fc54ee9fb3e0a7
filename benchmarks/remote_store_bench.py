"""What an object store costs a feature file: the same work to a local folder and to s3:// on a
LOCAL moto server (an S3 API on 127.0.0.1: no network latency or bandwidth limit, so this measures
our request pattern and pyarrow's S3 client, not real S3).

1. Store only: `--shards` shards of (`--rows` x 1280) float32 features (lite0's size) written with
   write_shard (atomic: temporary key, then server-side copy), then `--resume`'s listing, finalize
   (footers + _failures.parquet + manifest) and load_features.
2. End to end: `visionzoo.extract` of the raccoon photos (lite0) with outputs local vs s3://,
   and with inputs read from s3:// too (default decoding threads, and 8: reads wait on the network).

    .venv/bin/python benchmarks/remote_store_bench.py [--shards 20] [--rows 1024] [--partition-size 50]
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VISIONZOO_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raccoon" / "images"


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def store_only(root: str, shards: int, rows: int) -> dict[str, float]:
    import numpy as np

    from visionzoo.store import finalize, finished_shards, layout_for, load_features, write_shard

    layout = layout_for(root)
    manifest = {"model": "bench", "dim": 1280, "dtype": "float32", "format": "parquet"}
    layout.start(manifest)
    matrix = np.random.default_rng(0).standard_normal((rows, 1280)).astype(np.float32)
    paths = [f"img_{i:07d}.jpg" for i in range(rows)]
    write_s, _ = _timed(lambda: [write_shard(layout.shards, k, paths, matrix, [], dtype="float32", manifest=manifest)
                                 for k in range(shards)])
    list_s, done = _timed(lambda: finished_shards(layout.shards))
    assert done == set(range(shards))
    final_s, _ = _timed(lambda: finalize(layout, manifest))
    load_s, (_, loaded) = _timed(lambda: load_features(root))
    assert loaded.shape == (shards * rows, 1280)
    return {"write/shard": write_s / shards, "list": list_s, "finalize": final_s, "load": load_s}


def main() -> None:
    from moto.server import ThreadedMotoServer
    from pyarrow import fs as pafs

    from visionzoo import extract

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--partition-size", type=int, default=50)
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=f"http://{host}:{port}")
    s3 = pafs.FileSystem.from_uri("s3://bench?allow_bucket_creation=true")[0]
    s3.create_dir("bench")
    mb = args.rows * 1280 * 4 / 1e6
    try:
        with tempfile.TemporaryDirectory(prefix="vz-remote-bench-") as tmp:
            print(f"1. store only: {args.shards} shards of {args.rows} x 1280 float32 ({mb:.1f} MB each)")
            print(f"{'where':<22}{'write s/shard':>14}{'list s':>9}{'finalize s':>12}{'load s':>9}")
            for name, root in (("local folder", f"{tmp}/store.parquet"), ("s3:// (local moto)", "s3://bench/store.parquet")):
                r = store_only(root, args.shards, args.rows)
                print(f"{name:<22}{r['write/shard']:>14.3f}{r['list']:>9.3f}{r['finalize']:>12.3f}{r['load']:>9.2f}")

            photos = sorted(DATA.glob("*.jpg"))
            if not photos:
                print("2. skipped: ../shared/datasets/raccoon is not beside the repo")
                return
            for p in photos:
                with s3.open_output_stream(f"bench/photos/{p.name}") as f:
                    f.write(p.read_bytes())
            print(f"\n2. extract, {len(photos)} raccoon photos, lite0, partition size {args.partition_size}")
            print(f"{'inputs -> output':<40}{'seconds':>9}{'img/s':>8}")
            extract(photos[:4], f"{tmp}/warm.parquet")  # the ONNX export, once, outside the timings
            runs = (("local -> local", DATA, f"{tmp}/e2e.parquet", None),
                    ("local -> s3:// (moto)", DATA, "s3://bench/e2e.parquet", None),
                    ("s3:// -> s3:// (moto)", "s3://bench/photos/", "s3://bench/e2e_s3in.parquet", None),
                    ("s3:// -> s3:// (moto), --threads 8", "s3://bench/photos/", "s3://bench/e2e_t8.parquet", 8))
            for name, inputs, out, threads in runs:  # threads: decode + infer pipelines (default: the cores)
                seconds, result = _timed(lambda: extract(inputs, out, partition_size=args.partition_size,
                                                         threads=threads))
                print(f"{name:<40}{seconds:>9.1f}{result.count / seconds:>8.1f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
