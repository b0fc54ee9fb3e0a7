"""Run a segmenter on images: a class-index mask at each image's original size and orientation
(tiled with overlap past `tile` pixels, so any size runs in bounded memory), a colour overlay,
and per-class pixel shares.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from ...atomic import save_image
from ...data.decode import ImageDecodeError, load_rgb
from ...data.inputs import expand_inputs
from ...errors import UsageError
from ...outputs import output_names, output_path
from ...runtime import pick_device
from ...viz.notebook import shows
from .infer import foreground, label_map, logit_rows
from .model import Segmenter, load_segmenter
from .pictures import describe_row, render_row

DEFAULT_TILE = 1024


def palette(n: int) -> np.ndarray:
    """n distinct RGB colours (the Pascal VOC colour map: class 0 black, then bit-interleaved colours)."""
    out = np.zeros((max(n, 1), 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        out[i] = (r, g, b)
    return out


def overlay(img: Image.Image, mask: np.ndarray, n_classes: int, alpha: float = 0.5,
            classes: Sequence[str] | None = None) -> Image.Image:
    """The photo with each non-background class painted over it in its palette colour; with
    `classes` (names by index), a legend of the classes present."""
    from ...viz.labels import draw_legend

    colours = palette(n_classes)
    base = np.asarray(img.convert("RGB"), dtype=np.float32)
    painted = np.where((mask > 0)[..., None], (1 - alpha) * base + alpha * colours[mask], base)
    out = Image.fromarray(painted.astype(np.uint8))
    if classes is None:
        return out
    present = [int(v) for v in np.unique(mask) if 0 < v < min(len(classes), n_classes)]
    return draw_legend(out, [(str(classes[v]), colours[v].tolist()) for v in present])


def mask_image(mask: np.ndarray, n_classes: int) -> Image.Image:
    """Class indices as a PNG-ready image: a palette PNG (viewable, indices kept) up to 256 classes."""
    if n_classes > 256:
        return Image.fromarray(mask.astype(np.uint16))
    png = Image.fromarray(mask.astype(np.uint8), mode="P")
    png.putpalette(palette(256).flatten().tolist())
    return png


def stored_threshold(segmenter: Segmenter) -> float | None:
    """The foreground probability threshold a two-class run chose on its validation images, if any."""
    return (segmenter.config.get("operating_point") or {}).get("threshold")


class Predictor:
    """`predictor(images) -> [{"width", "height", "mask" (H x W class indices), "shares"}]`.

    A two-class mask marks a pixel as class 1 where its probability reaches `conf` (default: the
    run's operating point, chosen on validation; 0.5-equivalent argmax for runs without one)."""

    task = "segment"

    def __init__(self, segmenter: Segmenter, *, tile: int | None = DEFAULT_TILE, overlap: float = 0.25,
                 device: str = "auto", conf: float | None = None, backend: str = "auto"):
        """`backend`: auto (ONNX Runtime on a CPU, see runtime.py; PyTorch on a GPU or when the network
        cannot be exported), torch or onnx."""
        if backend not in ("auto", "torch", "onnx"):
            raise UsageError(f"unknown backend {backend!r}; use auto, torch or onnx")
        self.segmenter = segmenter
        self.classes = segmenter.classes
        self.tile, self.overlap = tile, overlap
        self.conf = conf if conf is not None else stored_threshold(segmenter)
        self.device = pick_device(device)
        self.network, self.backend = segmenter.network().to(self.device), "torch"
        if backend == "onnx" or (backend == "auto" and self.device.type == "cpu"):
            self._use_onnx(backend == "onnx")

    def _use_onnx(self, required: bool) -> None:
        from ...cpus import usable_cpus
        from .runtime import OnnxNetwork

        try:
            self.network, self.backend = OnnxNetwork(self.segmenter, usable_cpus()), "onnx"
        except UsageError as exc:
            if required:
                raise
            import warnings

            warnings.warn(f"{exc}; segmenting with PyTorch instead", stacklevel=3)

    def _image(self, img: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)

    @torch.inference_mode()
    def mask(self, img: Image.Image) -> np.ndarray:
        labels = label_map(self.network, self._image(img), threshold=self.conf, tile=self.tile,
                           overlap=self.overlap, device=self.device)
        return labels.numpy().astype(np.uint8 if len(self.classes) <= 256 else np.int32)

    @torch.inference_mode()
    def foreground(self, img: Image.Image) -> np.ndarray:
        """H x W probability of class 1 (two-class segmenters)."""
        rows = logit_rows(self.network, self._image(img), tile=self.tile, overlap=self.overlap, device=self.device)
        return torch.cat([foreground(block) for _, block in rows], dim=0).numpy()

    def shares(self, mask: np.ndarray) -> dict[str, float]:
        counts = np.bincount(mask.ravel(), minlength=len(self.classes))
        return {name: round(float(c) / mask.size, 6) for name, c in zip(self.classes, counts)}

    def __call__(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        out = []
        for img in images:
            mask = self.mask(img)
            out.append({"width": img.width, "height": img.height, "mask": mask, "shares": self.shares(mask)})
        return out


def load_predictor(run_or_name: str | os.PathLike, *, weights: str | os.PathLike | None = None,
                   tile: int | None = DEFAULT_TILE, overlap: float = 0.25, device: str = "auto",
                   conf: float | None = None, backend: str = "auto") -> Predictor:
    """A segmentation run folder or a torchvision segmenter name, loaded once, ready to call."""
    return Predictor(load_segmenter(run_or_name, weights), tile=tile, overlap=overlap, device=device, conf=conf,
                     backend=backend)


def iter_masks(predictor: Predictor, files: Sequence[str], workers: int | None = None
               ) -> Iterator[tuple[str, Image.Image | None, np.ndarray | None, str | None]]:
    """(path, image, mask, error) per file; one bad file never stops the others. `workers`
    threads (default 1) decode the next images while the model runs."""
    from ...ordered import ordered_map

    def decode(path: str) -> tuple[Image.Image | None, str | None]:
        try:
            return load_rgb(path), None
        except ImageDecodeError as exc:
            return None, exc.reason

    for path, (img, error) in zip(files, ordered_map(decode, files, 1 if workers is None else workers)):
        yield path, img, (predictor.mask(img) if img is not None else None), error


@shows(render_row, describe_row)  # in a notebook the rows show their overlay; they stay plain dicts
def predict(run_or_name: str | os.PathLike, inputs: str | os.PathLike | Sequence[str | os.PathLike], *,
            masks_dir: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
            tile: int | None = DEFAULT_TILE, overlap: float = 0.25, device: str = "auto", workers: int | None = None,
            conf: float | None = None, backend: str = "auto", progress: bool = False, **renamed_options: Any) -> list[dict[str, Any]]:
    """Segment files, folders or globs: per file {"path", "width", "height", "shares", "error"} and,
    with `masks_dir`, MASKS_DIR/STEM.mask.png (class indices, palette PNG) and MASKS_DIR/STEM.overlay.png."""
    from ...deprecation import renamed
    from ...progress import progress_bar

    options = renamed(renamed_options, {"out": "masks_dir"}, "segment.predict")
    masks_dir = options.pop("masks_dir", masks_dir)
    if options:
        raise TypeError(f"predict() got unexpected keyword arguments: {', '.join(options)}")
    files = expand_inputs(inputs).files
    predictor = load_predictor(run_or_name, weights=weights, tile=tile, overlap=overlap, device=device, conf=conf,
                               backend=backend)
    out_dir = Path(masks_dir) if masks_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    results, names = [], output_names(files)
    for path, img, mask, error in progress_bar(iter_masks(predictor, files, workers), total=len(files), unit="img",
                                               disable=not progress):
        row: dict[str, Any] = {"path": path}
        if error is None:
            row.update(width=img.width, height=img.height, shares=predictor.shares(mask))
            if out_dir is not None:
                row["mask_png"] = str(output_path(out_dir, names[path], ".mask.png"))
                row["overlay_png"] = str(output_path(out_dir, names[path], ".overlay.png"))
                save_image(mask_image(mask, len(predictor.classes)), row["mask_png"])
                save_image(overlay(img, mask, len(predictor.classes), classes=predictor.classes), row["overlay_png"])
        row["error"] = error
        results.append(row)
    return results
