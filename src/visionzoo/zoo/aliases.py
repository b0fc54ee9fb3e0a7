"""The familiar names of the classic model tables, mapped to the weights that match them.

Each entry names a timm `arch.tag` or a torchvision model; top-1 is the ImageNet-1k
validation accuracy published with those weights (None where we could not confirm it).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alias:
    target: str                    # timm "arch.tag" or "torchvision:name"
    top1: float | None = None
    note: str | None = None
    aliases: tuple[str, ...] = ()


FAMILIAR: dict[str, Alias] = {
    "alexnet": Alias("torchvision:alexnet", 56.52),
    "vgg16": Alias("vgg16.tv_in1k", 71.59),
    "vgg19": Alias("vgg19.tv_in1k", 72.38),
    "inception_v1": Alias("torchvision:googlenet", 69.78, aliases=("googlenet",)),
    "inception_v3": Alias("inception_v3.tf_in1k", 77.86, "TF-slim port, inputs in [-1, 1]"),
    "inception_v4": Alias("inception_v4.tf_in1k", 80.17, "TF-slim port, inputs in [-1, 1]"),
    "inception_resnet_v2": Alias("inception_resnet_v2.tf_in1k", 80.46, "TF-slim port"),
    "resnet_v1_50": Alias("resnet50.tv_in1k", 76.13, "original ResNet weights (torchvision)"),
    "resnet_v1_101": Alias("resnet101.tv_in1k", 77.37, "original ResNet weights (torchvision)"),
    "resnet_v1_152": Alias("resnet152.tv_in1k", 78.31, "original ResNet weights (torchvision)"),
    "resnet_v2_50": Alias("resnetv2_50.a1h_in1k", None, "pre-activation ResNet-50 (timm)"),
    "resnet_v2_101": Alias("resnetv2_101.a1h_in1k", None, "pre-activation ResNet-101 (timm)"),
    "resnet_v2_152": Alias(
        "resnetv2_152x2_bit.goog_in21k_ft_in1k", None,
        "no width-1 pre-activation ResNet-152 has public ImageNet weights; this is BiT-M R152x2",
    ),
    "mobilenet_v1": Alias("mobilenetv1_100.ra4_e3600_r224_in1k", None, "timm-trained MobileNet v1 1.0"),
    "mobilenet_v2": Alias("mobilenetv2_100.ra_in1k", 72.97),
    "nasnet_large": Alias("nasnetalarge.tf_in1k", 82.63, "TF-slim port"),
    "pnasnet_large": Alias("pnasnet5large.tf_in1k", 82.78, "TF-slim port"),
    "efficientnet_lite0": Alias("tf_efficientnet_lite0.in1k", 74.83, "offline: bundled weights"),
    "efficientnet_lite1": Alias("tf_efficientnet_lite1.in1k", 76.64, "offline: bundled weights"),
    "efficientnet_lite2": Alias("tf_efficientnet_lite2.in1k", 77.47, "offline: bundled weights"),
}

# Names people ask for that have no pretrained ImageNet weights anywhere: say so, and what is closest.
NO_WEIGHTS: dict[str, str] = {
    "inception_v2": "inception_v3 (or inception_v1 / googlenet)",
    "bn_inception": "inception_v3 (or inception_v1 / googlenet)",
}

DEFAULT_MODEL = "efficientnet_lite0"


def alias_index() -> dict[str, str]:
    """Every familiar name and secondary alias -> its canonical familiar name."""
    index = {name: name for name in FAMILIAR}
    for name, alias in FAMILIAR.items():
        for extra in alias.aliases:
            index[extra] = name
    return index
