"""Tokenizers: text to integer ids and back.

- ``CharTokenizer``: one id per character seen in training. A character it never saw is an error,
  or becomes ``<unk>`` when built with ``unknown="replace"``: the policy is explicit.
- ``BPETokenizer``: byte-level byte-pair encoding, trained from scratch. It starts from the 256
  byte values, so every string has an encoding (nothing is unknown), and learns merges: at each
  step the most frequent adjacent pair of tokens becomes one new token.

Both give ``encode(text) -> list[int]``, ``decode(ids) -> str``, ``vocab_size``, ``specials`` (the
ids of special tokens such as ``<mask>``), ``to_dict``/``save`` and, for any of them,
``tokenizer_from_dict``/``load_tokenizer``. ``decode(encode(text)) == text`` for every text a
tokenizer can encode, the empty string included.
"""

from __future__ import annotations

import heapq
import json
import operator
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

from fmcourse.data.files import atomic_path

UNK = "<unk>"
UNKNOWN_POLICIES = ("error", "replace")

# Pre-tokenization (as in GPT-2): BPE merges happen inside these pieces, never across them, so a
# token never spans a word and the space after it. Pieces: contractions, letters, digits, other
# symbols (with "_"), each with one optional leading space; runs of whitespace. Every character
# falls in one of these classes, so the pieces always cover the whole text.
PIECES = re.compile(r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\w\s]|_)+|\s+(?!\S)|\s+""")


def _check_specials(specials: Sequence[str]) -> list[str]:
    specials = list(specials)
    if not all(isinstance(s, str) and s for s in specials) or len(set(specials)) != len(specials):
        raise ValueError(f"special tokens must be distinct non-empty strings, got {specials!r}")
    return specials


def _id_list(ids: Sequence[int] | torch.Tensor, vocab_size: int) -> list[int]:
    """``ids`` as a list of ints in ``0..vocab_size-1``, or a clear error."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1 or ids.is_floating_point():
            raise ValueError(f"decode takes one sequence of integer ids (a 1-D tensor), got a {ids.dtype} "
                             f"tensor of shape {tuple(ids.shape)}; for a batch: [decode(row) for row in ids]")
        ids = ids.tolist()
    try:
        ids = [operator.index(i) for i in ids]  # ints, NumPy integers; not floats
    except TypeError:
        raise TypeError(f"decode takes integer ids, got {sorted({type(i).__name__ for i in ids})}") from None
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"ids must lie in 0..{vocab_size - 1} (the vocabulary), got {bad[:5]}")
    return ids


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"encode takes a str, got {type(text).__name__}")


