"""`caption train`: dataset -> frozen zoo encoder's vectors (computed once, cached in RUN/features) ->
decoder trained with teacher forcing -> best epoch by validation BLEU-4 -> saved run folder,
evaluated as reloaded from disk on the held-out images.

The fit loop is the training engine's; only the per-batch step differs from classification.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ...errors import UsageError
from ...training import distributed
from ...training.batches import steps_per_epoch, tensor_batches
from ...training.engine import Fit, Phase, Step, TaskHooks, seed_everything
from ...training.run import Recipe, RunConfig, finish_run, train_run
from .beam import beam_search
from .data import CaptionSet, read_captions, split_images
from .metrics import bleu
from .model import DECODERS, DecoderConfig, build_decoder
from .vocab import TOKENIZER_FILE, Vocabulary, words

FEATURES_DIR = "features"
LAYER = "pre_logits"
Log = Callable[[str], None]


@dataclass
class CaptionTrainConfig(RunConfig):
    """Training arguments, recorded in the run's config.json."""

    backbone: str = "efficientnet_lite0"
    decoder: str = "lstm"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.05
    clip_norm: float = 5.0
    embed_dim: int = 256
    hidden_dim: int = 512
    layers: int | None = None         # None: 1 LSTM layer, 2 transformer layers
    heads: int = 4
    dropout: float = 0.3
    min_count: int = 1                # words seen fewer times in the training captions become [UNK]
    max_length: int = 40              # longest caption in tokens; longer training captions are cut
    beam: int = 3
    val_split: float = 0.1
    test_split: float = 0.1
    patience: int = 8
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    backend: str = "auto"

    def check(self) -> None:
        super().check()
        if not 0 <= self.test_split < 1 or self.val_split + self.test_split >= 1:
            raise UsageError("--val-split and --test-split must be in [0, 1) and leave images for training")
        if self.decoder not in DECODERS:
            raise UsageError(f"unknown decoder {self.decoder!r}; use {' or '.join(DECODERS)}")
        if self.epochs < 1 or self.batch_size < 1 or self.beam < 1 or self.max_length < 2:
            raise UsageError("--epochs, --batch-size and --beam must be at least 1, --max-length at least 2")
        if self.decoder == "transformer" and self.embed_dim % self.heads:
            raise UsageError(f"--embed-dim {self.embed_dim} must be a multiple of --heads {self.heads}")


