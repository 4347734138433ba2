"""Decoding: turning a model's next-token scores into text, for every model of the course.

    probs = next_token_distribution(logits, temperature=0.8, top_k=40, top_p=0.9)   # (..., V)
    ids = sample(gpt, prompt_ids, max_new_tokens=50, temperature=0.8, top_p=0.9)       # KV cache on
    best = beam_search(lm_log_probs(gpt), start_ids=prompt_ids, beam_size=4, max_new_tokens=12)
    words = translate(encoder_decoder, source_ids, beam_size=4, bos_id=bos, eos_id=eos)
    labels = ctc_greedy(log_probs, lengths, blank=0)   # a speech recognizer's frames -> label ids

The rules that shape a next-token distribution ``p = softmax(z)`` over the vocabulary:

- **temperature** ``τ``: ``softmax(z / τ)``; ``τ < 1`` sharpens, ``τ > 1`` flattens, ``τ → 0`` puts all
  the mass on the arg-max (greedy decoding; ``temperature=0`` means exactly that);
- **top-k**: keep the ``k`` largest scores, renormalise;
- **top-p** (nucleus): keep the smallest set of most likely tokens whose probabilities sum to at
  least ``p``, renormalise.

They are applied in that order (temperature, then top-k, then top-p). Sampling draws from the result;
beam search instead keeps the ``beam_size`` most likely prefixes (sum of log-probabilities) at each step.

This module reads models only through what they offer: a causal language model called as
``model(idx, cache=cache)`` with ``model.new_cache()`` (``fmcourse.models.GPT``), an encoder–decoder with
``encode`` and ``decode`` (``fmcourse.models.EncoderDecoder``), or any function from prefixes to
next-token log-probabilities (``beam_search``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

__all__ = ["filter_top_k", "filter_top_p", "next_token_distribution", "sample", "greedy_search", "beam_search",
           "lm_log_probs", "decoder_log_probs", "translate", "ctc_collapse", "ctc_greedy"]


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        described = f"{tuple(logits.shape)} {logits.dtype}" if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating-point tensor (..., vocab_size), got {described}")


def _check_top_k(k, vocab_size: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= vocab_size:
        raise ValueError(f"top_k must be between 1 and vocab_size={vocab_size}, got {k!r}")


def _check_top_p(p) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p!r}")


def _check_temperature(temperature) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a non-negative number (0 = greedy), got {temperature!r}")


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """``logits`` ``(..., V)`` with all but the ``k`` largest of each row set to ``-inf``.

    Scores tied with the k-th largest are all kept (so a row may keep more than ``k`` on ties).
    """
    _check_logits(logits)
    _check_top_k(k, logits.size(-1))
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """``logits`` ``(..., V)`` with every token outside the nucleus set to ``-inf``.

    The nucleus of a row is the smallest set of most likely tokens whose probabilities
    (``softmax(logits)``) sum to at least ``p``: sorted by probability, a token is kept when the mass
    of the tokens before it is still below ``p``. The most likely token is always kept; ``p = 1``
    keeps every token.
    """
    _check_logits(logits)
    _check_top_p(p)
    if p == 1:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True, stable=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # (..., V): probability of the more likely tokens
    drop_sorted = mass_before >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def next_token_distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                            top_p: float | None = None) -> torch.Tensor:
    """The distribution a sampler draws the next token from: probabilities ``(..., V)`` from logits ``(..., V)``.

    ``softmax(logits / temperature)`` restricted to the ``top_k`` most likely tokens, then to the
    ``top_p`` nucleus (each when given). ``temperature=0`` gives all the mass to the arg-max (the
    first one on ties): greedy decoding.
    """
    _check_logits(logits)
    _check_temperature(temperature)
    if top_k is not None:
        _check_top_k(top_k, logits.size(-1))
    if top_p is not None:
        _check_top_p(top_p)
    if temperature == 0:
        return torch.zeros_like(logits).scatter(-1, logits.argmax(dim=-1, keepdim=True), 1.0)
    logits = logits / temperature
    if top_k is not None:
        logits = filter_top_k(logits, top_k)
    if top_p is not None:
        logits = filter_top_p(logits, top_p)
    return logits.softmax(dim=-1)


def _prompt_tensor(prompt_ids, device) -> tuple[torch.Tensor, bool]:
    """A ``(B, T)`` int64 tensor from a list of ids, a 1-D or a 2-D tensor; True when it was 1-D."""
    if isinstance(prompt_ids, torch.Tensor):
        if prompt_ids.is_floating_point() or prompt_ids.is_complex() or prompt_ids.dtype == torch.bool:
            raise TypeError(f"prompt ids must be integers, got a {prompt_ids.dtype} tensor")
        if prompt_ids.dim() not in (1, 2):
            raise ValueError(f"prompt ids must be (length,) or (batch, length), got shape {tuple(prompt_ids.shape)}")
        one = prompt_ids.dim() == 1
        idx = prompt_ids.long().to(device)
        idx = idx[None] if one else idx
    else:
        try:
            ids = [int(i) for i in prompt_ids]
        except (TypeError, ValueError):
            raise TypeError(f"prompt ids must be a list of ints or an integer tensor, got {prompt_ids!r}") from None
        if any(i != j for i, j in zip(ids, prompt_ids)):
            raise TypeError(f"prompt ids must be ints, got {prompt_ids!r}")
        idx, one = torch.tensor([ids], dtype=torch.long, device=device).reshape(1, -1), True
    if idx.size(1) == 0:
        raise ValueError("the prompt is empty: give at least one token id (for example a start-of-text token)")
    return idx, one


@torch.no_grad()
def sample(model, prompt_ids, max_new_tokens: int, *, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, use_cache: bool = True, seed: int | None = 0,
           generator: torch.Generator | None = None, truncate: bool = False) -> torch.Tensor:
    """Continue a prompt with a causal language model (``fmcourse.models.GPT``), one token at a time.

    prompt_ids: a list of ids or a ``(T,)`` tensor (returns ``(T + max_new_tokens,)``), or a ``(B, T)``
    tensor (returns ``(B, T + max_new_tokens)``). Each new token is drawn from
    ``next_token_distribution(logits, temperature, top_k, top_p)``; ``temperature=0`` takes the
    arg-max (greedy, no randomness). ``seed`` makes the draws repeatable (``generator``, when given,
    is used instead; ``seed=None`` uses torch's global generator).

    ``use_cache`` keeps the keys and values of earlier positions (``model.new_cache()``), so each step
    runs the model on one new position instead of all of them. The logits agree with a full pass up
    to float rounding, so the tokens are the same either way (barring a near-tie at that rounding).
    Once the sequence outgrows the model's context, the model sees the last ``context_length``
    tokens (a sliding window), and the cache is rebuilt at every step (learned positions shift).

    A prompt longer than the context raises ``ValueError``, unless ``truncate=True``, which keeps
    its last ``context_length`` tokens as input (the returned ids still start with the whole prompt).
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    _check_temperature(temperature)
    vocab_size, context = model.config.vocab_size, model.config.context_length
    if top_k is not None:
        _check_top_k(top_k, vocab_size)
    if top_p is not None:
        _check_top_p(top_p)
    device = next(model.parameters()).device
    idx, one = _prompt_tensor(prompt_ids, device)
    if idx.size(1) > context and not truncate:
        raise ValueError(f"the prompt has {idx.size(1)} tokens, more than the model's context length {context}; "
                         f"shorten it or pass truncate=True to keep its last {context} tokens")
    if generator is None and seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        cache = None
        for _ in range(max_new_tokens):
            if not use_cache:
                logits = model(idx[:, -context:])[:, -1]
            elif cache is None or idx.size(1) > context:  # first step, or the window slid: start a cache
                cache = model.new_cache()
                logits = model(idx[:, -context:], cache=cache)[:, -1]
            else:
                logits = model(idx[:, -1:], cache=cache)[:, -1]  # (B, V): only the newest position runs
            if temperature == 0:
                next_token = logits.argmax(dim=-1, keepdim=True)
            else:
                probs = next_token_distribution(logits.float(), temperature, top_k, top_p)
                next_token = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, next_token], dim=1)
    finally:
        model.train(was_training)
    return idx[0] if one else idx


