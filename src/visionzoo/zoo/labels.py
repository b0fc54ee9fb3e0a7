"""Label names that travel with the weights (ImageNet-1k ships in the package)."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def imagenet1k_labels() -> list[str]:
    text = resources.files("visionzoo.resources").joinpath("imagenet1k_labels.txt").read_text("utf-8")
    labels = text.splitlines()
    assert len(labels) == 1000, "packaged ImageNet label file is damaged"
    return labels


def labels_for(num_classes: int, label_offset: int = 0, pretrained_cfg=None) -> list[str] | None:
    """Human-readable names for a pretrained head, or None when the label set is unknown."""
    if num_classes - label_offset == 1000:
        return imagenet1k_labels()
    if pretrained_cfg is not None:
        try:
            from timm.data import ImageNetInfo, infer_imagenet_subset

            subset = infer_imagenet_subset(pretrained_cfg)
            if subset:
                return list(ImageNetInfo(subset).label_descriptions())
        except Exception:
            return None
    return None