# --------------------------------------------------------------------------- the fit step
def _pad(seqs: list[list[int]], pad: int) -> torch.Tensor:
    out = torch.full((len(seqs), max(len(s) for s in seqs)), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
    return out


class CaptionHooks(TaskHooks):
    """Batches are (image row, token ids [BOS] w.. [EOS] padded); the image vectors live in `table`.

    Figures: loss (cross-entropy per word, padding ignored), acc (next-word accuracy with teacher
    forcing), and on validation also bleu4 of beam-searched captions against all references."""

    log_keys = curve_keys = ("loss", "acc", "bleu4")

    def __init__(self, table: torch.Tensor, vocab: Vocabulary, train: tuple[torch.Tensor, torch.Tensor],
                 val: tuple[torch.Tensor, torch.Tensor] | None, val_rows: list[int],
                 val_refs: list[list[list[str]]], cfg: "CaptionTrainConfig"):
        self.table, self.vocab, self.val_rows, self.val_refs, self.beam = table, vocab, val_rows, val_refs, cfg.beam
        self.clip_norm = cfg.clip_norm
        self.batches = tensor_batches(*train, batch_size=cfg.batch_size, seed=cfg.seed)
        self.n_steps = steps_per_epoch(len(train[0]), cfg.batch_size)
        self.val = tensor_batches(*val, batch_size=256, seed=cfg.seed, shuffle=False) if val else None
        self.loss_fn = nn.CrossEntropyLoss(ignore_index=vocab.pad)

    def steps(self) -> int:
        return self.n_steps

    def _forward(self, net: nn.Module, rows: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        device = next(net.parameters()).device
        self.table = self.table.to(device)
        rows, tokens = rows.to(device), tokens.to(device)
        logits = net(self.table[rows], tokens[:, :-1]).float()
        target = tokens[:, 1:]
        loss = self.loss_fn(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        real = target != self.vocab.pad
        return loss, int(((logits.argmax(-1) == target) & real).sum()), int(real.sum())

    def step(self, net: nn.Module, batch) -> Step:
        loss, right, n = self._forward(net, *batch)
        return Step(loss, {"loss": (float(loss.detach()) * n, float(n)), "acc": (float(right), float(n))})

    def validate(self, module: nn.Module) -> dict[str, float]:
        if self.val is None:
            return {}
        loss_sum, correct, seen = 0.0, 0, 0
        for rows, tokens in self.val(0):
            loss, right, n = self._forward(module, rows, tokens)
            loss_sum += loss.item() * n
            correct += right
            seen += n
        found = generate(module, self.table[self.val_rows], self.vocab, self.beam)
        hyps = [words(self.vocab.decode(w)) for w, _ in found]
        return {"loss": loss_sum / max(seen, 1), "acc": correct / max(seen, 1),
                "bleu4": bleu(self.val_refs, hyps)["bleu4"]}

    def score(self, logs: dict[str, float]) -> tuple[float, ...]:
        """Best epoch: highest validation BLEU-4, then lowest validation loss (training loss without val)."""
        if "val_bleu4" in logs:
            return (round(logs["val_bleu4"], 6), -logs["val_loss"])
        return (-logs["loss"],)


def generate(decoder: nn.Module, features: torch.Tensor, vocab: Vocabulary, beam: int,
             chunk: int = 256) -> list[tuple[list[int], float]]:
    out: list[tuple[list[int], float]] = []
    for start in range(0, len(features), chunk):
        out += beam_search(decoder, features[start:start + chunk], vocab.bos, vocab.eos, beam=beam)
    return out


# --------------------------------------------------------------------------- data -> tensors
def _images_key(images: list[str]) -> str:
    return hashlib.sha256("\n".join(images).encode()).hexdigest()


def _features(ds: CaptionSet, run_dir: Path, cfg: CaptionTrainConfig, progress: bool, log: Log):
    """(path -> row, (N, D) table, unreadable [(path, reason)], encoder weights digest): the frozen
    encoder's vector of every image, kept in RUN/features so a resumed run (or a new run into the same
    folder, on the same images) reuses them."""
    from ...store import load_features, read_manifest, write_features
    from ...zoo import load_model
    from ..embed import embed_images, weights_digest

    out = run_dir / FEATURES_DIR
    key = {"model": cfg.backbone, "layer": LAYER, "images": _images_key(ds.images)}
    if out.exists():
        manifest = read_manifest(out)
        if all(manifest.get(k) == v for k, v in key.items()):
            paths, matrix = load_features(out)
            return ({p: i for i, p in enumerate(paths)}, torch.from_numpy(matrix),
                    [(f["path"], f["reason"]) for f in manifest["failures"]], manifest["weights_sha256"])
        log(f"{out} holds features of other images or settings; computing them again")
        shutil.rmtree(out)
    encoder = load_model(cfg.backbone)
    emb = embed_images(ds.images, encoder, layer=LAYER, batch_size=32, workers=cfg.workers, device=cfg.device,
                       backend=cfg.backend, progress=progress)
    digest = weights_digest(encoder)
    write_features(out, emb.paths, emb.matrix, {**key, "weights_sha256": digest, "spec": encoder.zoo_spec.to_dict()},
                   emb.failures)
    order = np.argsort(emb.paths, kind="stable") if emb.paths else np.zeros(0, int)
    paths = [emb.paths[i] for i in order]
    return {p: i for i, p in enumerate(paths)}, torch.from_numpy(emb.matrix[order]), emb.failures, digest


def _pairs(captions: dict[str, list[str]], images: list[str], row: dict[str, int], vocab: Vocabulary,
           max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(image rows, padded [BOS] w.. [EOS]) for every caption; captions longer than `max_length`
    tokens (with [EOS]) are cut there."""
    rows, seqs = [], []
    for p in images:
        for c in captions[p]:
            ids = vocab.encode(c)
            if len(ids) - 1 > max_length:
                ids = ids[:max_length] + [vocab.eos]
            rows.append(row[p])
            seqs.append(ids)
    return torch.tensor(rows, dtype=torch.long), _pad(seqs, vocab.pad)


# --------------------------------------------------------------------------- train
class CaptionRecipe(Recipe):
    task = "caption"
    config: CaptionTrainConfig

    def setup(self, run_dir: Path, log: Log, progress: bool) -> None:
        cfg = self.config
        self.ds = read_captions(self.inputs["data"], self.inputs.get("annotations"),
                                self.inputs.get("encoding") or "utf-8")
        splits = split_images(self.ds, cfg.val_split, cfg.test_split, cfg.seed)
        log(f"{len(self.ds.images)} images, {self.ds.n_captions()} captions ({self.ds.layout}); "
            + ", ".join(f"{k} {len(v)}" for k, v in splits.items()) + f"; {len(self.ds.problems)} bad row(s) left out")
        run_dir.mkdir(parents=True, exist_ok=True)
        with distributed.main_first():  # rank 0 computes the features, the other ranks read them
            row, table, self.unreadable, self.digest = _features(self.ds, run_dir, cfg, progress, log)
        self.splits = {k: [p for p in v if p in row] for k, v in splits.items()}
        if not self.splits["train"]:
            raise UsageError("none of the training images could be read")
        vocab = Vocabulary.build((c for p in self.splits["train"] for c in self.ds.captions[p]), cfg.min_count)
        if distributed.is_main():
            vocab.save(run_dir / TOKENIZER_FILE)
        x, y = _pairs(self.ds.captions, self.splits["train"], row, vocab, cfg.max_length)
        self.dcfg = DecoderConfig(kind=cfg.decoder, feature_dim=table.shape[1], vocab_size=len(vocab),
                                  embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim,
                                  layers=cfg.layers or (1 if cfg.decoder == "lstm" else 2), heads=cfg.heads,
                                  dropout=cfg.dropout, max_length=min(y.shape[1] - 1 + 5, cfg.max_length),
                                  pad_id=vocab.pad)
        seed_everything(cfg.seed)
        self.module = build_decoder(self.dcfg)
        log(f"vocabulary {len(vocab)} words; {cfg.decoder} decoder, "
            f"{sum(p.numel() for p in self.module.parameters()) / 1e6:.1f}M parameters, on {table.shape[1]}-d "
            f"{cfg.backbone} vectors")
        val, val_rows, val_refs = None, [], []
        if self.splits["val"]:
            val = _pairs(self.ds.captions, self.splits["val"], row, vocab, cfg.max_length)
            val_rows = [row[p] for p in self.splits["val"]]
            val_refs = [[words(c) for c in self.ds.captions[p]] for p in self.splits["val"]]
        self.hooks = CaptionHooks(table, vocab, (x, y), val, val_rows, val_refs, cfg)
        self.phases = [Phase("decoder", range(1, cfg.epochs + 1),
                             lambda: torch.optim.AdamW(self.module.parameters(), lr=cfg.lr,
                                                       weight_decay=cfg.weight_decay),
                             warmup=cfg.warmup, max_warmup_epochs=cfg.epochs)]

    def finish(self, run_dir: Path, fit: Fit, log: Log) -> dict[str, Any]:
        return _finish_run(self.module.eval(), self.dcfg, self.config, self.ds, self.splits, self.unreadable,
                           self.digest, fit, run_dir, log, self.inputs["data"], self.inputs.get("annotations"))


def train(data: str | os.PathLike, out: str | os.PathLike, *, annotations: str | os.PathLike | None = None,
          encoding: str = "utf-8", resume: bool = False, progress: bool = False, log: Log | None = print,
          **options: Any) -> dict[str, Any]:
    """Train a captioner on DATA (see data.py for layouts) into the run folder OUT.

    Returns {"run_dir", "report" (held-out metrics), "config", "problems": [(where, reason)]}:
    problems are dataset rows and images that were left out (missing, empty, unreadable)."""
    recipe = CaptionRecipe(CaptionTrainConfig(**options), {"data": os.fspath(data), "encoding": encoding,
                                                           "annotations": annotations and os.fspath(annotations)})
    return train_run(train, recipe, out, resume=resume, progress=progress, log=log,
                     call={"data": data, "out": out, "annotations": annotations, "encoding": encoding, **options})


def _finish_run(decoder: nn.Module, dcfg: DecoderConfig, cfg: CaptionTrainConfig, ds: CaptionSet,
                splits: dict[str, list[str]], unreadable: list[tuple[str, str]], digest: str, fit: Fit,
                run_dir: Path, log: Log, data: str, annotations: str | None) -> dict[str, Any]:
    """Save the run, then caption the held-out images with the run reloaded from disk (the same
    path `predict` takes) and record the metrics in config.json."""
    from ...atomic import write_json
    from ...zoo import load_model
    from .evaluation import SPLITS_FILE, write_evaluation
    from .model import Captioner
    from .predictor import caption_files, load_predictor

    problems = list(ds.problems) + list(unreadable)
    write_json(run_dir / SPLITS_FILE, splits)

    def evaluate(saved: Path):
        name = "test" if splits["test"] else "val" if splits["val"] else "train"
        predictor = load_predictor(saved, device=cfg.device, backend=cfg.backend)
        results = caption_files(predictor, splits[name], workers=cfg.workers)
        report = write_evaluation(results, ds.captions, saved, {"run": str(saved), "data": data, "split": name,
                                                                "beam": cfg.beam, "problems": []})
        log(f"{name}: " + "  ".join(f"{k} {report[k]:.3f}" for k in ("bleu1", "bleu2", "bleu3", "bleu4", "cider"))
            + f"  ({report['n_images']} images)")
        return name, report, {k: report[k] for k in ("bleu1", "bleu2", "bleu3", "bleu4", "cider", "n_images")}

    encoder = load_model(cfg.backbone)
    dataset = {"source": ds.source, "annotations": annotations, "layout": ds.layout,
               **{f"{k}_images": len(v) for k, v in splits.items()},
               "train_captions": sum(len(ds.captions[p]) for p in splits["train"]),
               "failures": [{"path": w, "error": e} for w, e in problems]}
    result = finish_run(
        run_dir, Captioner(encoder, decoder), task="caption", classes=[], image_size=encoder.zoo_spec.preprocessing.image_size,
        preprocessing=encoder.zoo_spec.to_dict()["preprocessing"], config=cfg, dataset=dataset, fit=fit,
        evaluate=evaluate, curve_keys=CaptionHooks.curve_keys, log=log,
        extra={"encoder": {"name": cfg.backbone, "layer": LAYER, "dim": dcfg.feature_dim, "weights_sha256": digest,
                           "frozen": True},
               "decoder": dcfg.to_dict(), "tokenizer": TOKENIZER_FILE, "vocab_size": dcfg.vocab_size, "beam": cfg.beam})
    result["problems"] = result["skipped"] = problems
    return result
