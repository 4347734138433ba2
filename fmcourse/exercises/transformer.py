"""Chapter 03 exercises: a sliding-window mask, causal attention over padded batches, counting a GPT's
parameters, and an experiment on attention's 1/sqrt(d) scale."""

from __future__ import annotations

import math

import torch

from fmcourse.exercises import Exercise, WrongAnswer, number_problem
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


# --- 2. causal attention in a padded batch ----------------------------------------------------------


def _padded_reference(real: torch.Tensor) -> torch.Tensor:
    T = real.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    return causal[None, None] & real[:, None, None, :]


def _check_padded(fn) -> str | None:
    real = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    got = fn(real.clone())
    expected = _padded_reference(real)
    if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
        raise WrongAnswer(f"expected a bool tensor, got {getattr(got, 'dtype', type(got).__name__)}")
    if got.shape != expected.shape:
        if got.shape == expected.shape[:1] + expected.shape[2:]:
            return f"got shape {tuple(got.shape)}: keep an axis of size 1 for the heads, (B, 1, T, T)"
        return f"expected shape {tuple(expected.shape)} = (B, 1, T, T), got {tuple(got.shape)}"
    if torch.equal(got, expected):
        return None
    T = real.shape[1]
    by_query = torch.ones(T, T, dtype=torch.bool).tril()[None, None] & real[:, None, :, None]
    if torch.equal(got, by_query):
        return ("you masked padded queries (rows) instead of padded keys (columns): wrong axis. A real token "
                "must not look at padding; what a padding position computes is never used")
    wrong = (got != expected).nonzero()[0].tolist()
    return f"entry {tuple(wrong)} (sequence, head, query, key) is {bool(got[tuple(wrong)])}, expected the opposite"


def padded_causal_mask_solution(real):
    B, T = real.shape
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T): query i sees keys 0..i
    return causal[None, None] & real[:, None, None, :]  # (B, 1, T, T): and only real keys


padded_causal_mask = Exercise(
    title="causal attention in a padded batch",
    checker=_check_padded,
    hint="combine the (T, T) causal mask with the (B, T) mask of real tokens placed on the KEY axis: "
         "real[:, None, None, :] broadcasts to (B, 1, T, T)",
    solution=padded_causal_mask_solution,
    mistake=lambda real: torch.ones(real.shape[1], real.shape[1], dtype=torch.bool).tril()[None, None]
    & real[:, None, :, None],
    mistake_message="wrong axis",
)


# --- 3. counting a GPT's parameters (a formula) -----------------------------------------------------


def _check_parameter_count(fn) -> str | None:
    for sizes in (dict(vocab_size=11, context_length=16, n_layer=2, n_head=4, d_model=64),
                  dict(vocab_size=500, context_length=128, n_layer=3, n_head=2, d_model=32),
                  dict(vocab_size=97, context_length=64, n_layer=1, n_head=2, d_model=16, positional="rotary")):
        config = GPTConfig(**sizes)
        expected = sum(p.numel() for p in GPT(config).parameters())
        got = fn(config)
        head = config.vocab_size * config.d_model
        if isinstance(got, int) and got == expected + head:
            return (f"for {sizes} your count is {got}, {head} = V·d too many: the output head shares the token "
                    f"embedding's matrix, so count it once")
        if isinstance(got, int) and got == expected + config.context_length * config.d_model:
            return f"for {sizes}: rotary positions are computed, not learned: no C·d table"
        problem = number_problem(f"for {sizes} your count", got, expected, rel=0, abs_tol=0.5)
        if problem:
            return problem + f"; the model has {expected}"
    return None


def parameter_count_solution(config):
    d, L, V, C = config.d_model, config.n_layer, config.vocab_size, config.context_length
    positions = C * d if config.positional == "learned" else 0  # sinusoidal and rotary learn nothing
    embeddings = V * d + positions               # tokens (shared with the output head) and positions
    attention = 4 * d * d + 4 * d                # q, k, v and output projections, with biases
    mlp = 2 * (4 * d * d) + 4 * d + d            # d -> 4d -> d, with biases
    norms = 2 * 2 * d                            # two LayerNorms per block, scale and shift
    return embeddings + L * (attention + mlp + norms) + 2 * d  # + the final LayerNorm


def _parameter_count_untied(config):
    return parameter_count_solution(config) + config.vocab_size * config.d_model


parameter_count = Exercise(
    title="GPT parameter count",
    checker=_check_parameter_count,
    hint="count by hand the shapes of every weight and bias: embeddings, per block attention (4 projections), "
         "MLP (d -> 4d -> d) and two LayerNorms, a final LayerNorm; positions only when learned",
    solution=parameter_count_solution,
    mistake=_parameter_count_untied,
    mistake_message="shares the token embedding",
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
    verdict = "your prediction was right" if prediction == truth else "your prediction was wrong"
    return (f"{verdict}: the scores' spread grows like sqrt(d) = {math.sqrt(SCALE_D):.0f} without the scale, so the "
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
