"""Images far from every other image: cleanlab's out-of-distribution score on the features (the
mean cosine distance to an image's K nearest neighbours, mapped to 0-1, low = atypical).

Which scores count as "far" is set by the dataset itself, robustly: an image is flagged when its
mean neighbour distance lies more than SPREAD robust standard deviations (1.4826 x the median
absolute deviation) above the median, so a homogeneous set flags only what stands apart from it
and a varied set is not one long list."""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from .findings import Finding
from .inventory import Item

NEIGHBOURS = 10
SPREAD = 6.0
MIN_IMAGES = 20      # fewer images than this: no neighbourhood to compare with


def outlier_findings(paths: Sequence[str], matrix: np.ndarray, items: dict[str, Item]) -> list[Finding]:
    if len(paths) < MIN_IMAGES:
        return []
    from cleanlab.outlier import OutOfDistribution

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = OutOfDistribution({"k": min(NEIGHBOURS, len(paths) - 1)}).fit_score(features=matrix, verbose=False)
    distance = -np.log(np.clip(scores, 1e-12, 1))  # cleanlab's score: exp(-mean distance / the median one)
    median = float(np.median(distance))
    sigma = 1.4826 * float(np.median(np.abs(distance - median))) or 1e-6
    z = (distance - median) / sigma
    out = []
    for i in np.flatnonzero(z > SPREAD):
        item = items[paths[i]]
        out.append(Finding("outlier", paths[i], 1 - float(scores[i]),
                           f"its {NEIGHBOURS} nearest images are {distance[i] / median:.1f}x as far as usual "
                           f"({z[i]:.1f} robust SD above the median)", given_label=item.label or "",
                           split=item.split))
    return out
