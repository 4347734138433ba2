"""Chapter 10 exercises: NDCG@k from its formula, the leave-last-out split, the popularity baseline,
and an experiment on the ceiling of the shop world when purchases follow each other more often."""

from __future__ import annotations

from functools import lru_cache

import torch

from fmcourse import metrics
from fmcourse.data.recsys import ShopWorld, leave_last_out
from fmcourse.exercises import Exercise, WrongAnswer, number_problem, verdict

# --- 1. NDCG@k (formula) ----------------------------------------------------------------------------


def _ndcg_variant(scores: torch.Tensor, targets: torch.Tensor, k: int, offset: int = 1, cut: bool = True) -> float:
    rank = (scores > scores.gather(1, targets[:, None])).sum(1) + 1          # 1 = the highest score
    gain = 1.0 / torch.log2(rank.double() + offset)
    return float(torch.where(rank <= k, gain, 0.0).mean() if cut else gain.mean())


def _check_ndcg(fn) -> str | None:
    g = torch.Generator().manual_seed(10)
    cases = [(torch.tensor([[0.9, 0.5, 0.1, 0.7], [0.2, 0.3, 0.8, 0.1], [0.1, 0.2, 0.3, 0.4]]),
              torch.tensor([3, 0, 0]), 3)]
    cases += [(torch.randn(n, v, generator=g), torch.randint(0, v, (n,), generator=g), k)
              for n, v, k in ((20, 12, 5), (50, 30, 10), (8, 6, 1))]
    for scores, targets, k in cases:
        name = f"for {len(targets)} users, {scores.size(1)} items and k = {k} your NDCG@k"
        answer = fn(scores.clone(), targets.clone(), k)
        want = metrics.ndcg_at_k(scores, targets, k)
        value = float(answer.mean()) if isinstance(answer, torch.Tensor) and answer.numel() > 1 else answer
        problem = number_problem(
            name, value, want, rel=1e-6, abs_tol=1e-9,
            known=[(_ndcg_variant(scores, targets, k, cut=False), "it counts items ranked beyond the top k: "
                                                                  "their gain is 0"),
                   (_ndcg_variant(scores, targets, k, offset=2), "the ranks start at 1 (the best item), so the "
                                                                "discount of rank r is 1 / log2(r + 1)")])
        if problem is not None:
            return problem
    return None


def ndcg_solution(scores, targets, k):
    target_scores = scores.gather(1, targets[:, None])         # (N, 1): each held-out item's score
    rank = (scores > target_scores).sum(dim=1) + 1              # (N,): 1 + items scored higher
    gain = 1.0 / torch.log2(rank.double() + 1)
    return torch.where(rank <= k, gain, 0.0).mean()


def _ndcg_mistake(scores, targets, k):
    rank = (scores > scores.gather(1, targets[:, None])).sum(dim=1) + 1
    return (1.0 / torch.log2(rank.double() + 1)).mean()           # forgets the cut at k


ndcg_formula = Exercise(
    title="NDCG@k with one held-out item",
    checker=_check_ndcg,
    hint="the rank of the held-out item is 1 plus the number of items scored higher; its gain is "
         "1 / log2(rank + 1) when rank <= k and 0 otherwise; average over users",
    solution=ndcg_solution,
    mistake=_ndcg_mistake,
    mistake_message="beyond the top k",
    kind="formula",
)


# --- 2. the leave-last-out split (code) -------------------------------------------------------------


def _check_split(fn) -> str | None:
    g = torch.Generator().manual_seed(11)
    for users, length in ((3, 5), (10, 8), (4, 3)):
        sequences = torch.randperm(users * length, generator=g).view(users, length)   # all items differ
        answer = fn(sequences.clone())
        if not isinstance(answer, tuple) or len(answer) != 3:
            raise WrongAnswer("return three tensors: (train, valid, test)")
        train, valid, test = (torch.as_tensor(a) for a in answer)
        want = leave_last_out(sequences)
        held = set(valid.flatten().tolist()) | set(test.flatten().tolist())
        if set(train.flatten().tolist()) & held:
            return (f"for sequences of shape {tuple(sequences.shape)} your train part leaks: it holds items that "
                    f"are held out for validation or test")
        if not torch.equal(valid, want.valid) or not torch.equal(test, want.test):
            return (f"for sequences of shape {tuple(sequences.shape)} the held-out items are wrong: validation is "
                    f"each user's second-to-last purchase, test the last")
        if not torch.equal(train, want.train):
            return f"train has shape {tuple(train.shape)}, expected {tuple(want.train.shape)}: all but the last two"
    return None


def split_solution(sequences):
    return sequences[:, :-2], sequences[:, -2], sequences[:, -1]


