"""Batches for the two self-supervised objectives of language models.

- Causal LM (GPT): random windows of a token stream; the target of each position is the next token.
- Masked LM (BERT): 15% of the positions are selected; of those, 80% become ``[MASK]``, 10% a random
  token, 10% stay as they are; the model predicts the original token at the selected positions
  only, every other target is ``IGNORE_INDEX`` (which ``F.cross_entropy`` skips by default).

The ``*_batches`` functions return a batch function for ``fmcourse.train.fit`` (a fresh random batch
per call); the ``*_eval_batches`` functions return a fixed list, so validation losses are comparable
from one evaluation to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

IGNORE_INDEX = -100  # the target of a position that does not count in the loss (F.cross_entropy's default)

Batch = tuple[torch.Tensor, torch.Tensor]


def _as_tokens(tokens: torch.Tensor | Sequence[int], min_length: int) -> torch.Tensor:
    """A 1-D int64 CPU tensor of at least ``min_length`` tokens, or a clear error."""
    if not isinstance(tokens, torch.Tensor):
        tokens = torch.as_tensor(list(tokens))
    if tokens.dim() != 1:
        raise ValueError(f"tokens must be one 1-D stream of token ids, got shape {tuple(tokens.shape)}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"tokens must be integer ids, got dtype {tokens.dtype}")
    if len(tokens) < min_length:
        raise ValueError(f"the stream has {len(tokens)} tokens, fewer than the {min_length} one window needs: "
                         f"use a smaller block_size or more text")
    return tokens.to(device="cpu", dtype=torch.long)


def _check_sizes(batch_size: int, block_size: int) -> None:
    for name, value in (("batch_size", batch_size), ("block_size", block_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _windows(tokens: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """``(len(starts), length)``: the windows ``tokens[s : s + length]``."""
    return tokens[starts[:, None] + torch.arange(length)]


def _even_starts(stream_length: int, length: int, count: int | None) -> torch.Tensor:
    """Starts of non-overlapping windows of ``length`` spread evenly over the stream (all that fit,
    or ``count`` of them)."""
    fit = stream_length // length
    n = fit if count is None else max(1, min(fit, count))
    if n == 1:
        return torch.zeros(1, dtype=torch.long)
    return torch.linspace(0, stream_length - length, n, dtype=torch.float64).round().long()


def causal_lm_batches(tokens: torch.Tensor | Sequence[int], batch_size: int, block_size: int, *,
                      generator: torch.Generator | None = None) -> Callable[[], Batch]:
    """A batch function: each call gives ``(inputs, targets)``, both ``(batch_size, block_size)``
    int64, from windows at random places of the 1-D stream ``tokens``; ``targets[:, t]`` is the token
    that follows ``inputs[:, t]`` in the stream."""
    _check_sizes(batch_size, block_size)
    tokens = _as_tokens(tokens, block_size + 1)
    last_start = len(tokens) - block_size - 1

    def batch() -> Batch:
        starts = torch.randint(0, last_start + 1, (batch_size,), generator=generator)
        windows = _windows(tokens, starts, block_size + 1)
        return windows[:, :-1], windows[:, 1:]

    return batch


def causal_lm_eval_batches(tokens: torch.Tensor | Sequence[int], batch_size: int, block_size: int, *,
                           max_batches: int | None = None) -> list[Batch]:
    """Fixed ``(inputs, targets)`` batches of non-overlapping windows spread evenly over ``tokens``
    (all that fit, or enough for ``max_batches`` batches); the last batch may be smaller."""
    _check_sizes(batch_size, block_size)
    tokens = _as_tokens(tokens, block_size + 1)
    count = None if max_batches is None else max_batches * batch_size
    # Windows of block_size + 1 overlap their neighbours by one token at most, so targets never repeat.
    starts = _even_starts(len(tokens) - 1, block_size, count)
    windows = _windows(tokens, starts, block_size + 1)
    return [(w[:, :-1], w[:, 1:]) for w in windows.split(batch_size)]


def mask_tokens(tokens: torch.Tensor, *, vocab_size: int, mask_id: int, probability: float = 0.15,
                special_ids: Iterable[int] = (), generator: torch.Generator | None = None) -> Batch:
    """BERT's masking of ``tokens`` ``(..., T)``: returns ``(inputs, targets)`` of the same shape.

    Each position that is not special (``special_ids`` and ``mask_id``) is selected with
    ``probability``, and every sequence with a non-special token gets at least one selection, so its
    loss is defined. A selected position's input becomes ``mask_id`` (80%), a random non-special
    token (10%) or stays (10%); its target is the original token. Unselected targets are
    ``IGNORE_INDEX``.
    """
    if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise TypeError(f"tokens must be an integer tensor, got {getattr(tokens, 'dtype', type(tokens).__name__)}")
    if tokens.dim() == 0 or tokens.shape[-1] == 0:
        raise ValueError(f"tokens must have shape (..., T) with T >= 1, got {tuple(tokens.shape)}")
    if not 0 < probability <= 1:
        raise ValueError(f"probability must be in (0, 1], got {probability}")
    if not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_id {mask_id} is outside the vocabulary 0..{vocab_size - 1}")
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"token ids must lie in 0..{vocab_size - 1}, found ids from {low} to {high}")
    special = torch.tensor(sorted({mask_id, *special_ids}), dtype=tokens.dtype)
    if special.min() < 0 or special.max() >= vocab_size:
        raise ValueError(f"special_ids must lie in 0..{vocab_size - 1}, got {special.tolist()}")
    ordinary = torch.ones(vocab_size, dtype=torch.bool)
    ordinary[special] = False
    replacements = ordinary.nonzero().squeeze(1)
    if len(replacements) == 0:
        raise ValueError("every id of the vocabulary is special: nothing is left to predict")

    device = tokens.device
    tokens_cpu = tokens.cpu()
    candidate = ~torch.isin(tokens_cpu, special)
    selected = (torch.rand(tokens_cpu.shape, generator=generator) < probability) & candidate
    # A sequence without a selected position would have no loss at all: select one of its candidates.
    empty = ~selected.any(dim=-1) & candidate.any(dim=-1)
    pick = (torch.rand(tokens_cpu.shape, generator=generator) * candidate).argmax(dim=-1, keepdim=True)
    selected |= torch.zeros_like(selected).scatter_(-1, pick, True) & empty[..., None]

    roll = torch.rand(tokens_cpu.shape, generator=generator)
    random_tokens = replacements[torch.randint(len(replacements), tokens_cpu.shape, generator=generator)]
    inputs = tokens_cpu.clone()
    inputs[selected & (roll < 0.8)] = mask_id
    swap = selected & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = random_tokens[swap].to(tokens.dtype)
    targets = torch.where(selected, tokens_cpu, torch.full_like(tokens_cpu, IGNORE_INDEX))
    return inputs.to(device), targets.to(device)


def masked_lm_batches(tokens: torch.Tensor | Sequence[int], batch_size: int, block_size: int, *,
                      vocab_size: int, mask_id: int, probability: float = 0.15, special_ids: Iterable[int] = (),
                      generator: torch.Generator | None = None) -> Callable[[], Batch]:
    """A batch function: each call gives ``mask_tokens`` of ``(batch_size, block_size)`` windows at
    random places of ``tokens``, i.e. ``(inputs, targets)`` for masked-LM training."""
    _check_sizes(batch_size, block_size)
    tokens = _as_tokens(tokens, block_size)
    special_ids = tuple(special_ids)

    def batch() -> Batch:
        starts = torch.randint(0, len(tokens) - block_size + 1, (batch_size,), generator=generator)
        return mask_tokens(_windows(tokens, starts, block_size), vocab_size=vocab_size, mask_id=mask_id,
                           probability=probability, special_ids=special_ids, generator=generator)

    return batch


def masked_lm_eval_batches(tokens: torch.Tensor | Sequence[int], batch_size: int, block_size: int, *,
                           vocab_size: int, mask_id: int, probability: float = 0.15,
                           special_ids: Iterable[int] = (), seed: int = 0,
                           max_batches: int | None = None) -> list[Batch]:
    """Fixed masked-LM batches: non-overlapping windows spread evenly over ``tokens``, masked once
    with a generator seeded by ``seed``."""
    _check_sizes(batch_size, block_size)
    tokens = _as_tokens(tokens, block_size)
    count = None if max_batches is None else max_batches * batch_size
    windows = _windows(tokens, _even_starts(len(tokens), block_size, count), block_size)
    generator = torch.Generator().manual_seed(seed)
    special_ids = tuple(special_ids)
    return [mask_tokens(w, vocab_size=vocab_size, mask_id=mask_id, probability=probability,
                        special_ids=special_ids, generator=generator) for w in windows.split(batch_size)]
