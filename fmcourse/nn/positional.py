"""Positional information: attention alone cannot tell the order of its inputs.

- learned absolute positions: an ``nn.Embedding(context_length, d_model)`` added to the tokens (GPT-2);
- sinusoidal absolute positions: a fixed table of sines and cosines added to the tokens (the original
  Transformer), ``sinusoidal_positions``;
- rotary positions (RoPE): queries and keys are rotated by an angle proportional to their position,
  so their dot product depends on the *offset* between positions only, ``Rotary``.
"""

from __future__ import annotations

import torch
from torch import nn


def _frequencies(dim: int, base: float) -> torch.Tensor:
    """``(dim // 2,)`` angular frequencies ``base^(-2i/dim)``: from one radian per position down to slow."""
    return base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def sinusoidal_positions(length: int, dim: int, base: float = 10_000.0) -> torch.Tensor:
    """``(length, dim)`` table: ``PE[p, 2i] = sin(p w_i)``, ``PE[p, 2i+1] = cos(p w_i)``, ``w_i = base^(-2i/dim)``."""
    if dim % 2 != 0 or dim < 2:
        raise ValueError(f"sinusoidal positions need an even width (sine/cosine pairs), got dim={dim}")
    angles = torch.arange(length, dtype=torch.float64)[:, None] * _frequencies(dim, base)  # (length, dim/2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1).float()


class Rotary(nn.Module):
    """Rotary position embedding for queries and keys of width ``head_dim``, up to ``context_length``.

    Feature ``i`` of the first half and feature ``i`` of the second half form a pair, rotated by the
    angle ``p * base^(-2i/head_dim)`` at position ``p``.
    """

    def __init__(self, head_dim: int, context_length: int, base: float = 10_000.0):
        super().__init__()
        if head_dim % 2 != 0:
            raise ValueError(f"rotary positions rotate pairs of features: head_dim must be even, got {head_dim}")
        angles = torch.arange(context_length, dtype=torch.float64)[:, None] * _frequencies(head_dim, base)
        self.register_buffer("cos", angles.cos().float(), persistent=False)  # (context_length, head_dim/2)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """x: ``(..., T, head_dim)`` at positions offset..offset+T-1; returns the rotated ``(..., T, head_dim)``."""
        T = x.size(-2)
        if offset + T > self.cos.size(0):
            raise ValueError(f"sequence of length {T} at offset {offset} is longer than the rotary table "
                             f"({self.cos.size(0)} positions)")
        cos, sin = self.cos[offset:offset + T].to(x.dtype), self.sin[offset:offset + T].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
