"""The Transformer block: attention lets positions talk to each other, the MLP thinks about each one.

Pre-LayerNorm (as GPT-2): each sub-layer reads a normalised copy of the residual stream and adds its
result back, ``x = x + attn(norm1(x))``, ``x = x + mlp(norm2(x))``, so the stream itself is never
squashed and gradients reach early layers through the additions unchanged.

A decoder block of an encoder–decoder (``cross=True``) has a third sub-layer between the two, in
which the positions read the encoder's output: ``x = x + cross_attn(norm_cross(x), memory)``.
"""

from __future__ import annotations

import torch
from torch import nn

from fmcourse.nn.attention import CrossAttention, LayerKV, MultiHeadAttention


class MLP(nn.Module):
    """Position-wise feed-forward network: ``(B, T, d_model) -> (B, T, d_model)`` through a hidden
    layer of width ``hidden`` (4 d_model in GPT-2) with GELU (tanh approximation, as GPT-2)."""

    def __init__(self, d_model: int, hidden: int | None = None, dropout: float = 0.0):
        super().__init__()
        hidden = hidden or 4 * d_model
        self.fc = nn.Linear(d_model, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.proj = nn.Linear(hidden, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """One pre-LayerNorm Transformer block: ``(B, T, d_model) -> (B, T, d_model)``.

    ``cross=True`` adds cross-attention to a memory ``(B, S, d_model)`` (the encoder's output) after
    the self-attention, as in the decoder of the original Transformer; such a block needs ``memory``
    in every call.
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0, causal: bool = False,
                 rotary: nn.Module | None = None, cross: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_head, dropout, causal=causal, rotary=rotary)
        if cross:
            self.norm_cross = nn.LayerNorm(d_model)
            self.cross_attn = CrossAttention(d_model, n_head, dropout)
        self.cross = cross
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, 4 * d_model, dropout)

    def forward(self, x: torch.Tensor, is_token: torch.Tensor | None = None, need_weights: bool = False,
                memory: torch.Tensor | None = None, memory_is_token: torch.Tensor | None = None,
                cache: LayerKV | None = None):
        """x: ``(B, T, d_model)``; is_token: optional ``(B, T)`` bool (False at padding); memory:
        ``(B, S, d_model)`` for a cross block (None otherwise), memory_is_token: optional ``(B, S)``.

        With ``need_weights`` also returns the self-attention weights ``(B, n_head, T, T)``; a cross
        block returns ``(x, (self_weights, cross_weights))`` with cross weights ``(B, n_head, T, S)``.
        ``cache``: the self-attention's key/value cache (see ``MultiHeadAttention``).
        """
        if self.cross and memory is None:
            raise ValueError("this block has cross-attention (cross=True): pass memory=(batch, length, d_model)")
        if not self.cross and memory is not None:
            raise ValueError("this block has no cross-attention: build it with cross=True to read a memory")
        attended = self.attn(self.norm1(x), is_token, need_weights=need_weights, cache=cache)
        if need_weights:
            attended, weights = attended
        x = x + attended
        if self.cross:
            read = self.cross_attn(self.norm_cross(x), memory, memory_is_token, need_weights=need_weights)
            if need_weights:
                read, cross_weights = read
                weights = (weights, cross_weights)
            x = x + read
        x = x + self.mlp(self.norm2(x))
        return (x, weights) if need_weights else x


def mean_over_tokens(hidden: torch.Tensor, is_token: torch.Tensor | None = None) -> torch.Tensor:
    """Average ``hidden`` ``(B, T, D)`` over its real tokens (``is_token`` ``(B, T)``, False = padding): ``(B, D)``."""
    if is_token is None:
        return hidden.mean(1)
    weights = is_token.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
