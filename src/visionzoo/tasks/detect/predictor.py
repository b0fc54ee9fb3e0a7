"""The one prediction path: `predict`, `evaluate` and the per-epoch validation all call a Predictor,
so the boxes a user gets are the boxes the reported AP was computed on.

A Predictor takes PIL images (already oriented) and returns, per image, JSON-able detections in
that image's pixels: it shrinks the image to the network's size itself (PIL, antialiased, as in
training), and scales the boxes and masks back. Its network takes and gives NumPy arrays, and the
operating point is applied on arrays, so on a CPU with the run's ONNX export cached, predicting never
imports torch: start-up is reading the config and opening the ONNX session.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from ...data.decode import ImageDecodeError, load_rgb
from ...data.geometry import file_displayed_size
from ...data.inputs import expand_inputs
from ...errors import UsageError
from ...ordered import ordered_map
from ...outputs import output_names, output_path
from ...runtime.devices import cpu_only
from ...viz.notebook import shows
from .detector import Detector, fit_size, load_detector
from .draw import describe_row, render_row
from .masks import encode_mask, write_mask_png
from .operating import EVAL_CONF, OperatingPoint  # noqa: F401  (EVAL_CONF: re-exported)


class Predictor:
    """`predictor(images) -> [{"width", "height", "detections": [{label, score, box[, mask]}]}]`."""

    task = "detect"

    def __init__(self, detector: Detector, *, conf: float | None = None, iou: float | None = None,
                 point: OperatingPoint | None = None, device: str = "auto", batch_size: int = 4,
                 backend: str = "auto", precision: str = "fp32", calibration: str | os.PathLike | None = None):
        """`point`: which boxes to keep [default: the run's operating point]; `conf` (one threshold for
        every class) and `iou` (NMS) override parts of it. `backend`: auto (ONNX Runtime on a CPU, see
        runtime.py; PyTorch on a GPU or when the model cannot be exported), torch or onnx. `precision`
        "int8": the export's backbone quantized, on the CPU (quantized.py), calibrated on `calibration`
        [default: the photos the run was trained on]."""
        from ...runtime.quantize import check_precision, int8_device

        if backend not in ("auto", "torch", "onnx"):
            raise UsageError(f"unknown backend {backend!r}; use auto, torch or onnx")
        if check_precision(precision) == "int8":
            device, backend = int8_device(device, backend), "onnx"
        if (conf is not None and not 0 <= conf <= 1) or (iou is not None and not 0 < iou <= 1):
            raise UsageError(" and ".join(m for m in (
                f"--conf must be in [0, 1], got {conf}" if conf is not None and not 0 <= conf <= 1 else "",
                f"--iou must be in (0, 1], got {iou}" if iou is not None and not 0 < iou <= 1 else "") if m))
        point = point or OperatingPoint.from_config(detector.config)
        if conf is not None:
            point = point.with_conf(conf)
        if iou is not None:
            point = replace(point, nms_iou=float(iou))
        self.detector, self.point, self.batch_size = detector, point, batch_size
        self.short, self.long, self.fixed = detector.network_size()
        self.network: Any = None
        self.precision = precision
        if backend == "onnx" or (backend == "auto" and cpu_only(str(device))):
            self._use_onnx(backend == "onnx", calibration)
        if self.network is None:
            from .runtime import TorchDetector

            self.network, self.backend, self.parallel = TorchDetector(detector.module, device, point), "torch", 1

    def _use_onnx(self, required: bool, calibration: str | os.PathLike | None) -> None:
        from ...cpus import usable_cpus
        from .runtime import OnnxDetector

        quantize = None
        if self.precision == "int8":
            from .quantized import detector_calibration, int8_file

            cal = detector_calibration(self.detector, calibration)
            quantize = lambda fp32: int8_file(fp32, cal, self.calibration_input)  # noqa: E731
        try:
            self.network = OnnxDetector(self.detector, quantize=quantize)
        except UsageError as exc:
            if required:
                raise
            import warnings

            warnings.warn(f"{exc}; detecting with PyTorch instead", stacklevel=3)
            return
        self.backend, self.parallel = "onnx", usable_cpus()

    @property
    def names(self) -> list[str]:
        return self.detector.names

    @property
    def classes(self) -> list[str]:
        """The object classes (label ids 1..K), as the run records them."""
        return self.detector.classes

    @property
    def has_masks(self) -> bool:
        return self.detector.has_masks

    @property
    def decode_size(self) -> int:
        """The short side a large JPEG may be decoded at (draft mode) and lose nothing the network sees."""
        return self.fixed[0] if self.fixed else self.short

    def rescale(self, result: dict[str, Any], size: tuple[int, int]) -> dict[str, Any]:
        """A result on an image decoded at reduced size -> in the file's displayed pixels `size`."""
        return _rescale(result, size)

    def network_input(self, img: Image.Image) -> Image.Image:
        """The image shrunk (never enlarged) towards the size the network's transform resizes to."""
        if self.fixed:
            scale = min(self.fixed[1] / img.width, self.fixed[0] / img.height)
        else:
            scale = fit_size(img.width, img.height, self.short, self.long)
        if scale >= 1:
            return img
        return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)

    def calibration_input(self, path: str) -> np.ndarray | None:
        """A calibration photo as the exported graph gets it from `predict` (None when unreadable)."""
        from .runtime import _chw

        try:
            img, _ = decode_for(self, path)
        except ImageDecodeError:
            return None
        return _chw(np.asarray(self.network_input(img), dtype=np.uint8))

    def __call__(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        """Detections per image. Only images of the same network size share a forward pass: the
        detector pads a batch to its largest image, and padding would change what it finds, so an
        image's answer never depends on the other images of the call."""
        originals = [img.convert("RGB") for img in images]
        small = [self.network_input(img) for img in originals]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(small):
            groups.setdefault(s.size, []).append(i)
        out: list[dict[str, Any]] = [{} for _ in originals]
        for members in groups.values():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start:start + self.batch_size]
                for i, r in zip(chunk, self.network([np.asarray(small[i], dtype=np.uint8) for i in chunk])):
                    out[i] = self._to_dict(r, originals[i].size, small[i].size)
        return out

    def _to_dict(self, r: dict[str, Any], size: tuple[int, int], net_size: tuple[int, int]) -> dict[str, Any]:
        """The operating point applied on arrays, then one dict per kept box, in the image's pixels."""
        w, h = size
        sx, sy = w / net_size[0], h / net_size[1]
        boxes = np.clip(r["boxes"].astype(np.float32) * np.float32([sx, sy, sx, sy]), 0, [w, h, w, h])
        scores = np.round(r["scores"].astype(np.float32), 5)
        labels = r["labels"].astype(np.int64)
        kept = self.point.select(boxes, scores, labels, self.names)
        detections = [{"label": self.names[label], "score": float(score), "box": box}
                      for label, score, box in zip(labels[kept].tolist(), scores[kept].tolist(),
                                                   np.round(boxes[kept], 2).tolist())]
        masks = r.get("masks")
        if masks is not None and len(kept):
            for d, m in zip(detections, masks[kept, 0]):
                if m.shape != (h, w):
                    m = np.asarray(Image.fromarray(m.astype(np.float32)).resize((w, h), Image.BILINEAR))
                d["mask"] = encode_mask(m > 0.5)
        return {"width": w, "height": h, "detections": detections}


