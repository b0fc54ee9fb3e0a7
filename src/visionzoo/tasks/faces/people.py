"""Every photo of each gallery person in a face index, and a contact sheet per person.

A face of the index belongs to the gallery person whose nearest gallery face is nearest to it,
if that distance is at most `max_distance` (the threshold of verify and find); each face goes to
one person at most, so two similar people do not both claim it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UsageError
from .detectors import DEFAULT_DETECTOR
from .faceindex import FaceIndex, load_index
from .gallery import load_gallery
from .recognize import THRESHOLD, distances


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "_"


@dataclass
class Found:
    """Every gallery person's faces in an index. Rows first, pictures after: a contact sheet that cannot be
    drawn costs no rows."""

    rows: list[dict[str, Any]]      # {person, path, box, distance}, by person then distance
    names: list[str]                # every gallery person, found or not
    index: FaceIndex
    index_rows: list[int]           # each row's face in the index

    def draw(self, sheets: str | os.PathLike) -> None:
        """`SHEETS/PERSON.jpg` for every gallery person (an empty sheet for one never found)."""
        from .sheets import contact_sheet, photo_label

        for name in self.names:
            mine = [(r, i) for r, i in zip(self.rows, self.index_rows) if r["person"] == name]
            captions = [(photo_label(r["path"]), f"d {r['distance']:.3f}") for r, _ in mine]
            contact_sheet([self.index.chips[i] for _, i in mine], captions, Path(sheets) / f"{_safe(name)}.jpg", name)


def match_people(gallery: str | os.PathLike, index: str | os.PathLike, max_distance: float = THRESHOLD, *,
                 detector: str = DEFAULT_DETECTOR, chips: bool = False) -> Found:
    """The faces of `index` that are gallery people (`chips`: keep the face chips, to draw them)."""
    people = load_gallery(gallery, detector=detector)
    if not len(people):
        raise UsageError(f"no face found in any photo of the gallery {gallery}")
    ix = load_index(index, chips=chips)
    names = sorted(set(people.names))
    found: list[tuple[dict[str, Any], int]] = []
    if len(ix):
        d = distances(ix.embeddings, people.embeddings)
        per_person = np.stack([d[:, [i for i, n in enumerate(people.names) if n == name]].min(1) for name in names], 1)
        best = per_person.argmin(1)
        dist = per_person[np.arange(len(ix)), best]
        for i in np.flatnonzero(dist <= max_distance):
            found.append(({"person": names[best[i]], "path": ix.photos[i],
                           "box": [round(float(v), 1) for v in ix.boxes[i]], "distance": round(float(dist[i]), 4)},
                          int(i)))
    found.sort(key=lambda f: (f[0]["person"], f[0]["distance"], f[0]["path"]))
    return Found([r for r, _ in found], names, ix, [i for _, i in found])


def find_people(gallery: str | os.PathLike, index: str | os.PathLike, max_distance: float = THRESHOLD, *,
                detector: str = DEFAULT_DETECTOR, sheets: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """`{person, path, box, distance}` for every face of the index that is a gallery person, by
    person then distance; with `sheets`, writes `SHEETS/PERSON.jpg` for every gallery person."""
    found = match_people(gallery, index, max_distance, detector=detector, chips=sheets is not None)
    if sheets is not None:
        found.draw(sheets)
    return found.rows
