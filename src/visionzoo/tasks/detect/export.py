"""`visionzoo export RUN` for detection runs: the whole torchvision detector (resize, backbone,
heads, box decoding, NMS) as one ONNX graph, checked against PyTorch with ONNX Runtime.

Input "image": one float32 image, 3 x H x W, RGB in [0, 1], any size. Outputs "boxes" (N x 4,
x1 y1 x2 y2 in the input's pixels), "scores" (N) and "labels" (N, 1-based ids into the
metadata's "classes"); plus "masks" (N x 1 x H x W probabilities) for Mask R-CNN runs.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ...atomic import atomic_path
from ...errors import UsageError

OPSET = 17


class _OneImage(torch.nn.Module):
    """A torchvision detector called on one tensor (not a list), returning tensors (not dicts)."""

    def __init__(self, module: torch.nn.Module, masks: bool):
        super().__init__()
        self.module, self.masks = module, masks

    def forward(self, image: torch.Tensor):
        out = self.module([image])[0]
        keys = ("boxes", "scores", "labels", "masks") if self.masks else ("boxes", "scores", "labels")
        return tuple(out[k] for k in keys)


def export_onnx(run_dir: str | os.PathLike, out: str | os.PathLike, *, check_image: str | None = None) -> Path:
    """Write the detection run `run_dir` as ONNX to `out` and check it reproduces PyTorch's boxes."""
    from .detector import load_detector

    return export_detector(load_detector(run_dir), out, check_image=check_image)


def export_detector(detector: Any, out: str | os.PathLike, *, check_image: str | None = None) -> Path:
    """Write a loaded Detector as ONNX to `out` (every box scoring at least EVAL_CONF, after the model's own
    NMS: the operating point is applied afterwards, as in PyTorch) and check it reproduces PyTorch's boxes."""
    from .detector import MODEL_NMS
    from .model import set_thresholds
    from .operating import EVAL_CONF

    set_thresholds(detector.module, EVAL_CONF, MODEL_NMS)
    wrapper = _OneImage(detector.module.eval().cpu(), detector.has_masks).eval()
    names = ["boxes", "scores", "labels"] + (["masks"] if detector.has_masks else [])
    size = int(detector.config.get("image_size") or detector.config.get("img_size") or 384)
    example = torch.rand(3, size, size * 4 // 3)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        with (warnings.catch_warnings(), torch.inference_mode(), constant_padding(detector.module), gathered_levels(),
              decoded_after_selection(detector.module)):
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=["image"], output_names=names,
                              dynamic_axes={"image": {1: "height", 2: "width"}, **{n: {0: "detections"} for n in names}})
        import onnx

        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key = "visionzoo"
        entry.value = json.dumps({"task": "detect", "classes": detector.classes, "names_by_label": detector.names,
                                  "arch": detector.config.get("arch"), "conf": detector.config.get("conf", 0.25),
                                  "operating_point": detector.config.get("operating_point"),
                                  "input": "image: float32 3xHxW RGB in [0, 1]", "outputs": names})
        onnx.save(proto, str(tmp))
        _check(wrapper, tmp, check_image)   # against the module as trained: run-time padding and all
    return out


@contextlib.contextmanager
def gathered_levels() -> Iterator[None]:
    """While exporting, RoI features pooled per FPN level are put back in the RoIs' order by one Gather
    (the per-level results concatenated, then indexed by the inverse of the level-sorted order) instead of
    torchvision's ScatterElements of a zero tensor per level: the same tensor, 8 % of the fp32 graph's
    time less (100 RoIs, 3 levels)."""
    from torchvision.ops import poolers

    def merge(levels: torch.Tensor, results: list[torch.Tensor]) -> torch.Tensor:
        order = torch.cat([torch.where(levels == level)[0] for level in range(len(results))])
        return torch.cat(results)[torch.argsort(order)]

    original = getattr(poolers, "_onnx_merge_levels", None)
    if original is None:       # a torchvision that merges otherwise: export what it does
        yield
        return
    poolers._onnx_merge_levels = merge
    try:
        yield
    finally:
        poolers._onnx_merge_levels = original


