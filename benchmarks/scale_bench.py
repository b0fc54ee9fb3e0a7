"""The Ray engine against the local runner on this machine: real photos (the raccoon set, copied
`--copies` times under new names so the run has several partitions), lite0 features, Parquet.

Rows: the local runner; Ray with 1 and 2 tasks at once (a local Ray started once for the run and
kept, as a cluster would be). Columns: wall seconds of the `extract` call, images/s, and the
overhead per partition: (Ray seconds - local seconds) / partitions. Ray's own start-up (a local
cluster) is timed separately: on a real cluster it is paid once, not per run.

    .venv/bin/python benchmarks/scale_bench.py [--copies 3] [--partition-size 96]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VISIONZOO_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raccoon" / "images"


def main() -> None:
    import ray

    from visionzoo import extract
    from visionzoo.batch.ray_engine import LOCAL_OBJECT_STORE
    from visionzoo.cpus import usable_cpus

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--partition-size", type=int, default=96)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vz-scale-bench-") as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        for k in range(args.copies):
            for p in sorted(DATA.glob("*.jpg")):
                shutil.copy(p, photos / f"{k}_{p.name}")
        n = len(list(photos.iterdir()))
        parts = -(-n // args.partition_size)
        extract(photos, Path(tmp) / "warm.parquet", partition_size=args.partition_size)  # ONNX export cached
        start = time.perf_counter()
        ray.init(num_cpus=usable_cpus(), object_store_memory=LOCAL_OBJECT_STORE, include_dashboard=False,
                 logging_level="ERROR")
        ray_start = time.perf_counter() - start
        print(f"{n} real photos (raccoon x {args.copies}), {parts} partitions of {args.partition_size}, "
              f"{os.cpu_count()} CPU cores; local Ray start-up {ray_start:.1f} s (paid once per cluster)\n")
        print("| engine | tasks at once | seconds | images/s | overhead per partition vs local |")
        print("|---|---|---|---|---|")
        local = None
        for engine, workers in (("local", None), ("ray", 1), ("ray", 2)):
            start = time.perf_counter()
            extract(photos, Path(tmp) / f"{engine}{workers}.parquet", partition_size=args.partition_size,
                    engine=engine, num_workers=workers)
            seconds = time.perf_counter() - start
            local = local or seconds
            extra = "-" if engine == "local" else f"{(seconds - local) / parts:+.2f} s"
            print(f"| {engine} | {workers or '-'} | {seconds:.1f} | {n / seconds:.1f} | {extra} |", flush=True)
        ray.shutdown()


if __name__ == "__main__":
    main()
