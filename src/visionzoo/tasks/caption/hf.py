"""Pretrained captioners from Hugging Face through `transformers` (BLIP, ViT-GPT2, any
image-to-text model `AutoModelForImageTextToText` loads), for users with network.

Names: a short name below, a hub id (`Salesforce/blip-image-captioning-base`), or a local
folder holding a saved model (config.json, weights, image processor and tokenizer files).
Offline, a hub id loads from the Hugging Face cache; with nothing cached the user gets one
sentence naming the cache and the offline alternative, at once (no minutes of retries).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from ...errors import UsageError, WeightsUnavailableError

HF_NAMES = {
    "blip": "Salesforce/blip-image-captioning-base",
    "blip-large": "Salesforce/blip-image-captioning-large",
    "vit-gpt2": "nlpconnect/vit-gpt2-image-captioning",
}


def _resolve(name: str) -> tuple[str, bool]:
    """(what from_pretrained loads, local_files_only)."""
    if Path(name).is_dir():
        if not (Path(name) / "config.json").is_file():
            raise UsageError(f"{name} is neither a caption run (visionzoo caption train) nor a saved "
                             f"Hugging Face model folder (no config.json)")
        return name, True
    repo = HF_NAMES.get(name.lower(), name)
    if repo.count("/") != 1 or repo.startswith(("/", ".")):
        raise UsageError(f"unknown captioner {name!r}: pass a run folder from `visionzoo caption train`, a "
                         f"Hugging Face model id (org/name) or one of {', '.join(HF_NAMES)}")
    from huggingface_hub import try_to_load_from_cache

    from ...zoo.weights import hubs_reachable

    if isinstance(try_to_load_from_cache(repo, "config.json"), str):
        return repo, not hubs_reachable()
    if not hubs_reachable():
        raise WeightsUnavailableError(offline_message(repo))
    return repo, False


def offline_message(repo: str) -> str:
    from ...zoo.weights import hub_cache_dirs

    return (f"No weights for '{repo}' are available offline: it is not in the Hugging Face cache "
            f"({hub_cache_dirs()[0]}) and the model hubs cannot be reached; connect once to download it, "
            f"pass a folder where it was saved (save_pretrained), or caption with a run trained offline "
            f"by `visionzoo caption train`.")


class _Pixels:
    """PIL image -> the model's pixel tensor, by its own image processor."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]


class HFCaptioner:
    """Image processor -> model.generate (beam search) -> tokenizer.batch_decode."""

    task = "caption"

    def __init__(self, name: str, *, beam: int = 3, device: str = "auto", max_length: int = 40):
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

        from ...runtime import pick_device

        source, local = _resolve(name)
        try:
            self.processor = AutoImageProcessor.from_pretrained(source, local_files_only=local)
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
            self.model = AutoModelForImageTextToText.from_pretrained(source, local_files_only=local)
        except OSError as exc:
            raise UsageError(f"cannot load the captioner {name!r}: {exc}") from None
        self.transform = _Pixels(self.processor)  # its own object: decoding workers get it without the model
        self.device = pick_device(device)
        self.model.eval().to(self.device)
        self.name, self.beam, self.max_length = name, beam, max_length
        size = getattr(self.processor, "size", None) or {}
        self.target_size = max((v for v in size.values() if isinstance(v, int)), default=None) \
            if isinstance(size, dict) else None

    @torch.inference_mode()
    def run(self, batch: torch.Tensor) -> list[dict[str, Any]]:
        ids = self.model.generate(pixel_values=batch.to(self.device, self.model.dtype), num_beams=self.beam,
                                  max_new_tokens=self.max_length)
        return [{"caption": " ".join(t.split())} for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def __call__(self, images: Sequence) -> list[dict[str, Any]]:
        if not images:
            return []
        return self.run(torch.stack([self.transform(im.convert("RGB")) for im in images]))