StepLogProbs = Callable[[torch.Tensor], torch.Tensor]


def _start_list(start_ids) -> list[int]:
    ids = start_ids.tolist() if isinstance(start_ids, torch.Tensor) else list(start_ids)
    if not ids:
        raise ValueError("start_ids is empty: give at least one id to start from (for example a start token)")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise TypeError(f"start_ids must be a list of ints or a 1-D integer tensor, got {start_ids!r}")
    return ids


def _step(step_log_probs: StepLogProbs, prefixes: list[list[int]], device) -> torch.Tensor:
    out = step_log_probs(torch.tensor(prefixes, dtype=torch.long, device=device))
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.size(0) != len(prefixes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"step_log_probs must return ({len(prefixes)}, vocab_size) log-probabilities for "
                         f"{len(prefixes)} prefixes, got {shape}")
    return out.detach().double().cpu()


def beam_search(step_log_probs: StepLogProbs, start_ids, beam_size: int, max_new_tokens: int,
                eos_id: int | None = None, device: torch.device | str | None = None) -> list[tuple[list[int], float]]:
    """Search for the most likely continuation of ``start_ids``, keeping ``beam_size`` prefixes per step.

    ``step_log_probs(prefixes)``: ``(n, t)`` int64 prefixes -> ``(n, V)`` log-probabilities of the next
    token (any model: a GPT, an encoder–decoder's decoder with its memory, an n-gram table). A
    sequence's score is the sum of its tokens' log-probabilities. At each step every kept prefix is
    extended by every token and the ``beam_size`` best of all these are kept. A prefix that has
    produced ``eos_id`` is finished: it stays in the beam with its score and competes with the
    others, and the search stops when every kept prefix is finished or after ``max_new_tokens``.

    Returns up to ``beam_size`` ``(ids, score)`` pairs, best first; ``ids`` starts with ``start_ids``
    (and ends with ``eos_id`` when finished). ``beam_size=1`` is greedy decoding. A larger beam finds
    sequences at least as likely as greedy in practice, but not always: the prefix greedy follows can
    fall out of the beam (tested in ``tests/test_decoding.py``). ``device``: where the prefixes go.
    """
    start = _start_list(start_ids)
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be a positive int, got {beam_size!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    beams: list[tuple[list[int], float, bool]] = [(start, 0.0, False)]  # (ids, score, finished)
    for _ in range(max_new_tokens):
        alive = [b for b in beams if not b[2]]
        if not alive:
            break
        log_probs = _step(step_log_probs, [b[0] for b in alive], device)  # (n, V)
        V = log_probs.size(1)
        if eos_id is not None and not 0 <= eos_id < V:
            raise ValueError(f"eos_id must be in [0, {V}) (the vocabulary of step_log_probs), got {eos_id}")
        scores = torch.tensor([b[1] for b in alive], dtype=torch.float64)[:, None] + log_probs  # (n, V)
        # stable sort: on ties the earlier beam and the lower token id win, as arg-max does
        best = scores.flatten().sort(descending=True, stable=True)
        candidates = [b for b in beams if b[2]]
        for flat, score in zip(best.indices[:beam_size].tolist(), best.values[:beam_size].tolist()):
            row, token = divmod(flat, V)
            candidates.append((alive[row][0] + [token], score, token == eos_id))
        order = sorted(range(len(candidates)), key=lambda i: -candidates[i][1])  # stable
        beams = [candidates[i] for i in order[:beam_size]]
    return [(ids, score) for ids, score, _ in beams]


def lm_log_probs(model) -> StepLogProbs:
    """``step_log_probs`` for ``beam_search`` from a causal language model (a GPT): the log-softmax of
    its last position's logits, on the last ``context_length`` tokens of each prefix."""
    context = model.config.context_length

    @torch.no_grad()
    def step_log_probs(prefixes: torch.Tensor) -> torch.Tensor:
        model.eval()
        return model(prefixes[:, -context:])[:, -1].float().log_softmax(dim=-1)

    return step_log_probs


def decoder_log_probs(model, memory: torch.Tensor, source_is_token: torch.Tensor | None = None) -> StepLogProbs:
    """``step_log_probs`` for ``beam_search`` from an encoder–decoder and one encoded source:
    ``memory`` ``(1, S, d_model)`` from ``model.encode``, optional ``source_is_token`` ``(1, S)``."""
    if memory.dim() != 3 or memory.size(0) != 1:
        raise ValueError(f"memory must be one encoded source (1, source length, d_model), got {tuple(memory.shape)}")

    @torch.no_grad()
    def step_log_probs(prefixes: torch.Tensor) -> torch.Tensor:
        n = prefixes.size(0)
        mask = None if source_is_token is None else source_is_token.expand(n, -1)
        return model.decode(prefixes, memory.expand(n, -1, -1), mask)[:, -1].float().log_softmax(dim=-1)

    return step_log_probs


def greedy_search(step_log_probs: StepLogProbs, start_ids, max_new_tokens: int, eos_id: int | None = None,
                  device: torch.device | str | None = None) -> tuple[list[int], float]:
    """The most likely token at every step (beam search with one beam): ``(ids, score)``."""
    return beam_search(step_log_probs, start_ids, 1, max_new_tokens, eos_id, device)[0]


def _cut(ids: list[int], eos_id: int) -> list[int]:
    return ids[:ids.index(eos_id)] if eos_id in ids else ids


@torch.no_grad()
def translate(model, source_ids, beam_size: int = 1, max_new_tokens: int | None = None, *, bos_id: int,
              eos_id: int, source_is_token: torch.Tensor | None = None) -> list[int] | list[list[int]]:
    """Decode an encoder–decoder (``fmcourse.models.EncoderDecoder``): the target ids for a source.

    source_ids: one sentence (a list of ids or a ``(S,)`` tensor; returns a list of ids) or a batch
    ``(B, S)`` tensor with an optional ``(B, S)`` bool ``source_is_token`` (False at padding; returns
    a list of lists). The target starts with ``bos_id``; decoding stops at ``eos_id`` or after
    ``max_new_tokens`` (default: the context length minus one). The returned ids leave out ``bos_id``
    and everything from ``eos_id`` on. ``beam_size=1`` is greedy (a batch is decoded at once, with a
    key/value cache in the decoder); a larger beam runs ``beam_search`` sentence by sentence.
    """
    config = model.config
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be a positive int, got {beam_size!r}")
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < config.vocab_size:
            raise ValueError(f"{name} must be a token id in [0, {config.vocab_size}), got {value!r}")
    if max_new_tokens is None:
        max_new_tokens = config.context_length - 1
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or not 0 <= max_new_tokens < config.context_length:
        raise ValueError(f"max_new_tokens must be in [0, {config.context_length}) (the target, start token "
                         f"included, must fit the context), got {max_new_tokens!r}")
    device = next(model.parameters()).device
    source, one = _prompt_tensor(source_ids, device)
    if source_is_token is not None:
        source_is_token = source_is_token.to(device)
        if one and source_is_token.dim() == 1:
            source_is_token = source_is_token[None]
    was_training = model.training
    model.eval()
    try:
        memory = model.encode(source, source_is_token)  # (B, S, d_model)
        if beam_size == 1:
            target = torch.full((source.size(0), 1), bos_id, dtype=torch.long, device=device)
            done = torch.zeros(source.size(0), dtype=torch.bool, device=device)
            cache = model.new_cache()  # the decoder runs on the newest position only
            for _ in range(max_new_tokens):
                logits = model.decode(target[:, -1:], memory, source_is_token, cache=cache)
                next_token = logits[:, -1].argmax(dim=-1, keepdim=True)
                target = torch.cat([target, next_token], dim=1)
                done |= next_token[:, 0] == eos_id
                if done.all():
                    break
            results = [_cut(row[1:], eos_id) for row in target.tolist()]
        else:
            results = []
            for b in range(source.size(0)):
                row_mask = None if source_is_token is None else source_is_token[b:b + 1]
                step_log_probs = decoder_log_probs(model, memory[b:b + 1], row_mask)
                ids, _ = beam_search(step_log_probs, [bos_id], beam_size, max_new_tokens, eos_id, device)[0]
                results.append(_cut(ids[1:], eos_id))
    finally:
        model.train(was_training)
    return results[0] if one else results


def ctc_collapse(frame_labels: Sequence[int], blank: int = 0) -> list[int]:
    """CTC's many-to-one map from a label per frame to an output: merge runs of the same label, then
    drop the blanks. ``[a, a, -, a, b, b] -> [a, a, b]``: a blank between two equal labels keeps both."""
    out, previous = [], None
    for label in frame_labels:
        if label != previous and label != blank:
            out.append(label)
        previous = label
    return out


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor | Sequence[int] | None = None,
               blank: int = 0) -> list[list[int]]:
    """Greedy (best-path) CTC decoding: the most likely label of each frame, collapsed.

    log_probs: ``(B, T, C)`` scores per frame (C labels, ``blank`` among them); lengths: optional
    ``(B,)`` number of real frames of each example (default: all ``T``). Returns B lists of label ids.
    """
    if not isinstance(log_probs, torch.Tensor) or log_probs.dim() != 3:
        raise ValueError("log_probs must be a (batch, frames, labels) tensor, got "
                         f"{tuple(log_probs.shape) if isinstance(log_probs, torch.Tensor) else type(log_probs).__name__}")
    B, T, C = log_probs.shape
    if not 0 <= blank < C:
        raise ValueError(f"blank must be a label id in [0, {C}), got {blank}")
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    if len(lengths) != B or any(not 0 <= n <= T for n in lengths):
        raise ValueError(f"lengths must give {B} frame counts in [0, {T}], got {lengths}")
    best = log_probs.argmax(dim=-1).tolist()                                    # (B, T)
    return [ctc_collapse(row[:n], blank) for row, n in zip(best, lengths)]
