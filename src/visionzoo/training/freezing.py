"""Blocks of a backbone, freezing the first N, BatchNorm for small data, and optimizer param groups.

A "block" is one of the backbone's coarse stages in input-to-output order: timm's
`group_matcher(coarse=True)` where the model has one (stem, each stage, the final conv), else the
parameter-bearing top-level children (descending through single wrappers such as torchvision's
`features` Sequential). The classifier is never a block.
"""
from __future__ import annotations

from torch import nn


def _classifier_param_ids(model: nn.Module) -> set[int]:
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    return {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()


def _children_blocks(module: nn.Module, skip: set[int]) -> list[list[nn.Parameter]]:
    children = [c for c in module.children() if any(id(p) not in skip for p in c.parameters())]
    if len(children) == 1 and list(children[0].children()):
        return _children_blocks(children[0], skip)
    return [[p for p in c.parameters() if id(p) not in skip] for c in children]


def backbone_blocks(model: nn.Module) -> list[list[nn.Parameter]]:
    """The backbone's parameters grouped into blocks, input side first."""
    skip = _classifier_param_ids(model)
    if hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        named = dict(model.named_parameters())
        groups = group_parameters(model, model.group_matcher(coarse=True))
        blocks = [[named[n] for n in names if id(named[n]) not in skip] for _, names in sorted(groups.items())]
        return [b for b in blocks if b]
    return _children_blocks(model, skip)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(model.get_classifier().parameters())


def set_trainable(model: nn.Module, *, head: bool, frozen_blocks: int | None) -> list[nn.Parameter]:
    """Freeze everything, then unfreeze the head and every block after the first `frozen_blocks`
    (None = keep the whole backbone frozen). Returns the trainable backbone parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head_parameters(model):
        p.requires_grad_(head)
    trainable: list[nn.Parameter] = []
    if frozen_blocks is not None:
        for block in backbone_blocks(model)[frozen_blocks:]:
            for p in block:
                p.requires_grad_(True)
            trainable += block
    return trainable


def freeze_batchnorm_stats(model: nn.Module) -> None:
    """Keep pretrained BatchNorm running statistics: with a few hundred images and small batches
    re-estimating them hurts more than it helps (Keras' fine-tuning advice). Call after train()."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