class CharTokenizer:
    """One id per character. ``chars``: the alphabet, in id order after the special tokens.

    Ids: first the ``specials`` (with ``<unk>`` in front when ``unknown="replace"``), then one per
    character. ``unknown`` says what ``encode`` does with a character outside the alphabet:
    ``"error"`` raises a ``ValueError`` naming it, ``"replace"`` maps it to ``<unk>``.
    """

    def __init__(self, chars: str | Sequence[str], *, specials: Sequence[str] = (), unknown: str = "error"):
        if unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"unknown must be one of {UNKNOWN_POLICIES}, got {unknown!r}")
        chars = list(chars)
        if not all(isinstance(c, str) and len(c) == 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct single characters")
        specials = _check_specials(specials)
        if unknown == "replace" and UNK not in specials:
            specials.insert(0, UNK)
        if clash := set(specials) & set(chars):
            raise ValueError(f"special tokens {sorted(clash)} are also characters of the alphabet")
        self.unknown = unknown
        self.chars = chars
        self.specials = {name: i for i, name in enumerate(specials)}
        self._ids = {c: len(specials) + i for i, c in enumerate(chars)}
        self._strings = specials + chars

    @classmethod
    def train(cls, text: str, *, specials: Sequence[str] = (), unknown: str = "error") -> CharTokenizer:
        """The tokenizer whose alphabet is the set of characters of ``text``, in code-point order."""
        _check_text(text)
        if not text:
            raise ValueError("cannot train a tokenizer on empty text")
        return cls(sorted(set(text)), specials=specials, unknown=unknown)

    @property
    def vocab_size(self) -> int:
        return len(self._strings)

    def encode(self, text: str) -> list[int]:
        """``len(text)`` ids, one per character."""
        _check_text(text)
        ids = self._ids
        if self.unknown == "replace":
            unk = self.specials[UNK]
            return [ids.get(c, unk) for c in text]
        try:
            return [ids[c] for c in text]
        except KeyError:
            unseen = sorted({c for c in text if c not in ids})
            first = min(text.index(c) for c in unseen)
            raise ValueError(
                f"{len(unseen)} character(s) never seen in training: {''.join(unseen[:20])!r} "
                f"(first at position {first}); train on text that has them, build the tokenizer with "
                f"unknown='replace' (they become {UNK!r}), or use a BPETokenizer, which has no unknown characters"
            ) from None

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text of ``ids``; a special token comes out as its name, e.g. ``"<mask>"``."""
        return "".join(self._strings[i] for i in _id_list(ids, self.vocab_size))

    def to_dict(self) -> dict:
        return {"type": "char", "chars": self.chars, "specials": list(self.specials), "unknown": self.unknown}

    def save(self, path: str | Path) -> None:
        _save(self, path)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, specials={list(self.specials)}, unknown={self.unknown!r})"


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """``ids`` with every occurrence of ``pair`` (left to right, not overlapping) replaced by ``new_id``."""
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer:
    """Byte-level BPE. Ids 0..255 are the byte values; merge ``k`` (a pair of ids) makes id ``256 + k``;
    the ``specials`` come last.

    ``encode`` splits the text into ``PIECES`` and, inside each piece, applies the merges in the
    order they were learned (the lowest-ranked pair present first), exactly as in training.
    """

    def __init__(self, merges: Sequence[tuple[int, int]] = (), *, specials: Sequence[str] = ()):
        self.merges = [tuple(pair) for pair in merges]
        for k, pair in enumerate(self.merges):
            if len(pair) != 2 or not all(isinstance(i, int) and 0 <= i < 256 + k for i in pair):
                raise ValueError(f"merge {k} must be a pair of ids below {256 + k}, got {pair!r}")
        self.ranks = {pair: k for k, pair in enumerate(self.merges)}
        self._bytes = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self._bytes.append(self._bytes[a] + self._bytes[b])
        specials = _check_specials(specials)
        self.specials = {name: len(self._bytes) + i for i, name in enumerate(specials)}
        self._special_names = {i: name for name, i in self.specials.items()}
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(cls, text: str, vocab_size: int, *, specials: Sequence[str] = (),
              min_frequency: int = 2) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(specials)`` merges from ``text`` (fewer when no pair occurs
        ``min_frequency`` times). Each step merges the most frequent adjacent pair inside the pieces of
        the text; ties go to the pair with the smallest ids."""
        _check_text(text)
        specials = _check_specials(specials)
        if not isinstance(vocab_size, int) or vocab_size < 256 + len(specials):
            raise ValueError(f"vocab_size must be an int of at least 256 (the bytes) + {len(specials)} "
                             f"(the specials), got {vocab_size!r}")
        if not text:
            raise ValueError("cannot train a tokenizer on empty text")
        words = Counter(PIECES.findall(text))
        sequences = [list(word.encode("utf-8")) for word in words]
        counts = list(words.values())
        pair_counts: Counter[tuple[int, int]] = Counter()
        where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> words that may hold it
        for w, (seq, count) in enumerate(zip(sequences, counts)):
            for pair in zip(seq, seq[1:]):
                pair_counts[pair] += count
                where[pair].add(w)
        # A heap of (-count, pair): the most frequent pair, smallest ids first. Entries whose count
        # has changed since they were pushed are stale and skipped.
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)
        merges: list[tuple[int, int]] = []
        while len(merges) < vocab_size - 256 - len(specials) and heap:
            negative, pair = heapq.heappop(heap)
            if pair_counts.get(pair) != -negative:
                continue
            if -negative < min_frequency:
                break
            new_id = 256 + len(merges)
            merges.append(pair)
            touched = set()
            for w in where.pop(pair):
                old = sequences[w]
                new = _merge(old, pair, new_id)
                if len(new) == len(old):
                    continue
                for p in zip(old, old[1:]):
                    pair_counts[p] -= counts[w]
                    touched.add(p)
                for p in zip(new, new[1:]):
                    pair_counts[p] += counts[w]
                    where[p].add(w)
                    touched.add(p)
                sequences[w] = new
            for p in touched:
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p))
                else:
                    del pair_counts[p]
        return cls(merges, specials=specials)

    @property
    def vocab_size(self) -> int:
        return len(self._bytes) + len(self.specials)

    def _encode_piece(self, piece: str, steps: int | None = None) -> list[int]:
        """The ids of one piece, using the first ``steps`` merges (all of them by default)."""
        limit = len(self.merges) if steps is None else steps
        ids = list(piece.encode("utf-8"))
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, limit))
            rank = self.ranks.get(pair, limit)
            if rank >= limit:
                break
            ids = _merge(ids, pair, 256 + rank)
        return ids

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``: never an unknown token, since every byte has an id."""
        _check_text(text)
        out = []
        for piece in PIECES.findall(text):
            ids = self._cache.get(piece)
            if ids is None:
                ids = self._cache[piece] = self._encode_piece(piece)
            out.extend(ids)
        return out

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text of ``ids``. Bytes that do not form valid UTF-8 (a sample cut in the middle of a
        character) become U+FFFD; a special token comes out as its name."""
        parts, pending = [], bytearray()
        for i in _id_list(ids, self.vocab_size):
            if i in self._special_names:
                parts += [pending.decode("utf-8", errors="replace"), self._special_names[i]]
                pending.clear()
            else:
                pending += self._bytes[i]
        return "".join(parts) + pending.decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes that a (non-special) token stands for."""
        return self._bytes[_id_list([token_id], len(self._bytes))[0]]

    def token_str(self, token_id: int) -> str:
        """A readable form of a token: its text, with bytes that are not whole UTF-8 characters as ``\\xNN``."""
        if token_id in self._special_names:
            return self._special_names[token_id]
        return self.token_bytes(token_id).decode("utf-8", errors="backslashreplace")

    def segment(self, text: str, steps: int | None = None) -> list[str]:
        """``text`` cut into its tokens (as ``token_str``) after the first ``steps`` merges (all by default).

        ``[tok.segment(text, k) for k in range(len(tok.merges) + 1)]`` shows BPE at work, step by step.
        """
        _check_text(text)
        if steps is not None and not 0 <= steps <= len(self.merges):
            raise ValueError(f"steps must lie in 0..{len(self.merges)} (the number of merges), got {steps}")
        return [self.token_str(i) for piece in PIECES.findall(text) for i in self._encode_piece(piece, steps)]

    def to_dict(self) -> dict:
        return {"type": "bpe", "merges": [list(pair) for pair in self.merges], "specials": list(self.specials)}

    def save(self, path: str | Path) -> None:
        _save(self, path)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, specials={list(self.specials)})"


Tokenizer = CharTokenizer | BPETokenizer


def tokenizer_from_dict(data: dict) -> Tokenizer:
    """The tokenizer that ``to_dict`` described."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "char":
        return CharTokenizer(data["chars"], specials=data["specials"], unknown=data["unknown"])
    if kind == "bpe":
        return BPETokenizer([tuple(pair) for pair in data["merges"]], specials=data["specials"])
    raise ValueError(f"not a tokenizer description: expected a dict with type 'char' or 'bpe', got type {kind!r}")


def _save(tokenizer: Tokenizer, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(tokenizer.to_dict(), ensure_ascii=False), encoding="utf-8")


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A tokenizer saved with ``save``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer file at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a saved tokenizer (not valid JSON: {error})") from None
    return tokenizer_from_dict(data)
