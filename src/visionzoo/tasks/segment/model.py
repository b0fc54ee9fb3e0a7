"""Segmentation networks: segmentation-models-pytorch decoders (U-Net, DeepLabV3+, FPN) over a zoo
encoder (timm, through smp's "tu-" encoders) whose ImageNet weights come from our zoo, so the
bundled offline EfficientNet-Lite weights work; and torchvision's VOC-trained segmenters by name.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import UsageError

ARCHS = {"unet": "Unet", "deeplabv3plus": "DeepLabV3Plus", "fpn": "FPN"}
DEFAULT_BACKBONE = "efficientnet_lite0"
PRETRAINED = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large", "fcn_resnet50",
              "fcn_resnet101", "lraspp_mobilenet_v3_large")


@dataclass
class SegConfig:
    """Everything needed to rebuild a trained segmenter's network (weights aside)."""

    arch: str = "unet"
    backbone: str = DEFAULT_BACKBONE
    backbone_arch: str = "tf_efficientnet_lite0"
    num_classes: int = 2
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SegConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if k in ("mean", "std") else v for k, v in d.items() if k in known})


def backbone_spec(backbone: str):
    """(timm architecture, ModelSpec) of a zoo backbone name, resolved without loading weights."""
    from ...zoo import resolve

    spec = resolve(backbone)
    if spec.library != "timm":
        raise UsageError(f"--backbone {backbone}: segmentation encoders must be timm models "
                         f"(e.g. efficientnet_lite0, resnet50); {spec.library} models are not supported")
    return spec.arch, spec


def build_segmenter(cfg: SegConfig, *, pretrained_backbone: bool = True) -> nn.Module:
    """The smp network for `cfg`; with `pretrained_backbone` the encoder gets the zoo's ImageNet weights."""
    import segmentation_models_pytorch as smp

    if cfg.arch not in ARCHS:
        raise UsageError(f"unknown --arch {cfg.arch!r}; use one of {', '.join(ARCHS)}")
    model = getattr(smp, ARCHS[cfg.arch])(encoder_name=f"tu-{cfg.backbone_arch}", encoder_weights=None,
                                          classes=cfg.num_classes)
    if pretrained_backbone:
        load_encoder_weights(model, cfg.backbone)
    return model


def load_encoder_weights(model: nn.Module, backbone: str) -> None:
    """Copy a zoo classifier's weights into the smp encoder (timm features_only model: same keys, no head)."""
    import visionzoo

    classifier = visionzoo.load_model(backbone)
    encoder = model.encoder.model
    state = {k: v for k, v in classifier.state_dict().items() if k in encoder.state_dict()}
    missing = [k for k in encoder.state_dict() if k not in state]
    if missing:
        raise UsageError(f"the {backbone} weights do not fit the segmentation encoder (missing {missing[:3]})")
    encoder.load_state_dict(state, strict=True)


class TorchvisionSegmenter(nn.Module):
    """torchvision's segmenters return {"out": logits, "aux": ...}; the rest of visionzoo wants logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


class Normalised(nn.Module):
    """The network as users and ONNX see it: RGB in [0, 1] in, standardised inside, logits out."""

    def __init__(self, module: nn.Module, mean, std):
        super().__init__()
        self.module = module
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.module((images - self.mean) / self.std)


@dataclass
class Segmenter:
    """A trained network with its class names: `module` takes standardised images (for training),
    `network()` RGB in [0, 1] (for prediction and export)."""

    module: nn.Module
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    config: dict[str, Any] = field(default_factory=dict)

    def network(self) -> Normalised:
        return Normalised(self.module, self.mean, self.std).eval()


def load_pretrained(name: str, weights: str | os.PathLike | None = None) -> Segmenter:
    """torchvision's VOC-label segmenter `name`: weights from `weights`, the torch hub cache, or a download."""
    import torchvision.models as tvm

    from ...zoo.weights import torchvision_state_dict

    state, source, meta = torchvision_state_dict(name, weights)
    model = tvm.get_model(name, weights=None, weights_backbone=None, aux_loss=None)
    state = {k: v for k, v in state.items() if not k.startswith("aux_classifier.")}
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise UsageError(f"weights {source} do not fit {name}: {str(exc)[:300]}") from None
    classes = [c.strip("_") for c in meta.meta["categories"]]  # "__background__" -> "background"
    return Segmenter(TorchvisionSegmenter(model).eval(), classes, (0.485, 0.456, 0.406),
                     (0.229, 0.224, 0.225), source, {"task": "segment", "arch": name})


def load_segmenter(run_or_name: str | os.PathLike, weights: str | os.PathLike | None = None) -> Segmenter:
    """A segmentation run folder, or a torchvision segmenter name (see PRETRAINED)."""
    from safetensors.torch import load_model

    from ...zoo.rundir import WEIGHTS_FILE, task_config

    config = task_config(run_or_name, "segment")
    if config is not None:
        cfg = SegConfig.from_dict(config["segmenter"])
        module = build_segmenter(cfg, pretrained_backbone=False)
        load_model(module, str(Path(run_or_name) / WEIGHTS_FILE), strict=True, device="cpu")
        return Segmenter(module.eval(), list(config["classes"]), cfg.mean, cfg.std, str(run_or_name), config)
    name = os.fspath(run_or_name)
    if name in PRETRAINED:
        return load_pretrained(name, weights)
    raise UsageError(f"{name} is neither a segmentation run folder (visionzoo segment train) nor one of the "
                     f"pretrained segmenters: {', '.join(PRETRAINED)}")
