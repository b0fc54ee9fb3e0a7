"""Detectors: torchvision's detection models (anchors, losses, NMS, FPN are theirs) on a zoo backbone,
and torchvision's COCO-pretrained detectors by name.

A trained detector is rebuilt from `DetectorConfig` (stored in the run's config.json) and its
safetensors; the backbone is a timm `features_only` network of the zoo architecture, loaded with
the zoo's weights (offline for EfficientNet-Lite), so nothing but the zoo decides the weights.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from functools import partial
from typing import Any

import torch
from torch import nn

from ...errors import UsageError
from .config import DetectorConfig

ARCHS = ("fasterrcnn", "retinanet", "fcos", "ssdlite", "maskrcnn")


class ZooFeatures(nn.Module):
    """A timm `features_only` backbone + torchvision FPN: images -> OrderedDict of feature maps."""

    def __init__(self, body: nn.Module, in_channels: list[int], out_channels: int, extra_blocks: nn.Module | None):
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=extra_blocks)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(self.body(x))))


class ZooSSDFeatures(nn.Module):
    """SSDLite's feature maps: the backbone's stride-16 and stride-32 maps, then four extra
    depthwise-separable blocks halving the resolution each (as torchvision's SSDLite does)."""

    def __init__(self, body: nn.Module, in_channels: list[int], extra: tuple[int, ...] = (256, 256, 128, 128)):
        super().__init__()
        from torchvision.ops.misc import Conv2dNormActivation

        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
        self.body = body
        blocks, prev = [], in_channels[-1]
        for out in extra:
            mid = out // 2
            blocks.append(nn.Sequential(
                Conv2dNormActivation(prev, mid, 1, norm_layer=norm, activation_layer=nn.ReLU6),
                Conv2dNormActivation(mid, mid, 3, stride=2, groups=mid, norm_layer=norm, activation_layer=nn.ReLU6),
                Conv2dNormActivation(mid, out, 1, norm_layer=norm, activation_layer=nn.ReLU6),
            ))
            prev = out
        self.extra = nn.ModuleList(blocks)
        self.out_channels = [*in_channels, *extra]

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        feats = list(self.body(x))
        for block in self.extra:
            feats.append(block(feats[-1]))
        return OrderedDict((str(i), f) for i, f in enumerate(feats))


# --------------------------------------------------------------------------- zoo backbone
def _timm_arch(backbone: str) -> tuple[str, Any]:
    """(timm architecture, ModelSpec) of a zoo name or classification run folder."""
    from ...zoo import resolve

    spec = resolve(backbone)
    if spec.library != "timm":
        raise UsageError(f"backbone {backbone!r} is a torchvision classifier; detection needs a timm architecture "
                         f"with feature stages (e.g. efficientnet_lite0, resnet_v1_50, mobilenet_v2)")
    return spec.arch, spec


def _features_body(arch: str, min_stride: int, max_levels: int | None) -> tuple[nn.Module, list[int]]:
    """timm `features_only` network returning the stages with stride >= min_stride (the last
    `max_levels` of them), and their channel counts."""
    import timm

    try:
        probe = timm.create_model(arch, pretrained=False, features_only=True)
    except Exception as exc:
        raise UsageError(f"backbone {arch!r} has no feature stages timm can return ({exc})") from None
    info = probe.feature_info
    indices = [i for i, r in enumerate(info.reduction()) if r >= min_stride]
    if max_levels:
        indices = indices[-max_levels:]
    if not indices:
        raise UsageError(f"backbone {arch!r} has no feature stage with stride >= {min_stride}")
    body = timm.create_model(arch, pretrained=False, features_only=True, out_indices=tuple(indices))
    return body, body.feature_info.channels()


def load_backbone_weights(body: nn.Module, backbone: str) -> str:
    """Copy the zoo model's pretrained weights into the features network; returns their source."""
    from ...zoo import load_model

    classifier = load_model(backbone)
    source = classifier.state_dict()
    target = body.state_dict()
    missing = [k for k in target if k not in source]
    if missing:
        raise UsageError(f"the weights of {backbone!r} do not cover its feature stages (e.g. {missing[0]})")
    body.load_state_dict({k: source[k] for k in target})
    return str(classifier.zoo_spec.weights)


def backbone_groups(body: nn.Module, arch: str | None) -> list[list[nn.Parameter]]:
    """The backbone's parameters in timm's coarse groups (stem, then each stage), input side first; for a
    torchvision trunk (`arch` None), its parameter-holding children in order."""
    import timm
    from timm.models import group_parameters

    if not arch:
        return [list(c.parameters()) for c in body.children() if any(True for _ in c.parameters())]
    with torch.device("meta"):
        matcher = timm.create_model(arch, pretrained=False).group_matcher(coarse=True)
    named = dict(body.named_parameters())
    groups = group_parameters(body, matcher)
    return [[named[n] for n in names] for _, names in sorted(groups.items()) if names]


# --------------------------------------------------------------------------- building
def family(name: str) -> str:
    """The arch family of a torchvision detector name (fasterrcnn_resnet50_fpn_v2 -> fasterrcnn)."""
    return next((a for a in ("fasterrcnn", "maskrcnn", "retinanet", "fcos", "ssdlite", "ssd") if name.startswith(a)),
                name)


def _torchvision_detector(cfg: DetectorConfig) -> nn.Module:
    """torchvision's `cfg.source` architecture with a head for `cfg.num_classes` (weights: `load_coco_weights`)."""
    import torchvision.models as tvm

    sizes = {} if family(cfg.source).startswith("ssd") else {"min_size": cfg.image_size, "max_size": cfg.max_size}
    return tvm.get_model(cfg.source, weights=None, weights_backbone=None, num_classes=cfg.num_classes + 1, **sizes)


def load_coco_weights(model: nn.Module, name: str, weights: str | os.PathLike | None = None) -> tuple[str, list[str]]:
    """Copy the COCO-trained weights of torchvision's detector `name` into `model` wherever a tensor's shape
    fits: everything but the class-specific head. Returns (where the weights came from, the tensors left new)."""
    from ...zoo.weights import torchvision_state_dict

    state, source, _ = torchvision_state_dict(name, weights)
    target = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in target and tuple(target[k].shape) == tuple(v.shape)}
    if len(fitting) < len(target) // 2:
        raise UsageError(f"the weights {source} do not fit {name} ({len(fitting)} of {len(target)} tensors)")
    model.load_state_dict(fitting, strict=False)
    return source, [k for k in target if k not in fitting and not k.endswith("num_batches_tracked")]


