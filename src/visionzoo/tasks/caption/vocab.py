"""The caption vocabulary: a Hugging Face `tokenizers` WordLevel model saved as RUN/tokenizer.json.

Normalisation (NFKC, lower case) and pre-tokenisation (whitespace, then punctuation split off,
apostrophes kept inside words such as "isn't") live in the tokenizer file itself, so training,
prediction and evaluation cut sentences identically. Decoding re-attaches punctuation
(WordPiece's cleanup), so "a dog , running ." reads "a dog, running.".
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Iterable, Sequence

from ...errors import UsageError

TOKENIZER_FILE = "tokenizer.json"
PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)   # ids 0..3, in this order


def _normalizer():
    from tokenizers import normalizers

    return normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])


def _pre_tokenizer():
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                    pre_tokenizers.Split(Regex(r"[^\w\s']"), "isolated")])


@lru_cache(maxsize=1)
def _splitter():
    return _normalizer(), _pre_tokenizer()


def words(caption: str) -> list[str]:
    """The caption's normalised words without punctuation: what BLEU and CIDEr compare for
    every captioner, ours or Hugging Face's (the COCO caption evaluation also drops punctuation)."""
    norm, pre = _splitter()
    return [w for w, _ in pre.pre_tokenize_str(norm.normalize_str(caption)) if any(c.isalnum() for c in w)]


class Vocabulary:
    """Wraps a `tokenizers.Tokenizer`: sentences <-> id lists with BOS/EOS, and metric words."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        if ids != list(range(len(SPECIAL_TOKENS))):
            raise UsageError(f"tokenizer lacks the special tokens {', '.join(SPECIAL_TOKENS)} as ids 0-3")
        self.pad, self.unk, self.bos, self.eos = ids

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> "Vocabulary":
        """Learn the word list from training captions: words seen fewer than `min_count` times map to [UNK]."""
        from tokenizers import Tokenizer, decoders, models, trainers

        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.normalizer = _normalizer()
        tok.pre_tokenizer = _pre_tokenizer()
        tok.decoder = decoders.WordPiece(cleanup=True)
        trainer = trainers.WordLevelTrainer(min_frequency=max(1, min_count), special_tokens=list(SPECIAL_TOKENS),
                                            show_progress=False)
        tok.train_from_iterator(captions, trainer)
        return cls(tok)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(os.fspath(path)))

    def save(self, path: str | os.PathLike) -> None:
        from ...atomic import atomic_path

        with atomic_path(path) as tmp:
            self.tokenizer.save(os.fspath(tmp))

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, caption: str) -> list[int]:
        """[BOS] w1 .. wn [EOS]."""
        return [self.bos, *self.tokenizer.encode(caption, add_special_tokens=False).ids, self.eos]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)
