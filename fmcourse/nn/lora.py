"""LoRA: fine-tune a large linear layer by learning a small, low-rank change to its weight.

    layer = LoRALinear(nn.Linear(96, 288), rank=4, alpha=8)   # the base layer is frozen
    y = layer(x)                                              # = base(x) + (alpha / rank) x Aᵀ Bᵀ
    layer.merge()                                             # W <- W + (alpha / rank) B A: no extra cost at inference
    layer.unmerge()                                           # W back (up to rounding), adapters trainable again

A frozen weight ``W`` (out, in) gets a trainable update ``ΔW = (alpha / rank) B A`` with ``A`` (rank, in)
and ``B`` (out, rank): ``rank (in + out)`` parameters instead of ``in · out``. ``B`` starts at zero, so
a new adapter leaves the layer's outputs exactly as they were; ``A`` starts random (as ``nn.Linear``
initialises its weight) so that ``B`` receives a gradient from the first step. Keeping ``alpha``
fixed while changing the rank keeps the size of the update, and so a good learning rate, roughly
the same (Hu et al., 2021).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update: ``(..., in) -> (..., out)``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float = 8.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRA adapts an nn.Linear, got {type(base).__name__}")
        out_features, in_features = base.weight.shape
        largest = min(in_features, out_features)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= largest:
            raise ValueError(
                f"rank must be an int from 1 to min(in_features, out_features) = min({in_features}, {out_features}) "
                f"= {largest} (a larger rank is no longer low-rank), got {rank!r}"
            )
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        self.base = base.requires_grad_(False)
        self.rank, self.alpha, self.scale = rank, float(alpha), alpha / rank
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(rank, in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own initialisation
        self.merged = False

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The update the adapter adds to the base weight, ``(alpha / rank) B A``: shape (out, in)."""
        return self.scale * self.lora_B @ self.lora_A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:  # the update is inside base.weight already
            return y
        return y + self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)  # two thin products

    @torch.no_grad()
    def merge(self) -> None:
        """Add the update into the base weight: one matrix product per call afterwards (no-op if merged)."""
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update out of the base weight again (no-op if not merged)."""
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, merged={self.merged}"
