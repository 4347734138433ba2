"""Bias and fairness: accuracy per group, training that protects the worst group, and an association
test on word embeddings.

Groups and their accuracy:

    group_accuracies(logits, labels, groups, num_groups=4)   # (4,): accuracy inside each group
    worst_group_accuracy(logits, labels, groups, 4)          # the smallest of them

Three ways to train a classifier on grouped data (``train_grouped``):

- ``"erm"``: the average loss over the examples (empirical risk minimisation), what everyone does;
- ``"reweight"``: each example weighted by ``1 / (size of its group)``, so every group weighs the same;
- ``"group_dro"``: minimise the loss of the worst group (Sagawa et al., 2020): weights ``q_g`` over
  the groups go up, ``q_g <- q_g exp(eta * loss_g)``, for the groups that do badly, and the model
  minimises ``sum_g q_g loss_g``.

The association test (WEAT, Caliskan et al., 2017) asks whether two sets of target words ``X``,
``Y`` (say, flowers and insects) sit differently close to two sets of attribute words ``A``, ``B``
(pleasant and unpleasant) in an embedding:

    s(w) = mean_a cos(w, a) - mean_b cos(w, b)
    effect size d = (mean_x s(x) - mean_y s(y)) / std_{w in X u Y} s(w)
    p = P(S(X_i, Y_i) >= S(X, Y)) over the equal-size re-partitions X_i, Y_i of X u Y,
        S(X, Y) = sum_x s(x) - sum_y s(y)

    result = association_test(X, Y, A, B, vectors)   # vectors: a mapping word -> (D,) tensor
    result.effect_size, result.p_value
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fmcourse.metrics import accuracy

METHODS = ("erm", "reweight", "group_dro")


# --- groups ------------------------------------------------------------------------------------------

def _check_groups(labels: torch.Tensor, groups: torch.Tensor, num_groups: int) -> None:
    if groups.shape != labels.shape or groups.dim() != 1:
        raise ValueError(f"groups must have shape (N,) like the labels {tuple(labels.shape)}, got {tuple(groups.shape)}")
    if groups.is_floating_point() or (len(groups) and (groups.min() < 0 or groups.max() >= num_groups)):
        raise ValueError(f"groups must be integer group indices in [0, {num_groups - 1}]")


def group_accuracies(predictions: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
                     num_groups: int) -> torch.Tensor:
    """Accuracy inside each group: ``(num_groups,)``, NaN for a group with no examples.

    ``predictions``: scores ``(N, C)`` or labels ``(N,)``; ``labels``, ``groups``: ``(N,)``.
    """
    _check_groups(labels, groups, num_groups)
    result = torch.full((num_groups,), float("nan"))
    for g in range(num_groups):
        inside = groups == g
        if inside.any():
            result[g] = accuracy(predictions[inside], labels[inside])
    return result


def worst_group_accuracy(predictions: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
                         num_groups: int) -> float:
    """The lowest accuracy over the groups that have examples."""
    per_group = group_accuracies(predictions, labels, groups, num_groups)
    return float(per_group[~per_group.isnan()].min())


def group_balanced_weights(groups: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Example weights ``(N,)`` that give every present group the same total weight; they average 1."""
    counts = torch.bincount(groups, minlength=num_groups).float()
    present = int((counts > 0).sum())
    return len(groups) / (present * counts[groups])


def train_grouped(features: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, num_groups: int,
                  method: str = "erm", *, weight_decay: float = 1e-3, steps: int = 300, lr: float = 0.1,
                  dro_step: float = 0.05, hidden: int = 0, seed: int = 0) -> nn.Module:
    """A classifier ``(N, D) -> (N, C)`` trained on all the data (full batch, Adam) by ``method``.

    ``hidden=0`` gives a linear model (logistic regression), ``hidden > 0`` an MLP with one hidden
    layer of that width. ``dro_step`` is Group DRO's step ``eta`` on the group weights.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_groups(labels, groups, num_groups)
    torch.manual_seed(seed)
    num_classes = int(labels.max()) + 1
    d = features.shape[1]
    model = (nn.Linear(d, num_classes) if hidden == 0 else
             nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    weights = group_balanced_weights(groups, num_groups)
    one_hot = F.one_hot(groups, num_groups).float()              # (N, G)
    counts = one_hot.sum(0).clamp_min(1)
    q = torch.full((num_groups,), 1.0 / num_groups)
    for _ in range(steps):
        losses = F.cross_entropy(model(features), labels, reduction="none")   # (N,)
        if method == "erm":
            loss = losses.mean()
        elif method == "reweight":
            loss = (weights * losses).mean()
        else:
            group_losses = (one_hot * losses[:, None]).sum(0) / counts          # (G,)
            q = q * torch.exp(dro_step * group_losses.detach())
            q = q / q.sum()
            loss = (q * group_losses).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


# --- the association test ----------------------------------------------------------------------------

@dataclass
class Association:
    """The result of ``association_test``."""

    effect_size: float          # Cohen's d of the association scores of X against Y
    statistic: float            # S(X, Y) = sum_x s(x) - sum_y s(y)
    p_value: float              # one-sided: the share of re-partitions with S >= the observed S
    exact: bool                 # every re-partition was counted (else a random sample of them)
    scores: dict                # word -> s(w), for the target words


def association_scores(words: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``s(w) = mean_a cos(w, a) - mean_b cos(w, b)`` for word vectors ``(N, D)``: ``(N,)``."""
    w, a, b = (F.normalize(t.double(), dim=-1) for t in (words, a, b))
    return (w @ a.T).mean(1) - (w @ b.T).mean(1)


