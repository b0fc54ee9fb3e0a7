"""benchmarks/membrane_instances.py: the membrane labels as a COCO instance-mask set that `detect train` reads,
one instance per cell, polygons inside their tile, no test image's tile in training."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from visionzoo.tasks.detect.datasets import load_detection_data
from visionzoo.tasks.detect.masks import decode_segmentation

ROOT = Path(__file__).resolve().parents[1]
MEMBRANE = ROOT.parent / "shared" / "datasets" / "membrane"
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.skipif(not MEMBRANE.is_dir(), reason="needs ../shared/datasets/membrane")
def test_membrane_cells_become_coco_instances_that_detect_reads(tmp_path):
    from membrane_instances import build, cells

    paths = build(tmp_path, MEMBRANE, tile=256, test=(1,), images=(0, 1))
    train, test = (json.loads(paths[s].read_text()) for s in ("train", "test"))
    assert [r["file_name"][:2] for r in train["images"]] == ["0_"] * 4     # split by source image
    assert [r["file_name"][:2] for r in test["images"]] == ["1_"] * 4
    data = load_detection_data(tmp_path / "train", paths["train"])        # what `detect train` reads
    assert data.has_masks and len(data.samples) == 4 and not [i for i in data.issues if i.skipped]
    per_tile = [len(s.boxes) for s in data.samples]
    assert all(15 <= n <= 60 for n in per_tile), per_tile                   # ~120 cells in a 512 image
    ids = cells(np.asarray(Image.open(MEMBRANE / "label" / "0.png")))
    for row, sample in zip(train["images"], data.samples):
        _, top, left = (int(v) for v in Path(row["file_name"]).stem.split("_"))
        truth = ids[top:top + 256, left:left + 256]
        for seg in sample.segmentations:
            xy = np.concatenate([np.reshape(p, (-1, 2)) for p in seg])
            assert xy.min() >= 0 and xy.max() <= 256                         # inside the tile
            mask = decode_segmentation(seg, 256, 256).astype(bool)
            cell = np.bincount(truth[mask]).argmax()                          # the cell it covers
            whole = ndimage.binary_fill_holes(truth == cell)                  # with what it encloses
            assert cell > 0 and (mask & whole).sum() / (mask | whole).sum() > 0.95
