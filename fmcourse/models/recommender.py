"""Recommenders that score every item as a user's next purchase, from the simplest to a GPT.

    popularity_scores(histories, n_items)          # (I,): how often each item was bought
    ItemBigram(histories, n_items, smoothing).scores(histories)   # (N, I): what follows the last purchase
    mf = MatrixFactorization(n_users, n_items, dim); mf(users)    # (B, I): u_user . v_item + b_item
    gpt = GPT(GPTConfig(vocab_size=n_items + 1, ...))             # items are the tokens; id n_items starts
    next_item_scores(gpt, histories, n_items)       # (N, I): the GPT's logits after each history

Histories are ``(N, T)`` int64 item ids, oldest first, all of one length ``T`` (``T = 0`` allowed for
the models that need no history). A GPT recommender reads ``[START, h_1, ..., h_T]`` and predicts
the next item at every position, exactly as a language model predicts the next token (SASRec, Kang
and McAuley, 2018); ``START = n_items`` is one extra token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def check_histories(histories, n_items: int, name: str = "histories", allow_empty: bool = False) -> torch.Tensor:
    """``histories`` as ``(N, T)`` int64 after checking the type, the shape and that every id is a known item."""
    if not isinstance(histories, torch.Tensor) or histories.dim() != 2 or histories.is_floating_point() \
            or histories.dtype == torch.bool:
        described = f"{tuple(histories.shape)} {histories.dtype}" if isinstance(histories, torch.Tensor) \
            else type(histories).__name__
        raise TypeError(f"{name} must be a (users, length) integer tensor of item ids, got {described}")
    if histories.size(0) == 0:
        raise ValueError(f"{name} has no users")
    if histories.size(1) == 0 and not allow_empty:
        raise ValueError(f"{name} are empty (length 0): this model needs at least one purchase per user")
    if histories.numel() and (histories.min() < 0 or histories.max() >= n_items):
        bad = int(histories.min()) if histories.min() < 0 else int(histories.max())
        raise ValueError(f"{name} hold unknown item id {bad}: items are 0..{n_items - 1}")
    return histories.long()


def popularity_scores(histories: torch.Tensor, n_items: int) -> torch.Tensor:
    """``(I,)`` float64: how often each item occurs in ``histories`` ``(N, T)`` (the same list for everyone)."""
    histories = check_histories(histories, n_items)
    return torch.bincount(histories.flatten(), minlength=n_items).double()


class ItemBigram:
    """The n-gram baseline of recommendation: the next item predicted from the last one alone.

    ``p(j | i) = (count(i -> j) + smoothing * q_j) / (count(i -> .) + smoothing)`` with ``q`` the
    items' overall frequencies: an item seldom bought falls back on popularity.
    """

    def __init__(self, histories: torch.Tensor, n_items: int, smoothing: float = 1.0):
        histories = check_histories(histories, n_items)
        if not isinstance(smoothing, (int, float)) or not smoothing > 0:
            raise ValueError(f"smoothing must be a positive number, got {smoothing!r}")
        self.n_items, self.smoothing = n_items, float(smoothing)
        pairs = histories[:, :-1] * n_items + histories[:, 1:]
        self.counts = torch.bincount(pairs.flatten(), minlength=n_items * n_items).view(n_items, n_items).double()
        popular = popularity_scores(histories, n_items)
        self.unigram = popular / popular.sum()

    def scores(self, histories: torch.Tensor) -> torch.Tensor:
        """``(N, I)``: log p(next item | last item of each history)."""
        last = check_histories(histories, self.n_items)[:, -1]
        counts = self.counts[last]
        return ((counts + self.smoothing * self.unigram) / (counts.sum(1, keepdim=True) + self.smoothing)).log()


class MatrixFactorization(nn.Module):
    """Implicit-feedback matrix factorization: ``score(u, i) = p_u . q_i + b_i``.

    Trained with a softmax over all items (the probability that user ``u``'s purchase is item ``i``),
    the same loss a GPT uses for its next token; it learns *who likes what* but cannot see the order
    of the purchases. ``forward(users)``: ``(B,)`` user ids to ``(B, I)`` scores.
    """

    def __init__(self, n_users: int, n_items: int, dim: int = 16):
        super().__init__()
        for name, value in (("n_users", n_users), ("n_items", n_items), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.users = nn.Embedding(n_users, dim)
        self.items = nn.Embedding(n_items, dim)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)

    def check_users(self, users) -> torch.Tensor:
        """``users`` as ``(B,)`` int64 after checking that each is a known user id."""
        if not isinstance(users, torch.Tensor) or users.dim() != 1 or users.is_floating_point() \
                or users.dtype == torch.bool:
            raise TypeError(f"users must be a (batch,) integer tensor of user ids, got {users!r:.60}")
        if users.numel() and (users.min() < 0 or users.max() >= self.n_users):
            bad = int(users.min()) if users.min() < 0 else int(users.max())
            raise ValueError(f"unknown user id {bad}: this model knows users 0..{self.n_users - 1}; "
                             f"for a new user, fold_in their purchases")
        return users.long()

    def scores_of(self, user_vectors: torch.Tensor) -> torch.Tensor:
        """``(B, dim)`` user vectors to ``(B, I)`` item scores."""
        return user_vectors @ self.items.weight.T + self.item_bias

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        return self.scores_of(self.users(self.check_users(users)))

    def fold_in(self, histories: torch.Tensor, steps: int = 200, lr: float = 0.1,
                weight_decay: float = 0.0) -> torch.Tensor:
        """User vectors ``(N, dim)`` for new users from their purchases ``(N, T)``, the items kept fixed.

        Each vector is fitted to its user's purchases with the training loss (softmax over items) and
        an L2 penalty ``weight_decay * |p|^2``, by ``steps`` of Adam. ``T = 0`` gives zero vectors:
        a user of whom nothing is known gets the item biases (popularity).
        """
        histories = check_histories(histories, self.n_items, allow_empty=True)
        vectors = torch.zeros(histories.size(0), self.dim, device=self.item_bias.device, requires_grad=True)
        if histories.size(1) == 0:
            return vectors.detach()
        items, bias = self.items.weight.detach(), self.item_bias.detach()
        optimizer = torch.optim.Adam([vectors], lr=lr)
        targets = histories.to(bias.device)
        for _ in range(steps):
            logits = (vectors @ items.T + bias)[:, None].expand(-1, targets.size(1), -1)  # (N, T, I)
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten()) \
                + weight_decay * vectors.pow(2).sum(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return vectors.detach()


def with_start(histories: torch.Tensor, n_items: int) -> torch.Tensor:
    """``(N, T)`` histories to ``(N, T + 1)`` GPT inputs ``[START, h_1, ..., h_T]`` with ``START = n_items``."""
    histories = check_histories(histories, n_items, allow_empty=True)
    start = torch.full((histories.size(0), 1), n_items, dtype=torch.long, device=histories.device)
    return torch.cat([start, histories], dim=1)


def _gpt_inputs(gpt: nn.Module, histories: torch.Tensor, n_items: int) -> torch.Tensor:
    if gpt.config.vocab_size != n_items + 1:
        raise ValueError(f"the GPT has {gpt.config.vocab_size} tokens; a recommender over {n_items} items needs "
                         f"{n_items + 1} (the items and START)")
    inputs = with_start(histories, n_items)
    if inputs.size(1) > gpt.config.context_length:  # only the latest purchases fit
        inputs = torch.cat([inputs[:, :1], inputs[:, -(gpt.config.context_length - 1):]], dim=1)
    return inputs.to(next(gpt.parameters()).device)


@torch.no_grad()
def next_item_scores(gpt: nn.Module, histories: torch.Tensor, n_items: int) -> torch.Tensor:
    """``(N, I)``: a GPT recommender's logits for the item after each history ``(N, T)``, ``T >= 0``
    (the START token excluded: it is never recommended). Longer histories keep their latest items."""
    was_training = gpt.training
    gpt.eval()
    logits = gpt(_gpt_inputs(gpt, histories, n_items))[:, -1, :n_items]
    gpt.train(was_training)
    return logits


@torch.no_grad()
def user_states(gpt: nn.Module, histories: torch.Tensor, n_items: int) -> torch.Tensor:
    """``(N, d_model)``: the GPT's final hidden state after each history, its user embedding."""
    was_training = gpt.training
    gpt.eval()
    states = gpt.hidden(_gpt_inputs(gpt, histories, n_items))[:, -1]
    gpt.train(was_training)
    return states