def effect_size(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    """WEAT's effect size for vectors ``x``, ``y`` ``(n, D)`` and ``a``, ``b`` ``(m, D)``: the difference of
    the mean association of ``x`` and of ``y``, over the standard deviation (n - 1) of all of them."""
    sx, sy = association_scores(x, a, b), association_scores(y, a, b)
    return float((sx.mean() - sy.mean()) / torch.cat([sx, sy]).std())


def _check_lists(**lists: Sequence[str]) -> None:
    for name, words in lists.items():
        if isinstance(words, str) or not isinstance(words, Sequence) or len(words) == 0:
            raise TypeError(f"{name} must be a non-empty list of words, got {words!r}")
    (nx, x), (ny, y), (na, a), (nb, b) = lists.items()
    if len(x) != len(y):
        raise ValueError(f"the target lists must have equal sizes: {nx} has {len(x)} words, {ny} has {len(y)}")
    if len(a) != len(b):
        raise ValueError(f"the attribute lists must have equal sizes: {na} has {len(a)} words, {nb} has {len(b)}")
    if len(x) < 2:
        raise ValueError("each target list needs at least 2 words (the effect size divides by a standard deviation)")


def association_test(x_words: Sequence[str], y_words: Sequence[str], a_words: Sequence[str],
                     b_words: Sequence[str], vectors: Mapping[str, torch.Tensor], permutations: int = 20_000,
                     seed: int = 0) -> Association:
    """WEAT: the effect size and a one-sided permutation p-value of ``X`` against ``Y`` on ``A`` against ``B``.

    ``vectors`` maps every word to its ``(D,)`` embedding (``encode_words`` makes one from a sentence
    encoder). When the number of equal-size re-partitions of ``X u Y`` is at most ``permutations``
    all are counted (an exact p-value); otherwise ``permutations`` random ones (the observed one
    counted too, so p is never 0).
    """
    _check_lists(X=x_words, Y=y_words, A=a_words, B=b_words)
    missing = [w for w in (*x_words, *y_words, *a_words, *b_words) if w not in vectors]
    if missing:
        raise ValueError(f"no vector for {missing[:5]}: embed every word of the four lists first")

    def stack(words):
        return torch.stack([torch.as_tensor(vectors[w]) for w in words])

    a, b = stack(a_words), stack(b_words)
    targets = list(x_words) + list(y_words)
    s = association_scores(stack(targets), a, b)                     # (2n,)
    n = len(x_words)
    observed = float(s[:n].sum() - s[n:].sum())
    total = float(s.sum())
    count = math.comb(2 * n, n)
    if count <= permutations:
        # S = sum_X s - (total - sum_X s) = 2 sum_X s - total over every choice of X
        sums = torch.tensor([float(s[list(c)].sum()) for c in itertools.combinations(range(2 * n), n)],
                            dtype=torch.float64)
        p, exact = float(((2 * sums - total) >= observed - 1e-12).double().mean()), True
    else:
        g = torch.Generator().manual_seed(seed)
        picks = torch.stack([torch.randperm(2 * n, generator=g)[:n] for _ in range(permutations)])
        stats = 2 * s[picks].sum(1) - total
        p, exact = float((1 + (stats >= observed - 1e-12).sum()) / (permutations + 1)), False
    sd = s.std()
    return Association(effect_size=float((s[:n].mean() - s[n:].mean()) / sd), statistic=observed,
                       p_value=p, exact=exact, scores=dict(zip(targets, s.tolist())))


def encode_words(encoder, words: Sequence[str]) -> dict[str, torch.Tensor]:
    """``{word: (D,) embedding}`` from a sentence-transformers ``encoder`` (each word encoded alone).

    A word must be a non-empty string that the encoder's tokenizer can read: one that becomes only
    unknown tokens (``[UNK]``) would be embedded as the unknown token, not as itself, so it is refused.
    """
    words = list(words)
    tokenizer = getattr(encoder, "tokenizer", None)
    for word in words:
        if not isinstance(word, str) or not word.strip():
            raise ValueError(f"every word must be a non-empty string, got {word!r}")
        if tokenizer is not None:
            ids = tokenizer(word, add_special_tokens=False)["input_ids"]
            if not ids or all(i == tokenizer.unk_token_id for i in ids):
                raise ValueError(f"the encoder cannot embed {word!r}: its tokenizer reads it as unknown tokens only")
    unique = list(dict.fromkeys(words))
    with torch.no_grad():
        embeddings = encoder.encode(unique, convert_to_tensor=True, show_progress_bar=False).cpu()
    return dict(zip(unique, embeddings))
