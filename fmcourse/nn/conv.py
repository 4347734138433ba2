"""Convolutional blocks: a convolution with normalisation and ReLU, and the residual block of ResNet.

    block = ResidualBlock(16, 32, stride=2)     # (B, 16, H, W) -> (B, 32, H/2, W/2)
    plain = ResidualBlock(16, 16, skip=False)   # the same layers without the shortcut

A residual block computes ``y = relu(F(x) + shortcut(x))`` with ``F`` two 3x3 convolutions: the layers
learn a *change* to their input rather than a whole new representation. The shortcut is the identity
when the shapes agree and a 1x1 convolution (with the stride) when they do not. Because the gradient
of ``F(x) + x`` with respect to ``x`` is ``dF/dx + I``, the signal reaches early layers through the
identity however deep the stack, which is why very deep residual networks still train.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_norm(in_channels: int, out_channels: int, stride: int = 1, norm: bool = True) -> nn.Sequential:
    """A 3x3 convolution (padding 1, so the size is kept at stride 1) followed by batch
    normalisation when ``norm`` (then the convolution has no bias: the normalisation has its own)."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """``(B, in_channels, H, W) -> (B, out_channels, H / stride, W / stride)``: two 3x3 convolutions
    with a shortcut around them (``skip=True``, ResNet's basic block) or without one (``skip=False``,
    a plain network with the same layers, for comparison)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, skip: bool = True, norm: bool = True):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("stride", stride)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_channels, self.skip = in_channels, skip
        self.conv1 = conv_norm(in_channels, out_channels, stride, norm)
        self.conv2 = conv_norm(out_channels, out_channels, 1, norm)
        self.shortcut: nn.Module = nn.Identity()
        if skip and (stride != 1 or in_channels != out_channels):
            layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 1, stride, bias=not norm)]
            if norm:
                layers.append(nn.BatchNorm2d(out_channels))
            self.shortcut = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.size(1) != self.in_channels:
            raise ValueError(f"expected images (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        out = self.conv2(F.relu(self.conv1(x)))
        if self.skip:
            out = out + self.shortcut(x)
        return F.relu(out)
