"""A generated world with a planted shortcut: colour predicts the class in training, not at test.

Each example has a *shape* (``core_dims`` noisy numbers whose mean depends on the class: the real
signal, weak but reliable) and a *colour* (one nearly noise-free number, the sign of which is the
colour). In training the colour agrees with the class for a fraction ``agreement`` of the examples
(0.95 by default); at test colour and class are independent (``agreement=0.5``). A model that
learns "colour means class" is right 95% of the time in training and fails on the examples whose
colour disagrees: the minority groups.

    world = shortcut_world(2000, agreement=0.95, seed=0)
    world.features   # (N, core_dims + 1): the shape numbers, then the colour
    world.labels     # (N,) 0 or 1
    world.colours    # (N,) 0 or 1
    world.groups     # (N,) 2 * label + colour: four groups, (0, 0) (0, 1) (1, 0) (1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GROUP_NAMES = ("class 0, colour 0", "class 0, colour 1", "class 1, colour 0", "class 1, colour 1")


@dataclass
class ShortcutWorld:
    """Features ``(N, core_dims + 1)`` (the colour last), labels, colours and groups ``(N,)``."""

    features: torch.Tensor
    labels: torch.Tensor
    colours: torch.Tensor
    groups: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def shortcut_world(n: int, agreement: float = 0.95, seed: int = 0, core_dims: int = 10,
                   core_signal: float = 0.35, colour_signal: float = 1.0, colour_noise: float = 0.1) -> ShortcutWorld:
    """``n`` examples in which the colour equals the class with probability ``agreement``.

    Shape numbers: ``(2 y - 1) core_signal + N(0, 1)`` in each of ``core_dims`` dimensions, so the
    best classifier that reads the shape alone is right with probability
    ``Phi(core_signal * sqrt(core_dims))`` (about 86% with the defaults), in every group alike.
    Colour: ``(2 c - 1) colour_signal + N(0, colour_noise^2)``.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of examples, got {n!r}")
    if not 0.0 <= agreement <= 1.0:
        raise ValueError(f"agreement is a probability, in [0, 1], got {agreement}")
    if core_dims < 1:
        raise ValueError(f"core_dims must be at least 1, got {core_dims}")
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    agrees = torch.rand(n, generator=g) < agreement
    colours = torch.where(agrees, labels, 1 - labels)
    sign = (2 * labels - 1).float()[:, None]
    shape = sign * core_signal + torch.randn(n, core_dims, generator=g)
    colour = (2 * colours - 1).float()[:, None] * colour_signal + colour_noise * torch.randn(n, 1, generator=g)
    return ShortcutWorld(torch.cat([shape, colour], dim=1), labels, colours, 2 * labels + colours)


def best_shape_only_accuracy(core_dims: int = 10, core_signal: float = 0.35) -> float:
    """The accuracy of the Bayes classifier that reads the shape only: ``Phi(core_signal sqrt(core_dims))``."""
    z = torch.tensor(core_signal * core_dims ** 0.5, dtype=torch.float64)
    return float(0.5 * (1 + torch.erf(z / 2 ** 0.5)))
