"""Captions for images from a saved caption run (or a Hugging Face captioner by name).

A predictor is loaded once and called many times: `predictor(images) -> [{"caption": ...}]`.
Every predictor also exposes `transform` (PIL image -> input tensor), `target_size` (for
draft-mode JPEG decoding) and `run(batch)`, so `predict` streams files through the shared
decoding workers and a folder of any size never sits in memory.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from ...data import eval_transform, expand_inputs, iter_batches
from ...errors import UsageError
from ...progress import progress_bar
from ...viz.notebook import shows
from ...zoo.rundir import WEIGHTS_FILE, is_run_dir, read_config, task_config
from .beam import beam_search
from .draw import describe_row, render_row
from .model import Captioner, DecoderConfig, build_decoder
from .vocab import Vocabulary

TASK = "caption"


def is_caption_run(path: str | os.PathLike) -> bool:
    return is_run_dir(path) and read_config(path).get("task") == TASK


class RunCaptioner:
    """A run folder written by `caption train`: zoo encoder -> image vector -> beam search."""

    task = TASK

    def __init__(self, run_dir: str | os.PathLike, *, beam: int | None = None, device: str = "auto",
                 backend: str = "auto"):
        from safetensors.torch import load_model as load_weights

        from ...runtime import pick_device
        from ...tasks.embed import feature_runner
        from ...zoo import ModelSpec, load_model

        self.run_dir = Path(run_dir)
        config = read_config(run_dir)
        self.config = config
        self.vocab = Vocabulary.load(self.run_dir / config["tokenizer"])
        self.beam = int(beam or config.get("beam", 3))
        if self.beam < 1:
            raise UsageError("--beam must be at least 1")
        encoder = load_model(ModelSpec.from_dict(config["spec"]), pretrained=False)  # weights come from the run
        model = Captioner(encoder, build_decoder(DecoderConfig(**config["decoder"])))
        load_weights(model, str(self.run_dir / WEIGHTS_FILE), strict=True, device="cpu")
        pre = encoder.zoo_spec.preprocessing
        self.transform = eval_transform(pre)
        self.target_size = pre.resize_size
        self.features, self.backend = feature_runner(encoder, config["encoder"]["layer"], backend=backend, device=device)
        self.device = pick_device(device)
        self.decoder = model.decoder.eval().to(self.device)

    def run(self, batch: torch.Tensor) -> list[dict[str, Any]]:
        feats = torch.from_numpy(self.features(batch)).to(self.device)
        found = beam_search(self.decoder, feats, self.vocab.bos, self.vocab.eos, beam=self.beam)
        return [{"caption": self.vocab.decode(words)} for words, _ in found]

    def __call__(self, images: Sequence) -> list[dict[str, Any]]:
        if not images:
            return []
        return self.run(torch.stack([self.transform(im.convert("RGB")) for im in images]))


def load_predictor(run_or_name: str | os.PathLike, *, beam: int | None = None, device: str = "auto",
                   backend: str = "auto", max_length: int = 40):
    """A caption run folder, a Hugging Face model folder, an HF model id, or a short name
    (blip, blip-large, vit-gpt2); see hf.py for the names and the offline behaviour."""
    if task_config(run_or_name, TASK) is not None:
        return RunCaptioner(run_or_name, beam=beam, device=device, backend=backend)
    from .hf import HFCaptioner

    return HFCaptioner(os.fspath(run_or_name), beam=beam or 3, device=device, max_length=max_length)


def caption_files(predictor, files: Sequence[str], *, batch_size: int = 16, workers: int | None = None,
                  progress: bool = False) -> list[dict[str, Any]]:
    """[{path, caption, error}] in the order of `files`; a file that cannot be decoded gets its reason."""
    results: list[dict[str, Any]] = [{"path": p, "caption": None, "error": None} for p in files]
    with progress_bar(total=len(files), unit="img", disable=not progress, desc="caption") as bar:
        for batch in iter_batches(files, predictor.transform, batch_size=batch_size, workers=workers,
                                  target_size=predictor.target_size):
            for i, reason in batch.failures:
                results[i]["error"] = reason
            if batch.tensor is not None:
                for i, out in zip(batch.indices, predictor.run(batch.tensor)):
                    results[i].update(out)
            bar.update(len(batch.indices) + len(batch.failures))
    return results


@shows(render_row, describe_row)  # in a notebook the rows show image and caption; they stay plain dicts
def predict(run_or_name: str | os.PathLike, inputs: str | os.PathLike | Sequence[str | os.PathLike], *,
            beam: int | None = None, batch_size: int = 16, workers: int | None = None, device: str = "auto",
            backend: str = "auto", draw: str | os.PathLike | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Caption files, folders (recursive) or globs: [{path, caption, error}] in sorted order.
    `draw`: also write each image with its caption into that folder."""
    files = expand_inputs(inputs).files
    predictor = load_predictor(run_or_name, beam=beam, device=device, backend=backend)
    results = caption_files(predictor, files, batch_size=batch_size, workers=workers, progress=progress)
    if draw is not None:
        from .draw import draw_captions

        draw_captions([r for r in results if r["error"] is None], draw)
    return results
