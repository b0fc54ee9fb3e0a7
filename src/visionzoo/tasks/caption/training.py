"""`caption train`: dataset -> frozen zoo encoder's vectors (computed once by `extract`, cached in
RUN/features) -> decoder trained with teacher forcing -> best epoch by validation BLEU-4 ->
saved run folder, evaluated as reloaded from disk on the held-out images.

The fit loop is visionzoo.training's Trainer (epochs, seeding, callbacks: early stopping, best
checkpoint, CSV history, log line); only the per-batch step differs from classification, so
CaptionTrainer overrides `train_epoch` and `evaluate`.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ...atomic import write_json
from ...errors import UsageError
from ...training import callbacks as cb
from ...training.batches import steps_per_epoch, tensor_batches
from ...training.trainer import Trainer, seed_everything, warmup_cosine
from .beam import beam_search
from .data import CaptionSet, read_captions, split_images
from .metrics import bleu
from .model import DECODERS, DecoderConfig, build_decoder
from .vocab import TOKENIZER_FILE, Vocabulary, words

FEATURES_DIR = "features"
LAYER = "pre_logits"
HISTORY_COLUMNS = ("epoch", "phase", "loss", "acc", "val_loss", "val_acc", "val_bleu4", "lr", "seconds")
Log = Callable[[str], None]


@dataclass
class CaptionTrainConfig:
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


class CaptionTrainer(Trainer):
    """Batches are (image row, token ids [BOS] w.. [EOS] padded); the image vectors live in `table`.

    Logs: loss (cross-entropy per word, padding ignored), acc (next-word accuracy with teacher
    forcing), and on validation also bleu4 of beam-searched captions against all references."""

    def __init__(self, *args, table: torch.Tensor, vocab: Vocabulary, val_rows: list[int],
                 val_refs: list[list[list[str]]], beam: int, clip_norm: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = table.to(self.device)
        self.vocab, self.val_rows, self.val_refs, self.beam, self.clip_norm = vocab, val_rows, val_refs, beam, clip_norm
        self.loss_fn = nn.CrossEntropyLoss(ignore_index=vocab.pad)

    def _forward(self, rows: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        rows, tokens = rows.to(self.device), tokens.to(self.device)
        with self._autocast():
            logits = self.module(self.table[rows], tokens[:, :-1]).float()
        target = tokens[:, 1:]
        loss = self.loss_fn(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        real = target != self.vocab.pad
        return loss, logits, int(((logits.argmax(-1) == target) & real).sum()), int(real.sum())

    def train_epoch(self, batches, steps: int, desc: str) -> dict[str, float]:
        from tqdm.auto import tqdm

        self.module.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for rows, tokens in tqdm(batches, total=steps, desc=desc, unit="batch", leave=False, disable=not self.progress):
            loss, _, right, n = self._forward(rows, tokens)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.module.parameters(), self.clip_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            loss_sum += loss.item() * n
            correct += right
            seen += n
        return {"loss": loss_sum / max(seen, 1), "acc": correct / max(seen, 1)}

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        self.module.eval()
        loss_sum, correct, seen = 0.0, 0, 0
        for rows, tokens in batches:
            loss, _, right, n = self._forward(rows, tokens)
            loss_sum += loss.item() * n
            correct += right
            seen += n
        hyps = [words(self.vocab.decode(w)) for w, _ in generate(self.module, self.table[self.val_rows], self.vocab, self.beam)]
        return {"loss": loss_sum / max(seen, 1), "acc": correct / max(seen, 1),
                "bleu4": bleu(self.val_refs, hyps)["bleu4"]}


def generate(decoder: nn.Module, features: torch.Tensor, vocab: Vocabulary, beam: int,
             chunk: int = 256) -> list[tuple[list[int], float]]:
    out: list[tuple[list[int], float]] = []
    for start in range(0, len(features), chunk):
        out += beam_search(decoder, features[start:start + chunk], vocab.bos, vocab.eos, beam=beam)
    return out


def _score(logs: dict[str, float]) -> tuple[float, ...]:
    """Best epoch: highest validation BLEU-4, then lowest validation loss (training loss without val)."""
    if "val_bleu4" in logs:
        return (round(logs["val_bleu4"], 6), -logs["val_loss"])
    return (-logs["loss"],)


# --------------------------------------------------------------------------- data -> tensors
def _features(ds: CaptionSet, run_dir: Path, cfg: CaptionTrainConfig, progress: bool, log: Log):
    """(path -> row, (N, D) table, unreadable [(path, reason)]): the encoder's vectors of every
    image, by `extract` into RUN/features; a later run into the same folder reuses them."""
    from ...batch import extract
    from ...store import load_features

    out = run_dir / FEATURES_DIR
    kwargs = dict(model=cfg.backbone, layer=LAYER, batch_size=32, workers=cfg.workers, backend=cfg.backend,
                  device=cfg.device, progress=progress)
    try:
        result = extract(ds.images, out, resume=True, **kwargs)
    except UsageError as exc:
        if "cannot resume" not in str(exc):
            raise
        log(f"{out} holds features of other images or settings; computing them again")
        shutil.rmtree(out)
        result = extract(ds.images, out, **kwargs)
    paths, matrix = load_features(out)
    return {p: i for i, p in enumerate(paths)}, torch.from_numpy(matrix), result.failures


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
def train(data: str | os.PathLike, out: str | os.PathLike, *, annotations: str | os.PathLike | None = None,
          progress: bool = False, log: Log = print, **options: Any) -> dict[str, Any]:
    """Train a captioner on DATA (see data.py for layouts) into the run folder OUT.

    Returns {"run_dir", "report" (held-out metrics), "config", "problems": [(where, reason)]}:
    problems are dataset rows and images that were left out (missing, empty, unreadable)."""
    cfg = CaptionTrainConfig(**options)
    cfg.check()
    run_dir = Path(out)
    ds = read_captions(data, annotations)
    splits = split_images(ds, cfg.val_split, cfg.test_split, cfg.seed)
    log(f"{len(ds.images)} images, {ds.n_captions()} captions ({ds.layout}); "
        + ", ".join(f"{k} {len(v)}" for k, v in splits.items()) + f"; {len(ds.problems)} bad row(s) left out")
    run_dir.mkdir(parents=True, exist_ok=True)
    row, table, unreadable = _features(ds, run_dir, cfg, progress, log)
    splits = {k: [p for p in v if p in row] for k, v in splits.items()}
    if not splits["train"]:
        raise UsageError("none of the training images could be read")

    vocab = Vocabulary.build((c for p in splits["train"] for c in ds.captions[p]), cfg.min_count)
    vocab.save(run_dir / TOKENIZER_FILE)
    x, y = _pairs(ds.captions, splits["train"], row, vocab, cfg.max_length)
    dcfg = DecoderConfig(kind=cfg.decoder, feature_dim=table.shape[1], vocab_size=len(vocab), embed_dim=cfg.embed_dim,
                         hidden_dim=cfg.hidden_dim, layers=cfg.layers or (1 if cfg.decoder == "lstm" else 2),
                         heads=cfg.heads, dropout=cfg.dropout, max_length=y.shape[1] - 1 + 5, pad_id=vocab.pad)
    dcfg.max_length = min(dcfg.max_length, cfg.max_length)
    seed_everything(cfg.seed)
    decoder = build_decoder(dcfg)
    log(f"vocabulary {len(vocab)} words; {cfg.decoder} decoder, {sum(p.numel() for p in decoder.parameters()) / 1e6:.1f}M "
        f"parameters, on {table.shape[1]}-d {cfg.backbone} vectors")

    train_batches = tensor_batches(x, y, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_batches, val_rows, val_refs = None, [], []
    if splits["val"]:
        vx, vy = _pairs(ds.captions, splits["val"], row, vocab, cfg.max_length)
        val_batches = tensor_batches(vx, vy, batch_size=256, shuffle=False, seed=cfg.seed)
        val_rows = [row[p] for p in splits["val"]]
        val_refs = [[words(c) for c in ds.captions[p]] for p in splits["val"]]
    steps = steps_per_epoch(len(x), cfg.batch_size, drop_last=False)
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * steps
    scheduler = warmup_cosine(optimizer, total, warmup_steps=int(cfg.warmup * total))
    best = cb.BestCheckpoint(run_dir, score_fn=_score)
    history = cb.CSVLogger(run_dir, columns=HISTORY_COLUMNS)
    callbacks = [cb.LogLine(cfg.epochs, log, keys=("loss", "acc", "bleu4")), best,
                 cb.EarlyStopping(cfg.patience, score_fn=_score), history]
    trainer = CaptionTrainer(decoder, optimizer, scheduler, callbacks=callbacks, phase="decoder", device=cfg.device,
                             seed=cfg.seed, log=log, progress=progress, table=table, vocab=vocab, val_rows=val_rows,
                             val_refs=val_refs, beam=cfg.beam, clip_norm=cfg.clip_norm)
    trainer.fit(train_batches, val_batches, range(1, cfg.epochs + 1), steps, cfg.epochs)
    decoder.cpu()
    best.load_best(decoder)
    return _finish_run(decoder.eval(), dcfg, cfg, ds, splits, unreadable, history.rows, best.best_epoch, run_dir, log,
                       str(data), annotations)


def _finish_run(decoder: nn.Module, dcfg: DecoderConfig, cfg: CaptionTrainConfig, ds: CaptionSet,
                splits: dict[str, list[str]], unreadable: list[tuple[str, str]], history: list[dict], best_epoch: int | None,
                run_dir: Path, log: Log, data: str, annotations) -> dict[str, Any]:
    """Save the run, then caption the held-out images with the run reloaded from disk (the same
    path `predict` takes) and record the metrics in config.json."""
    from ...store import read_manifest
    from ...versions import package_versions
    from ...viz.train_plots import learning_curves
    from ...zoo import load_model
    from ...zoo.rundir import CONFIG_FILE, read_config, save_run_model
    from .evaluation import SPLITS_FILE, write_evaluation
    from .model import Captioner
    from .predictor import caption_files, load_predictor

    manifest = read_manifest(run_dir / FEATURES_DIR)
    problems = list(ds.problems) + list(unreadable)
    best_logs = next((r for r in history if r["epoch"] == best_epoch), history[-1] if history else {})
    extra = {
        "status": "complete",
        "task": "caption",
        "encoder": {"name": cfg.backbone, "layer": LAYER, "dim": dcfg.feature_dim,
                    "weights_sha256": manifest["weights_sha256"], "frozen": True},
        "decoder": dcfg.to_dict(),
        "tokenizer": TOKENIZER_FILE,
        "vocab_size": dcfg.vocab_size,
        "beam": cfg.beam,
        "training": asdict(cfg),
        "dataset": {"source": ds.source, "annotations": str(annotations) if annotations else None, "layout": ds.layout,
                    **{f"{k}_images": len(v) for k, v in splits.items()},
                    "train_captions": sum(len(ds.captions[p]) for p in splits["train"]),
                    "failures": [{"path": w, "error": e} for w, e in problems]},
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "metrics": {"best_epoch": {k: v for k, v in best_logs.items() if isinstance(v, float)}},
        "versions": package_versions(),
    }
    encoder = load_model(cfg.backbone)
    save_run_model(Captioner(encoder, decoder), run_dir, extra)
    write_json(run_dir / SPLITS_FILE, splits)
    if history:
        learning_curves(history, run_dir / "curves.png", keys=("loss", "acc", "bleu4"))
    name = "test" if splits["test"] else "val" if splits["val"] else "train"
    predictor = load_predictor(run_dir, device=cfg.device, backend=cfg.backend)
    results = caption_files(predictor, splits[name], workers=cfg.workers)
    report = write_evaluation(results, ds.captions, run_dir, {"run": str(run_dir), "data": data, "split": name,
                                                              "beam": cfg.beam, "problems": []})
    config = read_config(run_dir)
    config["metrics"][name] = {k: report[k] for k in ("bleu1", "bleu2", "bleu3", "bleu4", "cider", "n_images")}
    write_json(run_dir / CONFIG_FILE, config)
    (run_dir / cb.BEST_FILE).unlink(missing_ok=True)
    log(f"{name}: " + "  ".join(f"{k} {report[k]:.3f}" for k in ("bleu1", "bleu2", "bleu3", "bleu4", "cider"))
        + f"  ({report['n_images']} images)")
    log(f"saved run: {run_dir}")
    return {"run_dir": str(run_dir), "report": report, "config": config, "problems": problems}
