"""Source/target text pairs as token ids for an encoder–decoder: one vocabulary for both sides.

    vocab = PairVocab.build(pairs, source="words", target="chars")
    source, source_is_token = vocab.source_batch([s for s, _ in pairs])   # (B, S) ids, (B, S) bool
    target_in, target_out = vocab.target_batch([t for _, t in pairs])     # (B, T + 1) each
    logits = model(source, target_in, source_is_token)                    # loss: cross_entropy vs target_out
    vocab.decode_target(ids)                                              # ids -> text, stops at <eos>

``target_in`` is ``<bos> t_1 .. t_T`` and ``target_out`` is ``t_1 .. t_T <eos>`` (teacher forcing: the
decoder reads the right answer so far and predicts the next token), padded with ``<pad>`` and
``IGNORE_INDEX`` respectively. A source or target with a token outside the vocabulary raises a
``ValueError`` that names it.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

from fmcourse.data.batches import IGNORE_INDEX

SPECIALS = ("<pad>", "<bos>", "<eos>")
SPLITS = ("words", "chars")


def split_text(text: str, how: str) -> list[str]:
    """``how="words"``: split on whitespace; ``"chars"``: every character (spaces included)."""
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    if how not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {how!r}")
    return text.split() if how == "words" else list(text)


class PairVocab:
    """Tokens ``<pad>`` (id 0), ``<bos>`` (1), ``<eos>`` (2), then ``tokens``; sources split by
    ``source`` and targets by ``target`` (``"words"`` or ``"chars"``)."""

    def __init__(self, tokens: Sequence[str], source: str = "words", target: str = "chars"):
        for name, how in (("source", source), ("target", target)):
            if how not in SPLITS:
                raise ValueError(f"{name} split must be one of {SPLITS}, got {how!r}")
        tokens = list(dict.fromkeys(t for t in tokens if t not in SPECIALS))
        self.itos = list(SPECIALS) + tokens
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.source, self.target = source, target
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2

    @classmethod
    def build(cls, pairs: Iterable[tuple[str, str]], source: str = "words", target: str = "chars") -> PairVocab:
        """The vocabulary of every token in ``pairs`` (sorted, so it does not depend on their order)."""
        tokens = set()
        for s, t in pairs:
            tokens.update(split_text(s, source))
            tokens.update(split_text(t, target))
        return cls(sorted(tokens), source, target)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def _encode(self, text: str, how: str, side: str) -> list[int]:
        pieces = split_text(text, how)
        unknown = [p for p in pieces if p not in self.stoi]
        if unknown:
            raise ValueError(f"{side} {text!r} has tokens outside the vocabulary: {sorted(set(unknown))}")
        return [self.stoi[p] for p in pieces]

    def encode_source(self, text: str) -> list[int]:
        """Source text -> ids (no special tokens)."""
        return self._encode(text, self.source, "source")

    def encode_target(self, text: str) -> list[int]:
        """Target text -> ids (no special tokens)."""
        return self._encode(text, self.target, "target")

    def decode_target(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Target ids -> text: stops at ``<eos>``, skips ``<pad>`` and ``<bos>``."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i])
        return ("" if self.target == "chars" else " ").join(out)

    def source_batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sources -> ids ``(B, S)`` padded with ``<pad>`` and ``is_token`` ``(B, S)`` (False at padding)."""
        rows = [self.encode_source(t) for t in texts]
        if not rows or min(map(len, rows)) == 0:
            raise ValueError("every source needs at least one token")
        S = max(map(len, rows))
        ids = torch.full((len(rows), S), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row)
        return ids, ids != self.pad_id

    def target_batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Targets -> ``target_in`` ``(B, T + 1)`` = ``<bos> t`` padded with ``<pad>``, and ``target_out``
        ``(B, T + 1)`` = ``t <eos>`` padded with ``IGNORE_INDEX`` (T: the longest target)."""
        rows = [self.encode_target(t) for t in texts]
        if not rows:
            raise ValueError("no targets")
        T = max(map(len, rows)) + 1
        target_in = torch.full((len(rows), T), self.pad_id, dtype=torch.long)
        target_out = torch.full((len(rows), T), IGNORE_INDEX, dtype=torch.long)
        for i, row in enumerate(rows):
            target_in[i, :len(row) + 1] = torch.tensor([self.bos_id] + row)
            target_out[i, :len(row) + 1] = torch.tensor(row + [self.eos_id])
        return target_in, target_out

    def __repr__(self) -> str:
        return f"PairVocab({self.vocab_size} tokens, source={self.source!r}, target={self.target!r})"