def load_predictor(run_or_name: str | os.PathLike, *, conf: float | None = None, iou: float | None = None,
                   weights: str | os.PathLike | None = None, device: str = "auto", batch_size: int = 4,
                   backend: str = "auto", precision: str = "fp32",
                   calibration: str | os.PathLike | None = None) -> Predictor:
    """A detection run folder or a torchvision COCO detector name, loaded once, ready to call."""
    return Predictor(load_detector(run_or_name, weights), conf=conf, iou=iou, device=device, batch_size=batch_size,
                     backend=backend, precision=precision, calibration=calibration)


# --------------------------------------------------------------------------- files
def decode_for(predictor: Predictor, path: str) -> tuple[Image.Image, tuple[int, int]]:
    """(decoded image, displayed size of the file). Big JPEGs decode at reduced scale (draft) when
    the network needs far fewer pixels; boxes are then scaled up to the file's displayed size."""
    img = load_rgb(path, target_size=predictor.decode_size, max_side=None if predictor.fixed else predictor.long)
    return img, file_displayed_size(path) or img.size


class _Decoded:
    """Files decoded in DataLoader workers (a map-style dataset), for the PyTorch backend."""

    def __init__(self, predictor: Predictor, paths: Sequence[str]):
        self.predictor, self.paths = predictor, list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            img, size = decode_for(self.predictor, self.paths[i])
            return i, self.predictor.network_input(img), size, None
        except ImageDecodeError as exc:
            return i, None, None, exc.reason