leave_last_out_split = Exercise(
    title="the leave-last-out split",
    checker=_check_split,
    hint="slice the time axis (dimension 1): all but the last two purchases train, the second to last "
         "validates, the last tests",
    solution=split_solution,
    mistake=lambda sequences: (sequences[:, :-1], sequences[:, -2], sequences[:, -1]),
    mistake_message="leaks",
)


# --- 3. the popularity baseline (code) --------------------------------------------------------------


def _check_popularity(fn) -> str | None:
    cases = [(torch.tensor([[0, 0, 0, 1], [2, 1, 2, 2], [3, 3, 1, 0]]), 5)]
    g = torch.Generator().manual_seed(12)
    cases += [(torch.randint(0, 9, (30, 6), generator=g), 10)]
    for train, n_items in cases:
        answer = fn(train.clone(), n_items)
        if not isinstance(answer, torch.Tensor) or answer.shape != (n_items,):
            got = tuple(answer.shape) if isinstance(answer, torch.Tensor) else type(answer).__name__
            raise WrongAnswer(f"return one score per item, shape ({n_items},), got {got}")
        counts = torch.bincount(train.flatten(), minlength=n_items).double()
        got = answer.double()
        if torch.allclose(got / got.sum(), counts / counts.sum()):
            continue
        once = torch.stack([torch.bincount(row, minlength=n_items).clamp(max=1) for row in train]).sum(0).double()
        if torch.allclose(got / got.sum().clamp_min(1e-12), once / once.sum()):
            return ("your scores count each item once per user: a user who bought it three times bought it three "
                    "times; count every purchase")
        return f"for purchases {train.tolist()[:3]}... your scores are {got.tolist()}, expected {counts.tolist()}"
    return None


def popularity_solution(train, n_items):
    return torch.bincount(train.flatten(), minlength=n_items).float()


popularity_baseline = Exercise(
    title="the popularity baseline",
    checker=_check_popularity,
    hint="count how often each item occurs in all training purchases: torch.bincount(train.flatten(), minlength=n_items)",
    solution=popularity_solution,
    mistake=lambda train, n_items: torch.stack([torch.bincount(row, minlength=n_items).clamp(max=1)
                                                for row in train]).sum(0).float(),
    mistake_message="once per user",
)


# --- 4. an experiment: the ceiling when purchases follow each other more often -----------------------

CEILING_USERS = 500
FOLLOW_NOW, FOLLOW_NEW = 0.3, 0.6


@lru_cache
def ceiling_at(follow: float) -> float:
    """Expected NDCG@10 of the best ranking of the test items of ``ShopWorld.generate(n_users=500,
    follow=follow)``: the law of each user's last purchase given their taste and the purchase before."""
    world = ShopWorld.generate(n_users=CEILING_USERS, follow=follow)
    split = leave_last_out(world.sequences)
    return metrics.ranking_ceiling(world.next_item_probabilities(world.tastes, split.valid), 10)[1]


def _check_ceiling(prediction, measured) -> str | None:
    if prediction not in ("higher", "lower"):
        raise WrongAnswer(f'the prediction should be "higher" or "lower", got {prediction!r}')
    return number_problem(
        f"your ceiling NDCG@10 at follow = {FOLLOW_NEW}", measured, ceiling_at(FOLLOW_NEW),
        known=[(ceiling_at(FOLLOW_NOW), f"that is the ceiling at follow = {FOLLOW_NOW}; generate the world with "
                                          f"follow={FOLLOW_NEW}")])


def _ceiling_note(prediction, measured) -> str:
    now, new = ceiling_at(FOLLOW_NOW), ceiling_at(FOLLOW_NEW)
    truth = "higher" if new > now else "lower"
    return (f"{verdict(prediction, truth)}: the ceiling goes from {now:.3f} to {new:.3f}. Three accessories share "
            f"the follow-up mass, so a purchase says much about the next one; a taste spreads its mass over a "
            f"dozen items of each category it likes. More order in the purchases: more to predict, for a model "
            f"that reads the order")


ceiling_experiment = Exercise(
    title="experiment: the ceiling when purchases follow each other more often",
    checker=_check_ceiling,
    hint=f"world = ShopWorld.generate(n_users={CEILING_USERS}, follow={FOLLOW_NEW}); split = leave_last_out(world.sequences); "
         f"metrics.ranking_ceiling(world.next_item_probabilities(world.tastes, split.valid), 10)[1]",
    solution=lambda: ("higher" if ceiling_at(FOLLOW_NEW) > ceiling_at(FOLLOW_NOW) else "lower",
                      ceiling_at(FOLLOW_NEW)),
    mistake=lambda: ("lower" if ceiling_at(FOLLOW_NEW) > ceiling_at(FOLLOW_NOW) else "higher",
                     ceiling_at(FOLLOW_NOW)),
    kind="experiment",
    parts=2,
    lazy=True,
    note=_ceiling_note,
    mistake_message=f"the ceiling at follow = {FOLLOW_NOW}",
)