def backbone_body(model: nn.Module) -> nn.Module:
    """The feature-extracting trunk of a detector (before the FPN or SSD's extra layers)."""
    return getattr(model.backbone, "body", model.backbone)


def build_detector(cfg: DetectorConfig, *, pretrained_backbone: bool = True) -> nn.Module:
    """The torchvision detector for `cfg`; with `pretrained_backbone` the zoo's weights are loaded (a
    detector fine-tuned from a COCO one gets those in `load_coco_weights` instead)."""
    if cfg.source:
        return _torchvision_detector(cfg)
    from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.fcos import FCOSHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.models.detection.retinanet import RetinaNetHead
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteHead
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

    if cfg.arch not in ARCHS:
        raise UsageError(f"unknown detector arch {cfg.arch!r}; use one of {', '.join(ARCHS)}")
    n = cfg.num_classes + 1  # torchvision counts the background as class 0
    common = dict(min_size=cfg.image_size, max_size=cfg.max_size, image_mean=list(cfg.mean), image_std=list(cfg.std))
    ch = cfg.fpn_channels
    if cfg.arch == "ssdlite":
        body, channels = _features_body(cfg.backbone_arch, 16, 2)
        features = ZooSSDFeatures(body, channels)
        anchors = DefaultBoxGenerator([[2, 3] for _ in features.out_channels], min_ratio=0.2, max_ratio=0.95)
        head = SSDLiteHead(features.out_channels, anchors.num_anchors_per_location(), n,
                           partial(nn.BatchNorm2d, eps=0.001, momentum=0.03))
        model: nn.Module = SSD(features, anchors, (cfg.image_size, cfg.image_size), n, image_mean=list(cfg.mean),
                               image_std=list(cfg.std), head=head, score_thresh=0.001, nms_thresh=0.5,
                               detections_per_img=100, topk_candidates=300)
    else:
        body, channels = _features_body(cfg.backbone_arch, cfg.min_stride, 3)
        strides = [cfg.min_stride * 2 ** i for i in range(len(channels))]
        if cfg.arch in ("fasterrcnn", "maskrcnn"):
            features = ZooFeatures(body, channels, ch, LastLevelMaxPool())
            levels = [*strides, strides[-1] * 2]
            anchors = AnchorGenerator(tuple((4 * s, 6 * s) for s in levels), ((0.5, 1.0, 2.0),) * len(levels))
            names = [str(i) for i in range(len(channels))]
            kwargs = dict(
                rpn_anchor_generator=anchors,
                box_roi_pool=MultiScaleRoIAlign(names, 7, 2),
                box_head=TwoMLPHead(ch * 49, cfg.box_head),
                box_predictor=FastRCNNPredictor(cfg.box_head, n),
                box_batch_size_per_image=cfg.train_rois,
                rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=1000,
                rpn_pre_nms_top_n_test=cfg.proposals, rpn_post_nms_top_n_test=cfg.proposals,
                box_score_thresh=0.001,
            )
            if cfg.arch == "fasterrcnn":
                model = FasterRCNN(features, None, **kwargs, **common)
            else:
                model = MaskRCNN(features, None, mask_roi_pool=MultiScaleRoIAlign(names, 14, 2),
                                 mask_head=MaskRCNNHeads(ch, (ch, ch), 1), mask_predictor=MaskRCNNPredictor(ch, ch, n),
                                 **kwargs, **common)
        else:
            features = ZooFeatures(body, channels, ch, LastLevelP6P7(ch, ch))
            levels = [*strides, strides[-1] * 2, strides[-1] * 4]
            if cfg.arch == "retinanet":
                anchors = AnchorGenerator(tuple((4 * s, int(4 * s * 2 ** (1 / 3)), int(4 * s * 2 ** (2 / 3))) for s in levels),
                                          ((0.5, 1.0, 2.0),) * len(levels))
                head = RetinaNetHead(ch, anchors.num_anchors_per_location()[0], n, norm_layer=partial(nn.GroupNorm, 16))
                model = RetinaNet(features, n, anchor_generator=anchors, head=head, score_thresh=0.001, **common)
            else:
                anchors = AnchorGenerator(tuple((s,) for s in levels), ((1.0,),) * len(levels))
                head = FCOSHead(ch, 1, n, num_convs=2)
                model = FCOS(features, n, anchor_generator=anchors, head=head, score_thresh=0.001, **common)
    if pretrained_backbone:
        load_backbone_weights(body, cfg.backbone)
    return model


