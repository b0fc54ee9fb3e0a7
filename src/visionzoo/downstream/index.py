"""Nearest neighbours by cosine similarity with FAISS, exact or approximate by collection size.

Below `EXACT_MAX` rows the index is exact (IndexFlatIP: no training, perfect recall, a query
scans every row); above it an inverted-file index (IVF-Flat) with about sqrt(N) lists. How many
lists a query scans (`nprobe`) is tuned on the collection itself at build time: the smallest
power of two whose recall@10 against exact search, on 200 of the stored rows as queries,
reaches `TARGET_RECALL`. See README "Using stored features" for why the
threshold sits where it does, and benchmarks/search_bench.py for recall@10 against exact.

A saved index is a folder: `index.faiss`, `paths.json`, `index.json` (kind, parameters, the
feature file's manifest, so image queries are embedded exactly like the stored rows).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..atomic import atomic_path, write_json
from ..errors import UsageError
from .features import FeaturesArg, l2_normalize, open_features, rebased

EXACT_MAX = 50_000          # rows; above this an approximate (IVF) index is built
TARGET_RECALL = 0.95        # recall@10 vs exact that the IVF index's nprobe is tuned to reach
TUNE_QUERIES = 200
INDEX_FILE, PATHS_FILE, META_FILE = "index.faiss", "paths.json", "index.json"
FORMAT = "visionzoo-index"


def ivf_lists(n: int) -> int:
    """nlist ~ sqrt(n) rounded to a power of two: about as many lists as rows per list."""
    return 2 ** max(4, round(math.log2(math.sqrt(n))))


def recall_at(index, vectors: np.ndarray, rows: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean recall@k of `index` for the stored `rows` as queries (each query's own row ignored)."""
    _, found = index.search(vectors[rows], k + 1)
    hits = [len((set(f) - {r}) & (set(t) - {r})) / k for r, f, t in zip(rows, found, truth)]
    return float(np.mean(hits))


