"""A synthetic shop: users with known tastes buy items one after another, so that both *who likes
what* and *what comes next* can be learned, and the best possible recommendation is known.

    world = ShopWorld.generate(n_users=1000, length=20, seed=0)
    world.sequences                    # (U, L) int64: each user's purchases, oldest first
    world.tastes                       # (U, C) float64: each user's true profile over the C categories
    world.category                     # (I,) int64: each item's category
    p = world.next_item_probabilities(world.tastes[:5], world.sequences[:5, -2])   # (5, I) the true next-item law
    split = leave_last_out(world.sequences)   # train / validation / test items per user

How a purchase is drawn. Each item ``i`` belongs to one of ``C`` categories and has a popularity
``w_i`` within it (the ``w`` of a category sum to 1). Each user ``u`` has a taste ``theta_u``, a
distribution over categories drawn from a Dirichlet (small concentration: most users like one or two
categories). Each item also has three *accessories* ``a(i)``, items of any category that people buy
right after ``i`` (a phone, then its case). After a purchase ``i``, the next one is

    p(j | u, i) = follow * A[i, j] + (1 - follow) * theta_u[c(j)] * w_j,

with ``A[i]`` the accessory distribution of ``i`` (weights 0.5, 0.3, 0.2); the first purchase is drawn
from the taste part alone. The taste part is what a user profile (matrix factorization) can learn;
the accessory part depends on the order of the purchases, which only a sequence model sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ACCESSORY_WEIGHTS = (0.5, 0.3, 0.2)


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int of at least {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class ShopWorld:
    """Items (their categories, popularities and accessories) and users (their tastes and purchases).

    ``category`` (I,) int64; ``popularity`` (I,) float64, summing to 1 within each category;
    ``accessories`` (I, I) float64, rows summing to 1; ``follow`` the probability that a purchase is
    an accessory of the one before; ``tastes`` (U, C) float64, rows summing to 1; ``sequences`` (U, L)
    int64 item ids. Build one with ``ShopWorld.generate``; ``new_users`` adds users to the same items.
    """

    category: torch.Tensor
    popularity: torch.Tensor
    accessories: torch.Tensor
    follow: float
    concentration: float
    tastes: torch.Tensor
    sequences: torch.Tensor

    @property
    def n_items(self) -> int:
        return self.category.numel()

    @property
    def n_categories(self) -> int:
        return int(self.category.max()) + 1

    @property
    def n_users(self) -> int:
        return self.sequences.size(0)

    @classmethod
    def generate(cls, n_users: int = 2000, length: int = 20, n_categories: int = 8, items_per_category: int = 12,
                 follow: float = 0.3, concentration: float = 0.3, seed: int = 0) -> ShopWorld:
        """A world of ``n_categories * items_per_category`` items and ``n_users`` users with ``length``
        purchases each, all drawn from ``seed`` (the same seed gives the same world)."""
        _positive_int("n_users", n_users)
        _positive_int("length", length)
        _positive_int("n_categories", n_categories, 2)
        _positive_int("items_per_category", items_per_category, len(ACCESSORY_WEIGHTS))
        if not isinstance(follow, (int, float)) or not 0 <= follow < 1:
            raise ValueError(f"follow must be a probability in [0, 1), got {follow!r}")
        if not isinstance(concentration, (int, float)) or not concentration > 0:
            raise ValueError(f"concentration must be a positive number, got {concentration!r}")
        g = torch.Generator().manual_seed(seed)
        n_items = n_categories * items_per_category
        category = torch.arange(n_items) // items_per_category
        # popularity within a category: Zipf-like weights 1/rank^0.8 in a random order
        popularity = torch.empty(n_items, dtype=torch.float64)
        zipf = 1.0 / torch.arange(1, items_per_category + 1, dtype=torch.float64) ** 0.8
        for c in range(n_categories):
            order = torch.randperm(items_per_category, generator=g)
            popularity[c * items_per_category:(c + 1) * items_per_category] = zipf[order] / zipf.sum()
        accessories = torch.zeros(n_items, n_items, dtype=torch.float64)
        for i in range(n_items):
            others = torch.randperm(n_items - 1, generator=g)[:len(ACCESSORY_WEIGHTS)]
            others = others + (others >= i).long()  # never the item itself
            accessories[i, others] = torch.tensor(ACCESSORY_WEIGHTS, dtype=torch.float64)
        empty = cls(category, popularity, accessories, float(follow), float(concentration),
                    torch.zeros(0, n_categories, dtype=torch.float64), torch.zeros(0, length, dtype=torch.long))
        return empty.new_users(n_users, length, seed=seed + 1)

    def taste_matrix(self) -> torch.Tensor:
        """``(C, I)`` float64: row c is the law of an item bought for taste c (popularity within c)."""
        m = torch.zeros(self.n_categories, self.n_items, dtype=torch.float64)
        m[self.category, torch.arange(self.n_items)] = self.popularity
        return m

    def next_item_probabilities(self, tastes: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """The true law of the next purchase, ``(N, I)`` float64 with rows summing to 1.

        ``tastes`` (N, C): the users' profiles; ``previous`` (N,) int64: each user's last purchase, or
        None (or -1 in an entry) for a first purchase, which follows the taste alone.
        """
        tastes = torch.as_tensor(tastes, dtype=torch.float64)
        if tastes.dim() != 2 or tastes.size(1) != self.n_categories:
            raise ValueError(f"tastes must have shape (N, {self.n_categories}), got {tuple(tastes.shape)}")
        probs = tastes @ self.taste_matrix()
        if previous is None:
            return probs
        previous = torch.as_tensor(previous)
        if previous.shape != (tastes.size(0),) or previous.is_floating_point():
            raise ValueError(f"previous must be ({tastes.size(0)},) integer item ids, got {tuple(previous.shape)} "
                             f"{previous.dtype}")
        if (previous >= self.n_items).any() or (previous < -1).any():
            raise ValueError(f"previous holds unknown item ids: items are 0..{self.n_items - 1} (-1: no purchase yet)")
        has = previous >= 0
        probs[has] = (1 - self.follow) * probs[has] + self.follow * self.accessories[previous[has]]
        return probs

    def new_users(self, n_users: int, length: int, seed: int) -> ShopWorld:
        """The same items with ``n_users`` new users (new tastes, ``length`` purchases each) from ``seed``."""
        _positive_int("n_users", n_users)
        _positive_int("length", length)
        g = torch.Generator().manual_seed(seed)
        alpha = torch.full((self.n_categories,), self.concentration, dtype=torch.float64)
        gamma = torch._standard_gamma(alpha.expand(n_users, -1).contiguous(), generator=g)
        tastes = gamma / gamma.sum(dim=1, keepdim=True)
        sequences = torch.empty(n_users, length, dtype=torch.long)
        previous = torch.full((n_users,), -1, dtype=torch.long)
        for t in range(length):
            probs = self.next_item_probabilities(tastes, previous)
            previous = torch.multinomial(probs, 1, generator=g).squeeze(1)
            sequences[:, t] = previous
        return ShopWorld(self.category, self.popularity, self.accessories, self.follow, self.concentration,
                         tastes, sequences)


@dataclass(frozen=True)
class LeaveLastOut:
    """Each user's purchases split in time: ``train`` all but the last two, ``valid`` the second to
    last, ``test`` the last. ``train`` (U, L-2) int64; ``valid`` and ``test`` (U,) int64.

    To choose settings, train on ``train`` and score ``valid`` after ``history("valid")``; to
    measure, train again on ``history("test")`` (train and the validation item) and score ``test``.
    """

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor

    def history(self, stage: str) -> torch.Tensor:
        """``(U, T)`` the purchases seen before the ``stage`` item (``"valid"`` or ``"test"``)."""
        if stage == "valid":
            return self.train
        if stage == "test":
            return torch.cat([self.train, self.valid[:, None]], dim=1)
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")

    def targets(self, stage: str) -> torch.Tensor:
        """``(U,)`` the held-out item of ``stage``."""
        if stage not in ("valid", "test"):
            raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
        return self.valid if stage == "valid" else self.test


def leave_last_out(sequences: torch.Tensor) -> LeaveLastOut:
    """Split ``(U, L)`` purchase sequences (oldest first) into train ``(U, L-2)``, validation and test items.

    The held-out items are the *last* ones, so every model is asked what comes next after everything
    it was trained on, as in use; a random split would let it learn from the future.
    """
    if not isinstance(sequences, torch.Tensor) or sequences.dim() != 2 or sequences.is_floating_point():
        described = f"{tuple(sequences.shape)} {sequences.dtype}" if isinstance(sequences, torch.Tensor) \
            else type(sequences).__name__
        raise TypeError(f"sequences must be a (users, length) integer tensor of item ids, got {described}")
    if sequences.size(0) == 0:
        raise ValueError("sequences is empty: no users to split")
    if sequences.size(1) < 3:
        raise ValueError(f"each history needs at least 3 purchases (train, validation, test), got {sequences.size(1)}")
    if (sequences < 0).any():
        raise ValueError(f"item ids must be non-negative, got {int(sequences.min())}")
    return LeaveLastOut(sequences[:, :-2].clone(), sequences[:, -2].clone(), sequences[:, -1].clone())