@contextlib.contextmanager
def decoded_after_selection(module: torch.nn.Module) -> Iterator[None]:
    """While exporting, a two-stage detector's RPN makes and decodes only the anchors it keeps before its NMS
    (the `pre_nms_top_n` best-scoring per level), each from its index, instead of every anchor of every
    level: anchors and decoding are per anchor, so the same proposals in the same order, from about 400
    anchors instead of about 12,000 on a 384 px photo (and some 200 fewer graph nodes)."""
    from torchvision.models.detection import _utils as det_utils

    rpn = getattr(module, "rpn", None)
    if rpn is None:
        yield
        return
    generator, decode, select, grid = rpn.anchor_generator, rpn.box_coder.decode, rpn.filter_proposals, {}

    def note_grid(images, features: list[torch.Tensor]) -> list[torch.Tensor]:
        grid.update(image=images.tensors.shape[-2:], sizes=[f.shape[-2:] for f in features], like=features[0])
        return [features[0].new_zeros(0, 4)]     # per image; the anchors are made in filter_proposals

    def filter_proposals(codes, objectness, image_shapes, num_anchors_per_level):
        if len(image_shapes) != 1:
            raise ValueError("the export's RPN takes one image")
        generator.set_cell_anchors(grid["like"].dtype, grid["like"].device)
        scores, codes = objectness.detach().reshape(1, -1), codes.reshape(-1, 4)
        kept, anchors, counts, offset = [], [], [], 0
        for level, (height, width), cell in zip(scores.split(num_anchors_per_level, 1), grid["sizes"],
                                               generator.cell_anchors):
            n = det_utils._topk_min(level, rpn.pre_nms_top_n(), 1)
            index = level.topk(n, dim=1)[1][0]      # as RegionProposalNetwork._get_top_n_idx
            place, shape = index // len(cell), index % len(cell)
            x = place % width * (grid["image"][1] // width)
            y = place // width * (grid["image"][0] // height)
            anchors.append(torch.stack((x, y, x, y), 1) + cell[shape])
            kept.append(index + offset)
            counts.append(n)
            offset = offset + level.shape[1]
        kept_all = torch.cat(kept)
        boxes = decode(codes[kept_all], [torch.cat(anchors)]).view(1, -1, 4)
        return select(boxes, scores[:, kept_all], image_shapes, counts)

    generator.forward, rpn.box_coder.decode = note_grid, lambda codes, anchors: codes
    rpn.filter_proposals = filter_proposals
    try:
        yield
    finally:
        del generator.forward, rpn.box_coder.decode, rpn.filter_proposals


def constant_padding(module: torch.nn.Module) -> contextlib.AbstractContextManager:
    """`constant_same_padding` on the detector's backbone when every image it sees divides by the backbone's
    total stride (the transform pads each batch to a multiple of `size_divisible`, or resizes to a fixed
    size), so its run-time "same" padding is a constant: 15 % of the fp32 graph's time on EfficientNet-Lite.
    Otherwise nothing changes."""
    from ...runtime.same_padding import constant_same_padding
    from .model import backbone_body

    body = backbone_body(module)
    info = getattr(body, "feature_info", None)
    stride = max(info.reduction()) if info is not None else 0
    t = module.transform
    sides = list(t.fixed_size) if t.fixed_size else [t.size_divisible]
    if not stride or any(side % stride for side in sides):
        return contextlib.nullcontext(0)
    return constant_same_padding(body)


def _check(wrapper: torch.nn.Module, path: Path, image: str | None) -> None:
    """Same boxes from ONNX Runtime as from PyTorch on a real-sized input (on a photo if given)."""
    import onnxruntime as ort

    if image is not None:
        from ...data.decode import load_rgb

        x = torch.from_numpy(np.asarray(load_rgb(image), dtype=np.float32) / 255).permute(2, 0, 1).contiguous()
    else:
        x = torch.rand(3, 300, 420, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = [t.numpy() for t in wrapper(x)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})
    # Boxes scoring near the model's own threshold may drop in or out by rounding; the confident ones
    # (and at least the top three, so an untrained model is compared too) must come back the same, in
    # any order: near-equal scores (dozens of cells in a tile) swap places by rounding.
    n = max(int((expected[1] > 0.05).sum()), min(3, len(expected[1])))
    if not _found(expected[0][:n], expected[2][:n], got[0], got[2]):
        raise UsageError(f"the exported ONNX detector does not reproduce PyTorch's boxes ({path}); not written")


def _found(boxes: np.ndarray, labels: np.ndarray, got_boxes: np.ndarray, got_labels: np.ndarray,
           atol: float = 0.5) -> bool:
    """Whether each of `boxes` (with its label) is among `got_boxes`, every coordinate within `atol` pixels."""
    if not len(boxes):
        return True
    if not len(got_boxes):
        return False
    off = np.abs(boxes[:, None, :] - got_boxes[None, :, :]).max(-1)
    return bool(((off <= atol) & (labels[:, None] == got_labels[None, :])).any(1).all())
