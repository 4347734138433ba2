"""Chapter 03 exercises: attention, the causal mask, counting a GPT's parameters and its attention cost."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fmcourse.exercises import Exercise
from fmcourse.models import GPT, GPTConfig, forward_flops


def _check_attention(fn) -> str | None:
    g = torch.Generator().manual_seed(0)
    for shape_q, shape_k, masked in (((5, 8), (5, 8), False), ((2, 3, 4, 16), (2, 3, 6, 16), True)):
        q, k = torch.randn(shape_q, generator=g), torch.randn(shape_k, generator=g)
        v = torch.randn(shape_k[:-1] + (3,), generator=g)
        mask = torch.rand(shape_q[-2], shape_k[-2], generator=g) > 0.4 if masked else None
        if mask is not None:
            mask[:, 0] = True  # every query may see at least one key
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        got = fn(q, k, v, mask)
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return f"expected a tensor of shape {tuple(expected.shape)}, got {getattr(got, 'shape', type(got).__name__)}"
        if not torch.allclose(got, expected, atol=1e-5):
            where = "with a mask" if masked else "without a mask"
            return f"{where}, your output differs from F.scaled_dot_product_attention by up to {(got - expected).abs().max():.3g}"
    return None


def attention_solution(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


def _attention_unscaled(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


attention = Exercise(
    title="scaled dot-product attention",
    checker=_check_attention,
    hint="softmax(q kᵀ / sqrt(d)) v, with d = q.size(-1); where mask is False, set the score to -inf before the softmax",
    solution=attention_solution,
    mistake=_attention_unscaled,
)


def _check_causal(fn) -> str | None:
    for length in range(1, 7):
        got = fn(length)
        expected = torch.ones(length, length, dtype=torch.bool).tril()
        if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
            return f"expected a bool tensor, got {getattr(got, 'dtype', type(got).__name__)}"
        if got.shape != expected.shape:
            return f"for length {length} expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        if not torch.equal(got, expected):
            return f"for length {length}, row i should be True at columns 0..i (the past and itself) only; got\n{got.int()}"
    return None


def causal_mask_solution(length):
    return torch.ones(length, length, dtype=torch.bool).tril()


causal_mask = Exercise(
    title="causal mask",
    checker=_check_causal,
    hint="query i (a row) may look at keys 0..i (columns): the lower triangle, diagonal included (torch.tril)",
    solution=causal_mask_solution,
    mistake=lambda length: torch.ones(length, length, dtype=torch.bool).triu(),
)


def _check_parameter_count(fn) -> str | None:
    for sizes in (dict(vocab_size=11, context_length=16, n_layer=2, n_head=4, d_model=64),
                  dict(vocab_size=500, context_length=128, n_layer=3, n_head=2, d_model=32)):
        config = GPTConfig(**sizes)
        expected = sum(p.numel() for p in GPT(config).parameters())
        got = fn(config)
        if got != expected:
            return f"for {sizes} the model has {expected} parameters, your formula gives {got}"
    return None


def parameter_count_solution(config):
    d, L, V, C = config.d_model, config.n_layer, config.vocab_size, config.context_length
    embeddings = V * d + C * d                   # tokens (shared with the output head) and positions
    attention = 4 * d * d + 4 * d                # q, k, v and output projections, with biases
    mlp = 2 * (4 * d * d) + 4 * d + d            # d -> 4d -> d, with biases
    norms = 2 * 2 * d                            # two LayerNorms per block, scale and shift
    return embeddings + L * (attention + mlp + norms) + 2 * d  # + the final LayerNorm


def _parameter_count_untied(config):
    return parameter_count_solution(config) + config.vocab_size * config.d_model


parameter_count = Exercise(
    title="GPT parameter count",
    checker=_check_parameter_count,
    hint="embeddings V·d and C·d; per block 4d²+4d (attention) + 8d²+5d (MLP) + 4d (LayerNorms); a final "
         "LayerNorm; and the output head shares the token embedding's matrix",
    solution=parameter_count_solution,
    mistake=_parameter_count_untied,
)


def _check_crossover(fn) -> str | None:
    for d_model in (64, 128, 768):
        config = GPTConfig(vocab_size=2, context_length=10 * d_model, n_layer=1, n_head=1, d_model=d_model)
        got = fn(d_model)
        if not isinstance(got, int):
            return f"expected an int (a number of tokens), got {type(got).__name__}"
        if not 1 <= got <= config.context_length:
            return f"for d_model={d_model} your length {got} is outside 1..{config.context_length}"
        flops = forward_flops(config, got)
        scores, rest = flops["attention scores and mixing"], flops["attention projections"] + flops["MLP"]
        if scores != rest:
            return (f"for d_model={d_model} at length {got}, the scores and mixing cost {scores:.3g} FLOPs "
                    f"and the projections and MLP {rest:.3g}")
    return None


def crossover_solution(d_model):
    # 4·T²·d = (8 + 16)·T·d²  <=>  T = 6·d
    return 6 * d_model


attention_crossover = Exercise(
    title="when attention's T² term takes over",
    checker=_check_crossover,
    hint="per block and sequence: scores and mixing 4·T²·d FLOPs, projections 8·T·d² and MLP 16·T·d²; solve for T",
    solution=crossover_solution,
    mistake=lambda d_model: 4 * d_model,
)