def tune_nprobe(index, vectors: np.ndarray, target: float = TARGET_RECALL, k: int = 10, seed: int = 0) -> float:
    """Set `index.nprobe` to the smallest power of two reaching `target` recall@k; return that recall."""
    import faiss

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(vectors), size=min(TUNE_QUERIES, len(vectors)), replace=False))
    _, truth = faiss.knn(vectors[rows], vectors, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    nprobe = 1
    while True:
        index.nprobe = nprobe
        recall = recall_at(index, vectors, rows, truth, k)
        if recall >= target or nprobe >= index.nlist:
            return recall
        nprobe = min(2 * nprobe, index.nlist)


def make_faiss_index(vectors: np.ndarray, *, exact: bool | None = None, seed: int = 0) -> tuple[Any, float]:
    """(FAISS inner-product index holding `vectors` (already L2-normalised), its recall@10 vs exact)."""
    import faiss

    n, d = vectors.shape
    if exact is None:
        exact = n <= EXACT_MAX
    if exact:
        index = faiss.IndexFlatIP(d)
        index.add(vectors)
        return index, 1.0
    nlist = ivf_lists(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 20
    index.cp.seed = seed
    index.cp.min_points_per_centroid = 1  # a forced small IVF index: no warning about few points
    # k-means on 40 points per list is plenty for coarse cells and keeps the build fast.
    sample = np.random.default_rng(seed).choice(n, size=min(n, 40 * nlist), replace=False)
    index.train(vectors[np.sort(sample)])
    index.add(vectors)
    return index, tune_nprobe(index, vectors, seed=seed)


@dataclass
class Neighbour:
    path: str
    score: float  # cosine similarity


@dataclass
class SearchResult:
    query: str
    neighbours: list[Neighbour] = field(default_factory=list)
    error: str | None = None

    # `path` lets the CLI's shared failure report treat a query like any other input.
    @property
    def path(self) -> str:
        return self.query

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "neighbours": [asdict(n) for n in self.neighbours], "error": self.error}


class SimilarityIndex:
    """FAISS index + the paths of its rows + the manifest of the features it was built from."""

    def __init__(self, index, paths: list[str], manifest: dict | None = None, source: str | None = None,
                 recall: float | None = None):
        self.index = index
        self.recall = recall  # recall@10 vs exact measured when built (1.0 for an exact index)
        self.paths = paths
        self.manifest = manifest
        self.source = source
        self._rows = {p: i for i, p in enumerate(paths)}

    @property
    def kind(self) -> str:
        return "flat" if self.index.__class__.__name__.startswith("IndexFlat") else "ivf"

    def row_of(self, query: str) -> int | None:
        """Row of a path stored in the index (as written, or the same file by absolute path)."""
        if query in self._rows:
            return self._rows[query]
        if not hasattr(self, "_abs"):
            self._abs = {os.path.abspath(p): i for i, p in enumerate(self.paths)}
        return self._abs.get(os.path.abspath(query))

    def vector(self, row: int) -> np.ndarray:
        if self.kind == "ivf" and not getattr(self, "_direct_map", False):
            self.index.make_direct_map()
            self._direct_map = True
        return self.index.reconstruct(int(row))

    def search_vectors(self, vectors: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the k nearest rows for each (normalised here) query vector; row -1 = none."""
        if nprobe is not None and self.kind == "ivf":
            self.index.nprobe = nprobe
        q = l2_normalize(np.array(vectors, dtype=np.float32, ndmin=2))
        if q.shape[1] != self.index.d:
            raise UsageError(f"query vectors have {q.shape[1]} dimensions, the index {self.index.d}")
        return self.index.search(q, min(k, self.index.ntotal))

    def save(self, out: str | os.PathLike) -> Path:
        import faiss

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / META_FILE).unlink(missing_ok=True)   # an old "complete" mark never vouches for files being rewritten
        with atomic_path(out / INDEX_FILE) as tmp:
            faiss.write_index(self.index, str(tmp))
        write_json(out / PATHS_FILE, self.paths)
        meta = {"format": FORMAT, "version": 1, "kind": self.kind, "count": self.index.ntotal, "dim": self.index.d,
                "nlist": getattr(self.index, "nlist", None), "nprobe": getattr(self.index, "nprobe", None),
                "recall_at_10": self.recall,
                "features": self.source, "manifest": self.manifest}
        write_json(out / META_FILE, meta)  # written last: marks a complete index
        return out


def build_index(
    features: FeaturesArg,
    out: str | os.PathLike | None = None,
    *,
    exact: bool | None = None,
    allow_pickle: bool = False,
    root: str | os.PathLike | None = None,
) -> SimilarityIndex:
    """Index a feature file (or rows in memory) for cosine search; saved to folder `out` if given.

    `exact=None` chooses: exact up to EXACT_MAX rows, IVF above.
    """
    fs = open_features(features, allow_pickle=allow_pickle, root=root)
    faiss_index, recall = make_faiss_index(fs.normalized(), exact=exact)
    index = SimilarityIndex(faiss_index, fs.paths, fs.manifest, fs.source, recall)
    if out is not None:
        index.save(out)
    return index


def load_index(path: str | os.PathLike, root: str | os.PathLike | None = None) -> SimilarityIndex:
    """An index folder from `build_index`; a feature file is indexed in memory instead. `root`: where
    the indexed images are now, if the collection moved."""
    import faiss

    source, path = os.fspath(path), Path(path)  # source may be a URI (s3://...) of a feature file
    if not (path / META_FILE).is_file() or not (path / INDEX_FILE).is_file():
        from ..store import read_manifest

        try:
            read_manifest(source)
        except Exception:
            raise UsageError(f"{source} is neither an index folder nor a feature file (make them with "
                             f"`visionzoo index FEATURES --out DIR` and `visionzoo extract`)") from None
        return build_index(source, root=root)  # a feature file: index it in memory for this search
    meta = json.loads((path / META_FILE).read_text("utf-8"))
    index = faiss.read_index(str(path / INDEX_FILE))
    if meta.get("nprobe") and hasattr(index, "nprobe"):
        index.nprobe = int(meta["nprobe"])
    paths = json.loads((path / PATHS_FILE).read_text("utf-8"))
    recorded = (meta.get("manifest") or {}).get("root")
    if root is not None:
        if not recorded:
            raise UsageError(f"{path} records no folder its images came from; --root applies to indexes of feature "
                             f"files written by `visionzoo extract`")
        paths = rebased(paths, recorded, root)
    return SimilarityIndex(index, paths, meta.get("manifest"), meta.get("features"), meta.get("recall_at_10"))


def search(
    index: SimilarityIndex | str | os.PathLike,
    queries: str | os.PathLike | Sequence[str | os.PathLike],
    k: int = 10,
    *,
    nprobe: int | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    device: str = "auto",
    progress: bool = False,
    root: str | os.PathLike | None = None,
) -> list[SearchResult]:
    """The k most similar stored images for each query.

    A query that is a path stored in the index uses its stored row (and never returns itself);
    any other image file, folder or glob is embedded like the stored features (same model,
    preprocessing, layer, pooling; see `tasks.embed.embed_like`). Unreadable images come back
    with `error` set, the others are answered.
    """
    from ..data import expand_inputs

    if k < 1:
        raise UsageError("k must be >= 1")
    idx = index if isinstance(index, SimilarityIndex) else load_index(index, root)
    queries = [os.fspath(q) for q in ([queries] if isinstance(queries, (str, os.PathLike)) else queries)]
    vectors: dict[str, np.ndarray] = {}
    self_rows: dict[str, int] = {}
    results: list[SearchResult] = []
    to_embed: list[str] = []
    for q in queries:
        for f in [q] if idx.row_of(q) is not None else expand_inputs(q).files:
            row = idx.row_of(f)
            if row is None:
                to_embed.append(f)
            else:
                self_rows[f] = row
                vectors[f] = idx.vector(row)
            results.append(SearchResult(f))
    if to_embed:
        if not idx.manifest:
            raise UsageError("this index was built from features without a manifest, so image queries cannot be "
                             "embedded the same way; query with paths stored in the index instead")
        from ..tasks.embed import embed_like

        emb = embed_like(idx.manifest, to_embed, batch_size=batch_size, workers=workers, device=device,
                         progress=progress)
        vectors.update(zip(emb.paths, emb.matrix))
        errors = dict(emb.failures)
        for r in results:
            if r.query in errors:
                r.error = errors[r.query]
    answered = [r for r in results if r.error is None]
    if answered:
        scores, rows = idx.search_vectors(np.stack([vectors[r.query] for r in answered]), k + 1, nprobe)
        for r, srow, rrow in zip(answered, scores, rows):
            own = self_rows.get(r.query)
            r.neighbours = [Neighbour(idx.paths[j], round(float(s), 6))
                            for s, j in zip(srow, rrow) if j >= 0 and j != own][:k]
    return results
