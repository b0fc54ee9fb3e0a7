"""A trained detector's network, as its run's config.json records it (no torch: the prediction path reads
it before, or instead of, building the network)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

DEFAULT_ARCH, DEFAULT_BACKBONE = "fasterrcnn", "efficientnet_lite0"   # measured: docs/benchmarks.md, Detect


@dataclass
class DetectorConfig:
    """Everything needed to rebuild a trained detector's network (weights aside). The defaults are sized for
    a CPU (docs/benchmarks.md, Detect); `LEGACY` holds what a run saved before a field existed was built with."""

    arch: str = "fasterrcnn"
    backbone: str = DEFAULT_BACKBONE            # the zoo name the backbone weights came from
    backbone_arch: str = "tf_efficientnet_lite0"
    num_classes: int = 1                        # object classes, background excluded
    image_size: int = 384                       # short side fed to the network (square side for ssdlite)
    max_size: int = 384                         # cap on the long side: 384 fits a photo in 384 x 384, as YOLO does
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    fpn_channels: int = 64
    min_stride: int = 8                         # finest backbone level used (8: strides 8-32)
    box_head: int = 256                         # Faster/Mask R-CNN: width of the two-layer box head
    train_rois: int = 128                       # Faster/Mask R-CNN: sampled RoIs per image in training
    proposals: int = 100                        # Faster/Mask R-CNN: RPN proposals per image at test time (the
                                                # run's own number is chosen on its validation images)
    source: str | None = None                   # a torchvision COCO detector this one was fine-tuned from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DetectorConfig":
        known = {f.name for f in fields(cls)}
        d = {("image_size" if k == "img_size" else k): v for k, v in d.items()}  # runs saved before the rename
        d = {**LEGACY, **{k: v for k, v in d.items() if k in known}}
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


# What runs saved before a field existed, or before its default changed, were built with: a config.json
# without the key gets this value, never today's default.
LEGACY: dict[str, Any] = {"max_size": 640, "fpn_channels": 128, "box_head": 1024, "proposals": 500}
