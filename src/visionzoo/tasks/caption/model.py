"""Caption decoders over a frozen image vector, and the full captioner (zoo encoder + decoder).

- `lstm` (Show and Tell, Vinyals et al. 2015): the projected image vector is the LSTM's first
  input, then [BOS] and the words; each output predicts the next word.
- `transformer`: a small nn.TransformerDecoder (pre-norm, causal) attending to the projected
  image vector as its one memory token.

Both answer the same small protocol the trainer and beam search use:
`forward(features, tokens) -> logits` (teacher forcing), `start(features) -> state`,
`step(last_tokens, state) -> (log_probs, state)`; every state tensor has the batch first, so
beam search reorders any state with `index_select(0, ...)`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

DECODERS = ("lstm", "transformer")
State = tuple[torch.Tensor, ...]


@dataclass
class DecoderConfig:
    """Hyper-parameters saved in the run's config.json, enough to rebuild the decoder."""

    kind: str = "lstm"
    feature_dim: int = 1280
    vocab_size: int = 0
    embed_dim: int = 256
    hidden_dim: int = 512
    layers: int = 1
    heads: int = 4
    dropout: float = 0.3
    max_length: int = 40          # the longest token sequence the decoder will produce ([EOS] included)
    pad_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _ImageProjection(nn.Sequential):
    def __init__(self, cfg: DecoderConfig):
        super().__init__(nn.Dropout(cfg.dropout), nn.Linear(cfg.feature_dim, cfg.embed_dim), nn.LayerNorm(cfg.embed_dim))


class LSTMDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.image = _ImageProjection(cfg)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_dim, cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden_dim, cfg.vocab_size)

    def forward(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(N, D) features, (N, T) tokens [BOS] w1.. -> (N, T, V) logits for w1 .. [EOS]."""
        x = torch.cat([self.image(features)[:, None], self.embed(tokens)], dim=1)
        h, _ = self.lstm(self.drop(x))
        return self.out(self.drop(h[:, 1:]))

    def start(self, features: torch.Tensor) -> State:
        _, (h, c) = self.lstm(self.image(features)[:, None])
        return h.transpose(0, 1), c.transpose(0, 1)

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h, c = (s.transpose(0, 1).contiguous() for s in state)
        y, (h, c) = self.lstm(self.embed(tokens)[:, None], (h, c))
        return self.out(y[:, 0]).log_softmax(-1), (h.transpose(0, 1), c.transpose(0, 1))


class TransformerDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.image = _ImageProjection(cfg)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id)
        self.position = nn.Embedding(cfg.max_length + 1, cfg.embed_dim)
        layer = nn.TransformerDecoderLayer(cfg.embed_dim, cfg.heads, cfg.hidden_dim, cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.layers, norm=nn.LayerNorm(cfg.embed_dim))
        self.out = nn.Linear(cfg.embed_dim, cfg.vocab_size)

    def _decode(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        x = self.embed(tokens) + self.position(torch.arange(t, device=tokens.device))
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=tokens.device)
        return self.out(self.decoder(x, memory, tgt_mask=mask, tgt_is_causal=True))

    def forward(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self._decode(self.image(features)[:, None], tokens)

    def start(self, features: torch.Tensor) -> State:
        memory = self.image(features)[:, None]
        return memory, torch.zeros(len(features), 0, dtype=torch.long, device=features.device)

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        memory, prefix = state
        prefix = torch.cat([prefix, tokens[:, None]], dim=1)
        return self._decode(memory, prefix)[:, -1].log_softmax(-1), (memory, prefix)


def build_decoder(cfg: DecoderConfig) -> nn.Module:
    return {"lstm": LSTMDecoder, "transformer": TransformerDecoder}[cfg.kind](cfg)


class Captioner(nn.Module):
    """What model.safetensors holds: the zoo encoder (frozen, as trained) and the decoder.

    `zoo_spec` is the encoder's, so the run folder records the encoder's architecture and
    preprocessing like any other run."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.zoo_spec = encoder.zoo_spec
