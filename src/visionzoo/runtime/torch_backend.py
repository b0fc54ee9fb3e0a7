"""Run a module on batches with the fastest safe settings for the device at hand."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


class TorchRunner:
    """`runner(batch) -> float32 CPU tensor`. On CUDA: channels_last + fp16 autocast."""

    def __init__(
        self,
        module: nn.Module,
        fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
        device: str | torch.device | None = "auto",
        amp: bool | None = None,
    ):
        self.device = pick_device(device)
        self.amp = (self.device.type == "cuda") if amp is None else amp
        self.module = module.eval().to(self.device)
        if self.device.type == "cuda":
            self.module = self.module.to(memory_format=torch.channels_last)
        self.fn = fn or (lambda m, x: m(x))

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, enabled=self.amp):
            out = self.fn(self.module, x)
        return out.float().cpu()
