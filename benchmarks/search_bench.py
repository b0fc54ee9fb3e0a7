"""Similarity search at scale: N random 1280-d vectors (default 1,000,000), exact vs approximate.

Prints, measured in one run: build time, memory, query latency (single query and batched) of the
exact index (FAISS flat inner product) and of the approximate one `visionzoo index` builds above
its size threshold (IVF-Flat, nlist ~ sqrt(N), nprobe tuned at build time to recall@10 >= 0.95
on 200 stored rows), and the approximate index's recall@10 against exact search for fresh
queries at the tuned nprobe and its neighbours.

Data (--data): "clustered" (default) imitates image features: 10,000 overlapping "classes"
whose members vary in a 64-d subspace plus small isotropic noise, so neighbours mean something; "gaussian"
draws i.i.d. normal vectors, where every point is about as far from every other and no
approximate index can have high recall (a worst case, not a model of photos).
Queries are fresh draws from the same distribution, not rows of the database.

    python benchmarks/search_bench.py              # 1M x 1280: ~10 GB RAM, a few minutes on 2 cores
    python benchmarks/search_bench.py --n 100000   # quick look
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from visionzoo.downstream.features import l2_normalize  # noqa: E402
from visionzoo.downstream.index import EXACT_MAX, TARGET_RECALL, make_faiss_index  # noqa: E402

LATENT, CLASSES, SPREAD, CHUNK = 64, 10_000, 0.8, 50_000


def rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def make_data(n: int, dim: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """(n, dim) float32, L2-normalised, generated in chunks so memory stays at the matrix itself."""
    x = np.empty((n, dim), np.float32)
    if kind == "clustered":
        basis = rng.standard_normal((LATENT, dim), dtype=np.float32) / np.sqrt(LATENT)
        centres = rng.standard_normal((CLASSES, LATENT), dtype=np.float32)
    for lo in range(0, n, CHUNK):
        m = min(CHUNK, n - lo)
        if kind == "gaussian":
            x[lo:lo + m] = rng.standard_normal((m, dim), dtype=np.float32)
        else:
            z = centres[rng.integers(0, CLASSES, m)] + SPREAD * rng.standard_normal((m, LATENT), dtype=np.float32)
            x[lo:lo + m] = z @ basis + 0.15 * rng.standard_normal((m, dim), dtype=np.float32)
        l2_normalize(x[lo:lo + m])
    return x


def single_latency_ms(fn, queries: np.ndarray, reps: int) -> float:
    times = []
    for q in queries[:reps]:
        t = time.perf_counter()
        fn(q[None])
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="database vectors")
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--queries", type=int, default=500, help="queries for recall and batched latency")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--data", choices=("clustered", "gaussian"), default="clustered")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import faiss

    rng = np.random.default_rng(args.seed)
    print(f"search benchmark: n={args.n:,} dim={args.dim} data={args.data} queries={args.queries} k={args.k} "
          f"threads={faiss.omp_get_max_threads()}")
    t = time.perf_counter()
    # Queries are the last rows of one draw: same classes and subspace as the database, not in it.
    both = make_data(args.n + args.queries, args.dim, args.data, rng)
    x, q = both[:args.n], np.ascontiguousarray(both[args.n:])
    gen_s = time.perf_counter() - t
    print(f"data: {gen_s:.1f} s to generate, {x.nbytes / 2**30:.2f} GiB; peak RSS {rss_gb():.2f} GiB")

    # Exact: FAISS brute force over the matrix itself (what IndexFlatIP does, without copying it).
    exact = lambda qs: faiss.knn(qs, x, args.k, metric=faiss.METRIC_INNER_PRODUCT)  # noqa: E731
    t = time.perf_counter()
    _, truth = exact(q)
    exact_batch_ms = (time.perf_counter() - t) * 1000 / len(q)
    exact_single_ms = single_latency_ms(exact, q, 10)

    t = time.perf_counter()
    ivf, tuned_recall = make_faiss_index(x, exact=False, seed=args.seed)
    build_s = time.perf_counter() - t
    nlist, nprobe = ivf.nlist, ivf.nprobe
    ivf_bytes = args.n * (args.dim * 4 + 8) + nlist * args.dim * 4
    rows = []
    for p in sorted({max(1, nprobe // 4), max(1, nprobe // 2), nprobe, min(nlist, nprobe * 2)}):
        ivf.nprobe = p
        t = time.perf_counter()
        _, found = ivf.search(q, args.k)
        batch_ms = (time.perf_counter() - t) * 1000 / len(q)
        single_ms = single_latency_ms(lambda qs: ivf.search(qs, args.k), q, 50)
        recall = np.mean([len(set(f) & set(tr)) / args.k for f, tr in zip(found, truth)])
        rows.append((p, recall, batch_ms, single_ms))

    print(f"\nexact (flat inner product): build 0 s (no training; the index holds a copy of the vectors, "
          f"{args.n * args.dim * 4 / 2**30:.2f} GiB)")
    print(f"  query latency: single {exact_single_ms:.1f} ms, batched {exact_batch_ms:.2f} ms/query")
    print(f"approximate (IVF-Flat, nlist={nlist}): build {build_s:.1f} s (k-means, adding, tuning nprobe to "
          f"recall@10 >= {TARGET_RECALL} on 200 stored rows: {tuned_recall:.3f}), index {ivf_bytes / 2**30:.2f} GiB; "
          f"peak RSS {rss_gb():.2f} GiB")
    print(f"  {'nprobe':>7} {'recall@' + str(args.k):>10} {'batched ms/q':>13} {'single ms':>10} "
          f"{'speed-up vs exact (single)':>27}")
    for p, recall, batch_ms, single_ms in rows:
        mark = "  <- tuned" if p == nprobe else ""
        speedup = exact_single_ms / single_ms
        print(f"  {p:>7} {recall:>10.4f} {batch_ms:>13.2f} {single_ms:>10.2f} {speedup:>26.1f}x{mark}")
    print(f"\nvisionzoo index: exact up to {EXACT_MAX:,} vectors, IVF above.")


if __name__ == "__main__":
    main()
