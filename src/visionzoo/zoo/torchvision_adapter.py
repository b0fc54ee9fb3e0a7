"""Give torchvision classifiers timm's model contract, so every task treats all models alike."""
from __future__ import annotations

import torch
from torch import nn


def _last_linear(net: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    found = None
    for parent_name, parent in net.named_modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                found = (parent, child_name, child)
    if found is None:
        raise ValueError(f"{type(net).__name__} has no linear classifier")
    return found


class TorchvisionClassifier(nn.Module):
    """A torchvision classifier split at its last Linear: `net` gives pre-logits, `classifier` logits."""

    def __init__(self, net: nn.Module):
        super().__init__()
        parent, attr, linear = _last_linear(net)
        setattr(parent, attr, nn.Identity())
        self.net = net
        self.classifier: nn.Module = linear
        self.num_features = linear.in_features
        self.num_classes = linear.out_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
