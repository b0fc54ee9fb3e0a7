"""The photos int8 quantization measures activation ranges on: the user's own folder, or bundled ones.

Ranges are only as good as the photos they are measured on, so they should look like the inputs:
`--calibration FOLDER` takes up to CALIBRATION_IMAGES photos spread evenly over a folder (sorted,
so the choice is repeatable). Without it, the bundled sample photos and scikit-image's real
photos (about 15, all offline) are used, each seen whole, mirrored and as two crops, so that the
ranges also cover objects at other scales. The set is known by a digest of its files' bytes: the
quantized model is cached under it, and a feature file records it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import UsageError

CALIBRATION_IMAGES = 64
BUNDLED = "bundled"
# scikit-image's photographs beyond the bundled ones (greyscale ones are converted to RGB), shipped
# with it: no download
_SKIMAGE_PHOTOS = ("hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png", "retina.jpg", "coins.png", "moon.png",
                   "page.png", "brick.png", "grass.png", "gravel.png", "clock_motion.png")


@dataclass(frozen=True)
class CalibrationSet:
    files: tuple[str, ...]
    source: str          # "bundled", or the folder's real path
    sha256: str          # of the files' bytes, in order
    views: int           # inputs made of each photo (whole, mirrored, crops)

    def record(self) -> dict[str, Any]:
        """What a feature file's manifest says about the calibration."""
        return {"source": self.source, "images": len(self.files), "views": self.views, "sha256": self.sha256}


def _bundled_files() -> list[str]:
    from ..samples import sample_images

    files = sample_images()
    spec = importlib.util.find_spec("skimage")  # found, not imported: a cached int8 run starts fast
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations))) / "data"
        files += [str(root / name) for name in _SKIMAGE_PHOTOS if (root / name).is_file()]
    return files


def calibration_set(folder: str | os.PathLike | None = None, limit: int = CALIBRATION_IMAGES) -> CalibrationSet:
    """The calibration photos: up to `limit` spread evenly over `folder` (files, folders, globs), or
    the bundled photos when `folder` is None."""
    if folder is None:
        files, source, views = _bundled_files(), BUNDLED, 4
    else:
        from .inputs import expand_inputs

        try:
            found = expand_inputs(os.fspath(folder)).files
        except UsageError as exc:
            raise UsageError(f"--calibration: {exc}") from None
        if not found:
            raise UsageError(f"--calibration: no images in {folder}")
        step = len(found) / min(limit, len(found))
        files, source = [found[int(i * step)] for i in range(min(limit, len(found)))], os.path.realpath(folder)
        views = 1 if len(files) >= limit // 2 else 4  # a few photos: more views of each
    digest = hashlib.sha256()
    for f in files:
        try:
            digest.update(Path(f).read_bytes())
        except OSError as exc:
            raise UsageError(f"--calibration: cannot read {f}: {exc.strerror}") from None
    return CalibrationSet(tuple(files), source, digest.hexdigest(), views)


def calibration_batches(cal: CalibrationSet, preprocessing, batch_size: int = 8) -> Iterator[np.ndarray]:
    """Preprocessed calibration inputs (N x C x H x W float32), as the model's eval transform makes
    them; unreadable photos are skipped. Views past the first are a mirror and two 70-90 % crops."""
    from PIL import Image

    from .decode import ImageDecodeError, load_rgb
    from .transforms import eval_array_transform

    transform = eval_array_transform(preprocessing)
    rng = random.Random(0)
    batch: list[np.ndarray] = []
    for f in cal.files:
        try:
            img = load_rgb(f)
        except ImageDecodeError:
            continue
        views = [img, img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
        for _ in range(2):
            s = rng.uniform(0.7, 0.9)
            w, h = max(1, round(img.width * s)), max(1, round(img.height * s))
            x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
            views.append(img.crop((x, y, x + w, y + h)))
        for view in views[:cal.views]:
            batch.append(transform(view))
            if len(batch) == batch_size:
                yield np.stack(batch)
                batch = []
    if batch:
        yield np.stack(batch)
