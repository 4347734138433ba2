"""What a Transformer language model costs: parameters and forward FLOPs, per component, in closed form.

With ``d = d_model``, ``L = n_layer``, ``V = vocab_size``, ``C = context_length`` and ``T`` tokens:

| component | parameters | forward FLOPs (one sequence) |
|---|---|---|
| token embedding (also the tied head) | ``V d`` | 0 (a lookup) |
| learned positions | ``C d`` | 0 |
| attention: q, k, v and output projections | ``L (4d² + 4d)`` | ``L · 8 T d²`` |
| attention: scores ``QKᵀ`` and mixing ``AV`` | 0 | ``L · 4 T² d`` |
| MLP (width 4d) | ``L (8d² + 5d)`` | ``L · 16 T d²`` |
| LayerNorms (2 per block + final) | ``(2L + 1) 2d`` | ~0 (elementwise) |
| output head | 0 (tied) | ``2 T d V`` |

A matrix product of ``(m, k)`` by ``(k, n)`` counts ``2 m k n`` FLOPs (a multiply and an add).
"""

from __future__ import annotations

from fmcourse.models.transformer import TransformerConfig


def parameter_counts(config: TransformerConfig) -> dict[str, int]:
    """Trainable parameters per component of a GPT or encoder built from ``config`` (sum = model total)."""
    d, L, V, C = config.d_model, config.n_layer, config.vocab_size, config.context_length
    return {
        "token embedding (tied head)": V * d,
        "position embedding": C * d if config.positional == "learned" else 0,
        "attention": L * (4 * d * d + 4 * d),
        "MLP": L * (8 * d * d + 5 * d),
        "LayerNorm": (2 * L + 1) * 2 * d,
    }


def forward_flops(config: TransformerConfig, length: int) -> dict[str, int]:
    """Matrix-multiply FLOPs of one forward pass over one sequence of ``length`` tokens, per component."""
    if not 1 <= length <= config.context_length:
        raise ValueError(f"length must be between 1 and the context length {config.context_length}, got {length}")
    d, L, V, T = config.d_model, config.n_layer, config.vocab_size, length
    return {
        "attention projections": L * 8 * T * d * d,
        "attention scores and mixing": L * 4 * T * T * d,
        "MLP": L * 16 * T * d * d,
        "output head": 2 * T * d * V,
    }
