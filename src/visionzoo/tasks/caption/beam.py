"""Batched beam search over any decoder with the start/step protocol (see model.py).

Hypotheses are ranked by the sum of their words' log-probabilities (as in Show and Tell's
im2txt). A hypothesis that emits [EOS] within the top `beam` candidates is finished; the search
for an image ends when its best finished hypothesis beats every live one (scores only fall
as words are added) or at the decoder's maximum length. beam=1 is greedy decoding.
"""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def beam_search(decoder: nn.Module, features: torch.Tensor, bos: int, eos: int, beam: int = 3,
                max_length: int | None = None) -> list[tuple[list[int], float]]:
    """(word ids without [BOS]/[EOS], summed log-probability) for each row of `features`."""
    n, device = len(features), features.device
    max_length = max_length or decoder.cfg.max_length
    state = tuple(s.repeat_interleave(beam, 0) for s in decoder.start(features))
    scores = torch.full((n, beam), float("-inf"), device=device)
    scores[:, 0] = 0.0                                         # all beams start as the one empty hypothesis
    seqs = torch.full((n * beam, 1), bos, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for _ in range(max_length):
        log_probs, state = decoder.step(seqs[:, -1], state)
        vocab = log_probs.shape[1]
        cand = (scores.reshape(-1, 1) + log_probs.float()).reshape(n, beam * vocab)
        top_scores, top_idx = cand.topk(min(2 * beam, beam * vocab), dim=1)
        parent, token = top_idx // vocab, top_idx % vocab
        is_eos = token == eos
        # finished: [EOS] among the top `beam` candidates of an image still searching
        ranks = torch.arange(top_idx.shape[1], device=device)
        for i, r in (is_eos & (ranks < beam) & ~done[:, None] & top_scores.isfinite()).nonzero().tolist():
            finished[i].append((float(top_scores[i, r]), seqs[i * beam + parent[i, r], 1:].tolist()))
        # live: the best `beam` candidates that do not end the sentence (stable: keeps score order)
        order = is_eos.to(torch.int8).sort(dim=1, stable=True).indices[:, :beam]
        scores = top_scores.gather(1, order).masked_fill(is_eos.gather(1, order), float("-inf"))
        rows = (torch.arange(n, device=device)[:, None] * beam + parent.gather(1, order)).reshape(-1)
        seqs = torch.cat([seqs.index_select(0, rows), token.gather(1, order).reshape(-1, 1)], dim=1)
        state = tuple(s.index_select(0, rows) for s in state)
        best_done = torch.tensor([max((s for s, _ in f), default=float("-inf")) for f in finished], device=device)
        done |= best_done >= scores.max(dim=1).values
        if bool(done.all()):
            break
    results = []
    for i in range(n):
        if finished[i]:
            score, words = max(finished[i], key=lambda f: f[0])
        else:  # nothing ended within max_length: the best live hypothesis, cut there
            score, words = float(scores[i, 0]), seqs[i * beam, 1:].tolist()
        results.append((words, score))
    return results
