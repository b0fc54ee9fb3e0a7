"""Give torchvision classifiers timm's model contract, so every task treats all models alike."""
from __future__ import annotations

import torch
from torch import nn


def _last_linear(net: nn.Module) -> tuple[nn.Module, str, nn.Linear] | None:
    found = None
    for _, parent in net.named_modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                found = (parent, child_name, child)
    return found


class TorchvisionClassifier(nn.Module):
    """A torchvision classifier split into body (`net`) and head (`classifier`).

    Most end in a Linear: `net` then yields pooled pre-logits. Conv-headed ones (SqueezeNet)
    keep `features` as the body; pre-logits are the globally pooled feature map.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        found = _last_linear(net)
        self.pool_features = found is None
        if found is not None:
            parent, attr, linear = found
            setattr(parent, attr, nn.Identity())
            self.net, self.classifier = net, linear
            self.num_features, self.num_classes = linear.in_features, linear.out_features
        else:
            convs = [m for m in net.classifier.modules() if isinstance(m, nn.Conv2d)]
            if not hasattr(net, "features") or not convs:
                raise ValueError(f"{type(net).__name__}: no linear or 1x1-conv classifier found")
            self.net, self.classifier = net.features, nn.Sequential(net.classifier, nn.Flatten(1))
            self.num_features, self.num_classes = convs[-1].in_channels, convs[-1].out_channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.pool_features and pre_logits:
            return x.mean(dim=(2, 3))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        if self.pool_features:  # the new head works on pooled features, like every other model
            self.pool_features = False
            self.net = nn.Sequential(self.net, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.classifier = head
