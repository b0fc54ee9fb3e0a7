"""Doing something with stored features: similar-image search, near-duplicates, clusters,
quick classifiers (probes) and 2-D maps. Everything works on (paths, matrix) read from an
`extract` feature file; cosine similarity = inner product of L2-normalised rows."""
from .cluster import cluster
from .dedup import find_duplicates
from .features import FeatureSet, open_features
from .index import build_index, load_index, search
from .probe import is_probe_dir, predict_probe, train_probe
from .projection import feature_map

__all__ = [
    "FeatureSet", "build_index", "cluster", "feature_map", "find_duplicates", "is_probe_dir",
    "load_index", "open_features", "predict_probe", "search", "train_probe",
]
