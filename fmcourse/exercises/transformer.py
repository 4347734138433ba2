"""Chapter 03 exercises: a sliding-window mask, ALiBi position biases, the memory of a KV cache, and an
experiment on attention's 1/sqrt(d) scale."""

from __future__ import annotations

import math

import torch

from fmcourse.exercises import Exercise, WrongAnswer, number_problem, verdict
from fmcourse.models import GPT, GPTConfig

# --- 1. a sliding-window causal mask ----------------------------------------------------------------


def _window_reference(length: int, window: int) -> torch.Tensor:
    i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
    return (j <= i) & (j > i - window)


def _check_window(fn) -> str | None:
    for length, window in ((6, 3), (5, 1), (4, 4), (7, 2), (3, 5)):
        got = fn(length, window)
        expected = _window_reference(length, window)
        if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
            return f"expected a bool tensor, got {getattr(got, 'dtype', type(got).__name__)}"
        if got.shape != expected.shape:
            return f"for length {length} expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        if torch.equal(got, expected):
            continue
        seen = got.sum(1)
        if torch.equal(got, expected.T):
            return f"for length {length}, window {window}: rows and columns are swapped (row i is the query)"
        if torch.equal(got, torch.ones_like(got).tril()):
            return (f"for length {length}, window {window}: that is the plain causal mask; query i must not "
                    f"see keys more than {window - 1} positions back")
        if torch.equal(seen, expected.sum(1) + (torch.arange(length) >= window).long()):
            return (f"for length {length}, window {window}: rows see {window + 1} keys, one too many: keys "
                    f"i-{window - 1} .. i make a window of {window}")
        return (f"for length {length}, window {window}, row i should be True at columns max(0, i-{window - 1}) .. i; "
                f"got\n{got.int()}")
    return None


def sliding_window_mask_solution(length, window):
    i = torch.arange(length)[:, None]  # query positions, a column
    j = torch.arange(length)[None, :]  # key positions, a row
    return (j <= i) & (j > i - window)  # the past and itself, at most `window` keys


sliding_window_mask = Exercise(
    title="a sliding-window causal mask",
    checker=_check_window,
    hint="compare a column of query positions i with a row of key positions j: j <= i (causal) and "
         "j > i - window (recent enough)",
    solution=sliding_window_mask_solution,
    mistake=lambda length, window: _window_reference(length, window + 1),
    mistake_message="one too many",
)


# --- 2. ALiBi: a distance penalty instead of position embeddings ------------------------------------


def alibi_slopes(n_head: int) -> torch.Tensor:
    """The slope of each head, (n_head,): 2^(-8/n_head), 2^(-16/n_head), ..., 2^(-8)."""
    return 2.0 ** (-8.0 * torch.arange(1, n_head + 1, dtype=torch.float64) / n_head)


def _alibi_reference(n_head: int, length: int, sign: float = -1.0) -> torch.Tensor:
    i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
    distance = (i - j).double()  # how far back key j lies from query i
    bias = sign * alibi_slopes(n_head)[:, None, None] * distance
    return bias.masked_fill(j > i, float("-inf"))  # the future stays hidden


def _check_alibi(fn) -> str | None:
    for n_head, length in ((4, 6), (8, 3), (2, 1)):
        expected = _alibi_reference(n_head, length)
        got = fn(n_head, length)
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return (f"for {n_head} heads and length {length} expected a tensor of shape {tuple(expected.shape)} "
                    f"(n_head, T, T), got {getattr(got, 'shape', type(got).__name__)}")
        got = got.double()
        future = torch.ones(length, length, dtype=torch.bool).triu(1).expand_as(got)
        if not torch.isneginf(got[future]).all():
            return f"for length {length}: keys after the query (j > i) must get -inf, the causal mask"
        past = ~future
        if torch.allclose(got[past], expected[past], atol=1e-6):
            continue
        if torch.allclose(got[past], -expected[past], atol=1e-6):
            return ("the sign is flipped: a key farther back must get a LOWER score, -m·(i - j), so that "
                    "attention prefers recent tokens")
        if torch.allclose(got[past], expected.flip(0)[past], atol=1e-6):
            return "the slopes go the wrong way round: head 0 has the largest slope, 2^(-8/n_head)"
        return f"for {n_head} heads and length {length}, your biases differ from -m_h·(i - j) by up to " \
               f"{(got[past] - expected[past]).abs().max().item():.3g}"
    return None


def alibi_bias_solution(n_head, length):
    slopes = 2.0 ** (-8.0 * torch.arange(1, n_head + 1) / n_head)     # (h,): m_h
    i = torch.arange(length)[:, None]                                   # queries, a column
    j = torch.arange(length)[None, :]                                   # keys, a row
    bias = -slopes[:, None, None] * (i - j)                             # (h, T, T): farther back, lower
    return bias.masked_fill(j > i, float("-inf"))                       # and causal


alibi_bias = Exercise(
    title="ALiBi attention biases",
    checker=_check_alibi,
    hint="bias[h, i, j] = -m_h · (i - j) for keys j <= i, with m_h = 2^(-8 (h+1) / n_head), and -inf for j > i; "
         "build i - j from a column of query positions and a row of key positions",
    solution=alibi_bias_solution,
    mistake=lambda n_head, length: _alibi_reference(n_head, length, sign=1.0),
    mistake_message="the sign is flipped",
)