def _rescale(result: dict[str, Any], size: tuple[int, int]) -> dict[str, Any]:
    """A result in decoded pixels -> the file's displayed pixels."""
    w, h = size
    if (result["width"], result["height"]) == (w, h):
        return result
    sx, sy = w / result["width"], h / result["height"]
    for d in result["detections"]:
        x1, y1, x2, y2 = d["box"]
        d["box"] = [round(min(x1 * sx, w), 2), round(min(y1 * sy, h), 2), round(min(x2 * sx, w), 2),
                    round(min(y2 * sy, h), 2)]
        if "mask" in d:
            from .masks import decode_segmentation

            m = decode_segmentation(d["mask"], result["height"], result["width"])
            d["mask"] = encode_mask(np.asarray(Image.fromarray(m * 255).resize((w, h), Image.BILINEAR)) > 127)
    result["width"], result["height"] = w, h
    return result


def iter_predict_files(predictor: Predictor, paths: Sequence[str], *, workers: int | None = None,
                       progress: bool = False) -> Iterator[dict[str, Any]]:
    """Per file, in order: {"path", "width", "height", "detections", "error"}; memory holds one batch.
    On ONNX Runtime, one pipeline per core decodes a file and detects in it; on PyTorch, `workers`
    processes decode ahead of the model."""
    from ...cpus import default_workers
    from ...progress import progress_bar

    if predictor.parallel > 1:
        with progress_bar(total=len(paths), unit="img", disable=not progress, desc="detect") as bar:
            for result in ordered_map(lambda path: _detect_file(predictor, path), paths, predictor.parallel):
                bar.update()
                yield result
        return
    workers = default_workers(len(paths), 4 * predictor.batch_size) if workers is None else workers
    from torch.utils.data import DataLoader

    loader = DataLoader(_Decoded(predictor, paths), batch_size=predictor.batch_size,
                                         num_workers=workers, collate_fn=list)
    with progress_bar(total=len(paths), unit="img", disable=not progress, desc="detect") as bar:
        for batch in loader:
            good = [(i, img, size) for i, img, size, err in batch if err is None]
            results = predictor([img for _, img, _ in good]) if good else []
            by_index = {i: _rescale(r, size) for (i, _, size), r in zip(good, results)}
            for i, _, _, err in batch:
                if err is None:
                    yield {"path": paths[i], **by_index[i], "error": None}
                else:
                    yield {"path": paths[i], "width": None, "height": None, "detections": [], "error": err}
            bar.update(len(batch))


def _detect_file(predictor: Predictor, path: str) -> dict[str, Any]:
    try:
        img, size = decode_for(predictor, path)
    except ImageDecodeError as exc:
        return {"path": path, "width": None, "height": None, "detections": [], "error": exc.reason}
    return {"path": path, **_rescale(predictor([predictor.network_input(img)])[0], size), "error": None}


@shows(render_row, describe_row)  # in a notebook the rows draw their boxes; they stay plain dicts
def predict(run_or_name: str | os.PathLike, inputs: str | os.PathLike | Sequence[str | os.PathLike], *,
            conf: float | None = None, iou: float | None = None, weights: str | os.PathLike | None = None,
            draw: str | os.PathLike | None = None, masks_dir: str | os.PathLike | None = None,
            batch_size: int = 4, workers: int | None = None, device: str = "auto", backend: str = "auto",
            precision: str = "fp32", calibration: str | os.PathLike | None = None,
            progress: bool = False) -> list[dict[str, Any]]:
    """Detect objects in files, folders or globs: per file {"path", "width", "height", "detections":
    [{"label", "score", "box": [x1, y1, x2, y2]}], "error"} in the file's displayed pixels (EXIF
    rotation applied). `draw` writes each picture with its boxes; `masks_dir` one PNG per detected
    mask (its path in the detection's "mask_png"); masks also ride along as COCO RLE ("mask"). `precision`
    "int8": the backbone quantized, calibrated on `calibration` [default: the run's training photos]."""
    from .draw import draw_detections

    files = expand_inputs(inputs).files
    predictor = load_predictor(run_or_name, conf=conf, iou=iou, weights=weights, device=device, batch_size=batch_size,
                               backend=backend, precision=precision, calibration=calibration)
    names = output_names(files)   # one name per input, never shared (visionzoo.outputs)
    results = []
    for r in iter_predict_files(predictor, files, workers=workers, progress=progress):
        if not r["error"] and masks_dir is not None:
            for k, d in enumerate(d for d in r["detections"] if "mask" in d):
                png = output_path(masks_dir, names[r["path"]], f".mask{k}.png")
                d["mask_png"] = str(write_mask_png(d["mask"], png))
        if not r["error"] and draw is not None:
            try:
                draw_detections(load_rgb(r["path"]), r["detections"],
                                output_path(draw, names[r["path"]], ".jpg"))
            except ImageDecodeError as exc:
                r["error"] = exc.reason
        results.append(r)
    return results
