"""`detect predict --precision int8`: the detector's cached ONNX export with its backbone (the trunk's
convolutions, activations and residual adds) quantized to int8; the FPN, the heads, box decoding and NMS
stay fp32. Calibrated on the run's own photos (the folder it was trained on), or on `--calibration`.

Why only the trunk: it is half the fp32 graph's time, and the part int8 kernels speed up; quantizing the
FPN and heads too added rounding to the box coordinates for little time. Opt-in, since it moves a few boxes
(docs/benchmarks.md, Detect). A fresh file is checked against fp32 on its calibration photos and refused
when it loses more than 1 in 10 of fp32's confident boxes. Cached beside the fp32 export, keyed by that
file, the calibration set's digest and this recipe. No torch here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...atomic import atomic_path
from ...data.calibration import CalibrationSet, calibration_set
from ...errors import UsageError
from ...runtime.onnx_session import onnx_cache_dir, session
from .operating import box_iou

TRUNK, TRUNK_OPS = "/backbone/body/", ("Conv", "Clip", "Relu", "Add")
RECIPE = 1            # bump when the recipe changes: cached int8 files are then made again
CONFIDENT, MATCH_IOU, MIN_AGREEMENT = 0.5, 0.5, 0.9


def detector_calibration(detector: Any, folder: str | os.PathLike | None) -> CalibrationSet:
    """`folder`'s photos, else the photos the run was trained on (its data set folder), else, for a COCO
    detector by name, the bundled photos."""
    if folder is not None:
        return calibration_set(folder)
    source = (detector.config.get("dataset") or {}).get("source")
    if source is None and "detector" not in detector.config:
        return calibration_set(None)
    if source is None or not Path(source).is_dir():
        raise UsageError(f"--precision int8 calibrates on the photos the run was trained on, and {source} is not "
                         "there any more; pass --calibration FOLDER (a few dozen photos like your inputs)")
    return calibration_set(source)


def agreement(fp32: Any, int8: Any, feeds: list[dict[str, np.ndarray]]) -> float:
    """The share of fp32's confident boxes that int8 finds too (same label, IoU >= MATCH_IOU, any score
    the export keeps); 1.0 when fp32 is confident about nothing."""
    found = total = 0
    for feed in feeds:
        (b1, s1, l1), (b2, _, l2) = (s.run(["boxes", "scores", "labels"], feed) for s in (fp32, int8))
        keep = s1 >= CONFIDENT
        total += int(keep.sum())
        if keep.any() and len(b2):
            overlap = box_iou(b1[keep], b2) * (l1[keep][:, None] == l2[None, :])
            found += int((overlap.max(1) >= MATCH_IOU).sum())
    return found / total if total else 1.0


def int8_file(fp32: Path, calibration: CalibrationSet, prepare: Callable[[str], np.ndarray | None]) -> Path:
    """The trunk-int8 version of the detector export `fp32`, made the first time from the photos of
    `calibration` (`prepare(path)`: the 3 x H x W input predict would give the graph; None when unreadable)."""
    from ...runtime.quantize import int8_path, quantize_int8_nodes

    path = int8_path(fp32, onnx_cache_dir() / "detect" / "int8", calibration=calibration.sha256, recipe=RECIPE)
    if path.is_file():
        return path
    feeds = [{"image": x} for x in map(prepare, calibration.files) if x is not None]
    if not feeds:
        raise UsageError("no calibration photos could be read; int8 needs a few dozen typical photos")
    import onnx

    nodes = [n.name for n in onnx.load(str(fp32)).graph.node if TRUNK in n.name and n.op_type in TRUNK_OPS]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        quantize_int8_nodes(fp32, tmp, feeds, nodes, TRUNK_OPS)
        agreed = agreement(session(fp32, 1), session(tmp, 1), feeds)
        if agreed < MIN_AGREEMENT:
            raise UsageError(f"int8 quantization of this detector strays from fp32 (it finds {agreed:.0%} of "
                             "fp32's confident boxes on its calibration photos); use --precision fp32")
    return path
