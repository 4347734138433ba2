"""scikit-learn's handwritten digits as tensors, with the one train/test split the course uses."""

from __future__ import annotations

import torch


def load_digits_split(test_size: int = 500, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 1,797 digits and a seeded split: ``images`` ``(1797, 1, 8, 8)`` in [0, 1], ``labels``
    ``(1797,)`` in 0..9, and index tensors ``train_idx`` and ``test_idx`` (the last ``test_size`` of a
    seeded permutation). Chapters 05 and 06 share it, so a test image is never seen in pretraining."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    if not 0 < test_size < len(digits.images):
        raise ValueError(f"test_size must be between 1 and {len(digits.images) - 1}, got {test_size}")
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images, labels, order[:-test_size], order[-test_size:]