# --------------------------------------------------------------------------- COCO detectors by name
def pretrained_names() -> list[str]:
    """torchvision's COCO-trained box / mask detectors (keypoint models aside)."""
    import torchvision.models as tvm

    return [n for n in tvm.list_models(module=tvm.detection) if not n.startswith("keypoint")]


def build_pretrained(name: str, weights: str | os.PathLike | None = None) -> tuple[nn.Module, list[str], str]:
    """(model, COCO label names by label id, weights source). The builder runs without weights;
    they come from `weights`, the torch hub cache, or a download when the hubs can be reached."""
    import torchvision.models as tvm

    from ...zoo.weights import torchvision_state_dict

    state, source, meta = torchvision_state_dict(name, weights)
    model = tvm.get_model(name, weights=None, weights_backbone=None)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UsageError(f"weights {source} do not fit {name}: {str(exc)[:300]}") from None
    return model.eval(), list(meta.meta["categories"]), source


def network_size(module: nn.Module) -> tuple[int, int, tuple[int, int] | None]:
    """(short side, long-side cap, fixed size or None) that the detector's transform resizes to."""
    t = module.transform
    return int(t.min_size[-1]), int(t.max_size), (tuple(t.fixed_size) if t.fixed_size else None)


def set_proposals(module: torch.nn.Module, n: int) -> None:
    """Test-time RPN proposals per image (per level before NMS, in all after it) of a two-stage detector."""
    rpn = getattr(module, "rpn", None)
    if rpn is not None:
        rpn._pre_nms_top_n["testing"] = rpn._post_nms_top_n["testing"] = int(n)


def set_thresholds(module: torch.nn.Module, conf: float, iou: float) -> None:
    """Score threshold and NMS IoU on whichever torchvision detector this is."""
    heads = getattr(module, "roi_heads", None)
    target = heads if heads is not None else module
    target.score_thresh, target.nms_thresh = float(conf), float(iou)
