"""Every face of a photo for a face index, at the pace of the hardware.

Per photo: decode at reduced size (JPEG draft mode: the DCT scaled 1/2, 1/4 or 1/8) to a
detection copy whose long side is 3/4 of `detect_size` to `detect_size` (DETECT_SIZE = 1024 px),
find the faces there (BlazeFace, a whole-image pass plus tile passes down to DETECT_MIN_TILE px:
faces down to ~32 px of that copy, about 3% of the photo's long side; a larger `detect_size`
finds smaller faces, at about its square's cost); then take the pixels around each face from
a copy where it is at least FACE_PX wide (the same decode for large faces, a second, larger
decode only when a face is small there), find dlib's 5 landmarks in that crop and cut the
aligned chip the embedder takes (recognize.py). The chips of a batch of photos go through the
ONNX Runtime embedder in one call. A thread that runs `index_photos` is a whole pipeline, so
one per core keeps every core busy.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image

from ...data.decode import ImageDecodeError, load_rgb
from ...data.geometry import file_displayed_size
from .detectors import MIN_SCORE, TILE_MAX_FACE, face_boxes
from .recognize import CHIP_PADDING, CHIP_SIZE, DIM, THRESHOLD, align, embed_chips

DETECT_SIZE = 1024      # the detection copy: JPEGs are decoded at the smallest DCT scale that keeps the
                        # long side >= 3/4 of this, then shrunk to at most this
DETECT_MIN_TILE = 384   # smallest BlazeFace tile pass in that copy: faces down to ~32 px there
DETECT_TILE_RATIO = 3   # tile sizes a third apart: one level (384 px) over a 1024 px copy
FACE_PX = 100           # a face is aligned from pixels where it is at least this wide: its chip shows it at
                        # 150 / (1 + 2 x 0.25) = 100 px, so no chip is made by enlarging
REGION = 2.4            # the crop around a face, in face widths: holds the padded chip turned any way
CHIP_QUALITY = 85       # JPEG quality of the stored chips


@dataclass
class PhotoFaces:
    """The faces of one photo, in the photo's pixels as displayed (EXIF rotation applied)."""

    path: str
    size: tuple[int, int] = (0, 0)                                   # (width, height)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), np.float32))
    chips: np.ndarray = field(default_factory=lambda: np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8))
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, DIM), np.float32))
    jpegs: list[bytes] = field(default_factory=list)                  # the chips as JPEG files
    error: str | None = None

    def __len__(self) -> int:
        return len(self.boxes)


