"""Chapter 03's first task: reverse a sequence of random digits, ``3 1 4 1 | 1 4 1 3``.

Tokens 0..9 are the digits and 10 (``SEPARATOR``) the separator. The task has a known rule, so a
model's mechanism can be checked: to write answer digit ``j`` it must look at input digit
``n_digits - 1 - j``.
"""

from __future__ import annotations

import torch

SEPARATOR = 10
VOCAB = [str(digit) for digit in range(10)] + ["|"]


def reversal_batch(size: int, n_digits: int = 8, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets ``(size, 2 n_digits)``: digits, separator, the digits reversed,
    shifted by one. Targets are -100 (ignored by ``F.cross_entropy``) on the random first half."""
    if size < 1 or n_digits < 1:
        raise ValueError(f"size and n_digits must be positive, got {size} and {n_digits}")
    digits = torch.randint(0, 10, (size, n_digits), generator=generator)
    sequence = torch.cat([digits, torch.full((size, 1), SEPARATOR), digits.flip(1)], dim=1)
    inputs, targets = sequence[:, :-1], sequence[:, 1:].clone()
    targets[:, :n_digits] = -100
    return inputs, targets