# --- 3. the memory of a KV cache (a formula) -------------------------------------------------------


def _measured_kv_bytes(config: GPTConfig, batch: int, length: int, dtype: torch.dtype) -> int:
    """Bytes of the keys and values a GPT computes for a (batch, length) input, measured with hooks."""
    model = GPT(config).to(dtype)
    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += output.numel() * 2 // 3 * output.element_size()  # qkv output: q, k, v; keep k and v

    hooks = [block.attn.qkv.register_forward_hook(count) for block in model.blocks]
    with torch.no_grad():
        model(torch.zeros(batch, length, dtype=torch.long))
    for hook in hooks:
        hook.remove()
    return total


def _check_kv_cache(fn) -> str | None:
    for sizes, batch, length, dtype in ((dict(n_layer=2, n_head=2, d_model=16), 3, 10, torch.float32),
                                        (dict(n_layer=3, n_head=4, d_model=32), 1, 7, torch.bfloat16),
                                        (dict(n_layer=1, n_head=1, d_model=8), 5, 4, torch.float64)):
        config = GPTConfig(vocab_size=5, context_length=16, **sizes)
        bytes_per_number = torch.tensor([], dtype=dtype).element_size()
        expected = _measured_kv_bytes(config, batch, length, dtype)
        got = fn(config, batch, length, bytes_per_number)
        problem = number_problem(
            f"for {sizes}, batch {batch}, length {length}, {bytes_per_number} bytes per number: your size",
            got, expected, rel=0, abs_tol=0.5,
            known=[(expected / 2, "the cache holds both keys AND values: 2 times too small"),
                   (expected * config.n_head, "each head's keys have d_model / n_head numbers: the heads together "
                                              "hold d_model per token, not n_head · d_model"),
                   (expected / config.n_layer, "every layer has its own keys and values")])
        if problem:
            return problem
    return None


def kv_cache_bytes_solution(config, batch, length, bytes_per_number):
    # per layer and token: a key and a value of d_model numbers each (all heads together)
    return 2 * config.n_layer * batch * length * config.d_model * bytes_per_number


kv_cache_bytes = Exercise(
    title="the memory of a KV cache",
    checker=_check_kv_cache,
    hint="while generating, every layer keeps the keys and the values of every earlier token of every sequence; "
         "count the numbers (per token and layer: d_model for the keys, d_model for the values) and multiply "
         "by the bytes per number",
    solution=kv_cache_bytes_solution,
    mistake=lambda config, batch, length, bytes_per_number: config.n_layer * batch * length * config.d_model
    * bytes_per_number,
    mistake_message="keys AND values",
    kind="formula",
)


# --- 4. an experiment: attention without the 1/sqrt(d) scale ----------------------------------------

SCALE_T, SCALE_D, SCALE_SEED = 32, 64, 0


def attention_entropy(scaled: bool, length: int = SCALE_T, d: int = SCALE_D, seed: int = SCALE_SEED) -> float:
    """Mean entropy (nats) of the rows of softmax(q kᵀ [/ sqrt(d)]) for standard normal q, k of shape (T, d)."""
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(length, d, generator=g), torch.randn(length, d, generator=g)
    scores = q @ k.T / (math.sqrt(d) if scaled else 1.0)
    weights = scores.softmax(dim=-1)
    return -(weights * weights.clamp_min(1e-30).log()).sum(-1).mean().item()


def _check_scale(prediction, measured) -> str | None:
    if prediction not in ("lower", "higher"):
        raise WrongAnswer(f'the prediction should be "lower" or "higher", got {prediction!r}')
    return number_problem(
        "your entropy without the scale", measured, attention_entropy(False),
        known=[(attention_entropy(True), "that is the entropy WITH the 1/sqrt(d) scale; remove it and run again"),
               (math.log(SCALE_T), "that is ln T, the entropy of uniform attention")],
        abs_tol=1e-4,
    )


def _scale_note(prediction, measured) -> str:
    truth = "lower" if attention_entropy(False) < attention_entropy(True) else "higher"
    return (f"{verdict(prediction, truth)}: the scores' spread grows like sqrt(d) = {math.sqrt(SCALE_D):.0f} without the scale, so the "
            f"softmax nearly picks one key (entropy {attention_entropy(False):.2f} against "
            f"{attention_entropy(True):.2f} nats, ln T = {math.log(SCALE_T):.2f}), and its gradient nearly vanishes")


attention_scale_experiment = Exercise(
    title="experiment: attention without the 1/sqrt(d) scale",
    checker=_check_scale,
    hint="in the cell, divide the scores by 1 instead of sqrt(d), and read the mean entropy it prints",
    solution=lambda: ("lower", attention_entropy(False)),
    mistake=lambda: ("higher", attention_entropy(True)),  # measured with the scale still in place
    mistake_message="WITH the 1/sqrt(d) scale",
    kind="experiment",
    parts=2,
    lazy=True,
    note=_scale_note,
)