def chip_jpeg(chip: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(chip).save(buf, "JPEG", quality=CHIP_QUALITY)
    return buf.getvalue()


def _decode(path: str, size: tuple[int, int] | None, long_side: int) -> Image.Image:
    """`path` decoded so its long side is at least `long_side` (or whole), cheaply for JPEGs."""
    target = None
    if size and max(size) > long_side:
        target = -(-long_side * min(size) // max(size))
    return load_rgb(path, target_size=target)


def detection_copy(path: str, detect_size: int = DETECT_SIZE) -> tuple[Image.Image, Image.Image, tuple[int, int]]:
    """(detection copy, the decode it was made from, the photo's displayed size)."""
    size = file_displayed_size(path)
    decoded = _decode(path, size, detect_size * 3 // 4)
    size = size or decoded.size
    det = decoded
    if max(det.size) > detect_size:
        s = detect_size / max(det.size)
        det = det.resize((max(1, round(det.width * s)), max(1, round(det.height * s))), Image.BILINEAR,
                         reducing_gap=2.0)
    return det, decoded, size


def _crop(src: Image.Image, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RGB array of the square around `box`, its top-left corner) in `src` pixels; parts past
    the image's edges are black, as dlib's chip extraction treats them."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = REGION * max(box[2] - box[0], box[3] - box[1]) / 2
    x0, y0 = int(math.floor(cx - half)), int(math.floor(cy - half))
    side = int(math.ceil(2 * half))
    return np.asarray(src.crop((x0, y0, x0 + side, y0 + side))), np.array([x0, y0], np.float64)


def find_faces(path: str, detect_size: int = DETECT_SIZE, min_score: float = MIN_SCORE
               ) -> tuple[Image.Image, tuple[int, int], np.ndarray, np.ndarray]:
    """(the reduced-size decode, the photo's displayed size, boxes in photo pixels, scores)."""
    det, decoded, size = detection_copy(path, detect_size)
    boxes, scores = face_boxes(det, "blazeface", min_score=min_score, min_tile=DETECT_MIN_TILE,
                               tile_ratio=DETECT_TILE_RATIO)
    return decoded, size, boxes * (size[0] / det.width), np.asarray(scores, np.float32)


def align_faces(path: str, decoded: Image.Image, size: tuple[int, int], boxes: np.ndarray,
                scores: np.ndarray) -> PhotoFaces:
    """Landmarks and aligned chips of the faces `boxes`, from pixels where each face is at least
    FACE_PX wide: `decoded` when it has them, else one larger decode of the photo."""
    if not len(boxes):
        return PhotoFaces(path, size)
    widths = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
    have = decoded.width / size[0]
    need = min(1.0, FACE_PX / float(widths.min()))
    src = decoded if have >= need or have >= 1.0 else _decode(path, size, math.ceil(need * max(size)))
    r = src.width / size[0]                                        # photo -> source pixels
    points, chips = np.zeros((len(boxes), 5, 2)), np.zeros((len(boxes), CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    for i, box in enumerate(boxes):
        region, corner = _crop(src, box * r)
        p, c = align(region, [box * r - np.tile(corner, 2)])
        points[i], chips[i] = (p[0] + corner) / r, c[0]
    return PhotoFaces(path, size, boxes.astype(np.float32), scores, points.astype(np.float32), chips)


def photo_faces(path: str, detect_size: int = DETECT_SIZE, min_score: float = MIN_SCORE) -> PhotoFaces:
    """Boxes, scores, landmarks and aligned chips of every face of one photo (no embeddings)."""
    try:
        return align_faces(path, *find_faces(path, detect_size, min_score))
    except ImageDecodeError as exc:
        return PhotoFaces(path, error=exc.reason)
    except MemoryError:
        return PhotoFaces(path, error="not enough memory to decode the image")
    except Exception as exc:  # noqa: BLE001 - a pathological image must not stop the whole library
        return PhotoFaces(path, error=f"face pipeline failed ({type(exc).__name__}: {exc})")


def index_photos(paths: Sequence[str], detect_size: int = DETECT_SIZE, min_score: float = MIN_SCORE
                 ) -> list[PhotoFaces]:
    """`photo_faces` of each path, then the embeddings of all their faces in one batch, and the
    chips as JPEG bytes for the index (in place of the arrays)."""
    photos = [photo_faces(p, detect_size, min_score) for p in paths]
    chips = [p.chips for p in photos if len(p)]
    if chips:
        embeddings = embed_chips(np.concatenate(chips))
        start = 0
        for p in photos:
            p.embeddings, start = embeddings[start:start + len(p)], start + len(p)
            p.jpegs = [chip_jpeg(c) for c in p.chips]
            p.chips = p.chips[:0]  # a partition holds ~1k photos: keep the 5 kB JPEGs, not the 67 kB arrays
    return photos


@lru_cache(maxsize=None)
def settings(detect_size: int = DETECT_SIZE, min_score: float = MIN_SCORE) -> dict:
    """What makes an index's rows what they are (recorded in its manifest; runs that add to an
    index must agree on it)."""
    from .dlib_onnx import file_sha256
    from .models import dlib_model_path

    return {
        "model": "dlib_face_recognition_resnet_model_v1", "weights_sha256": file_sha256(dlib_model_path("resnet")),
        "embedder": "onnxruntime", "dim": DIM, "metric": "euclidean", "threshold": THRESHOLD,
        "detection": {"detector": "blazeface", "sides": [detect_size * 3 // 4, detect_size], "min_tile": DETECT_MIN_TILE,
                      "tile_ratio": DETECT_TILE_RATIO,
                      "tile_max_face": TILE_MAX_FACE, "face_px": FACE_PX, "min_score": min_score},
        "chip": {"size": CHIP_SIZE, "padding": CHIP_PADDING, "jpeg_quality": CHIP_QUALITY},
        "row": "one per face: PHOTO#faceK@x1,y1,x2,y2 (photo pixels), feature = 128-d descriptor; columns photo, "
               "face, box, score, landmarks (5 x, y), chip (aligned 150 px JPEG)",
    }
