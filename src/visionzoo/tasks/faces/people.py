"""Every photo of each gallery person in a face index, and a contact sheet per person.

A face of the index belongs to the gallery person whose nearest gallery face is nearest to it,
if that distance is at most `max_distance` (the threshold of verify and find); each face goes to
one person at most, so two similar people do not both claim it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UsageError
from .detectors import DEFAULT_DETECTOR
from .faceindex import load_index
from .gallery import load_gallery
from .recognize import THRESHOLD, distances


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "_"


def find_people(gallery: str | os.PathLike, index: str | os.PathLike, max_distance: float = THRESHOLD, *,
                detector: str = DEFAULT_DETECTOR, sheets: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """`{person, path, box, distance}` for every face of the index that is a gallery person, by
    person then distance; with `sheets`, writes `SHEETS/PERSON.jpg` for every gallery person."""
    people = load_gallery(gallery, detector=detector)
    if not len(people):
        raise UsageError(f"no face found in any photo of the gallery {gallery}")
    ix = load_index(index, chips=sheets is not None)
    names = sorted(set(people.names))
    rows: list[dict[str, Any]] = []
    if len(ix):
        d = distances(ix.embeddings, people.embeddings)
        per_person = np.stack([d[:, [i for i, n in enumerate(people.names) if n == name]].min(1) for name in names], 1)
        best = per_person.argmin(1)
        dist = per_person[np.arange(len(ix)), best]
        for i in np.flatnonzero(dist <= max_distance):
            rows.append({"person": names[best[i]], "path": ix.photos[i], "box": [round(float(v), 1) for v in ix.boxes[i]],
                         "distance": round(float(dist[i]), 4), "_row": int(i)})
    rows.sort(key=lambda r: (r["person"], r["distance"], r["path"]))
    if sheets is not None:
        from .sheets import contact_sheet, photo_label

        for name in names:
            mine = [r for r in rows if r["person"] == name]
            captions = [(photo_label(r["path"]), f"d {r['distance']:.3f}") for r in mine]
            contact_sheet([ix.chips[r["_row"]] for r in mine], captions, Path(sheets) / f"{_safe(name)}.jpg", name)
    for r in rows:
        del r["_row"]
    return rows
