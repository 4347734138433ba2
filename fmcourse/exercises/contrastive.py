"""Chapter 05 exercises: the uniformity of embeddings, the lowest InfoNCE loss, retrieval recall@k, and an
experiment on the temperature of an untrained encoder's loss."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from fmcourse.exercises import Exercise, WrongAnswer, number_problem, verdict
from fmcourse.objectives import info_nce as _info_nce

# --- 1. uniformity: how evenly embeddings cover the sphere ------------------------------------------


def _uniformity_reference(z: torch.Tensor, t: float = 2.0, include_self: bool = False,
                          normalise: bool = True) -> float:
    u = F.normalize(z, dim=1) if normalise else z
    squared = torch.cdist(u, u).pow(2)
    if not include_self:
        squared = squared[~torch.eye(len(u), dtype=torch.bool)]
    return torch.log(torch.exp(-t * squared).mean()).item()


def _check_uniformity(fn) -> str | None:
    g = torch.Generator().manual_seed(0)
    for n, d in ((5, 3), (40, 8), (100, 2)):
        z = torch.randn(n, d, generator=g, dtype=torch.float64) * (torch.rand(n, 1, generator=g) * 4 + 0.2)
        expected = _uniformity_reference(z)
        problem = number_problem(
            f"for N={n}, D={d} your uniformity", fn(z.clone()), expected, rel=1e-6,
            known=[(_uniformity_reference(z, include_self=True),
                    "you included each embedding's distance to itself (i = j, distance 0): exclude it"),
                   (_uniformity_reference(z, normalise=False), "normalise the embeddings onto the sphere first")])
        if problem:
            return problem
    return None


def uniformity_solution(z):
    u = F.normalize(z, dim=1)                                   # (N, D) on the unit sphere
    squared = torch.cdist(u, u).pow(2)                          # (N, N) squared distances
    others = ~torch.eye(len(u), dtype=torch.bool)               # pairs i != j only
    return torch.log(torch.exp(-2 * squared[others]).mean()).item()


uniformity = Exercise(
    title="the uniformity of embeddings",
    checker=_check_uniformity,
    hint="normalise the rows, take the squared distances of all pairs i != j (torch.cdist, then drop the "
         "diagonal), and return log of the mean of exp(-2 · distance²)",
    solution=uniformity_solution,
    mistake=lambda z: _uniformity_reference(z, include_self=True),
    mistake_message="exclude it",
)


# --- 2. the lowest InfoNCE loss (a formula) ---------------------------------------------------------


def _simplex(n: int) -> torch.Tensor:
    """n unit vectors (rows) in R^n whose pairwise cosine similarities all equal -1/(n-1)."""
    points = torch.eye(n, dtype=torch.float64) - 1.0 / n
    return F.normalize(points, dim=1)


def lowest_info_nce_solution(n, temperature):
    # Positives identical (similarity 1); the N-1 negatives as far apart as N unit vectors can be: a
    # regular simplex, every pair at similarity -1/(N-1) (the sum of N unit vectors cannot be shorter than 0).
    negative = -1 / (n - 1)
    return math.log(1 + (n - 1) * math.exp((negative - 1) / temperature))


def _check_lowest_info_nce(fn) -> str | None:
    for n, temperature in ((2, 1.0), (4, 0.5), (16, 0.1), (64, 0.2)):
        points = _simplex(n)
        expected = _info_nce(points, points, temperature).item()  # the loss of the best arrangement
        opposite = math.log(1 + (n - 1) * math.exp(-2 / temperature))
        problem = number_problem(
            f"for N={n}, temperature {temperature} your lowest loss", fn(n, temperature), expected, rel=1e-6,
            known=[(opposite, f"that puts every negative at similarity -1; {n} unit vectors cannot all be opposite "
                              f"each other: at best every pair has similarity -1/(N-1)")] if n > 2 else [],
        )
        if problem:
            return problem
    return None


lowest_info_nce = Exercise(
    title="the lowest InfoNCE loss",
    checker=_check_lowest_info_nce,
    hint="per query: -log( e^{1/τ} / (e^{1/τ} + (N-1) e^{s/τ}) ) with s the similarity of the negatives; the "
         "sum of N unit vectors has a squared length ≥ 0, so their mean pairwise similarity is at least -1/(N-1)",
    solution=lowest_info_nce_solution,
    mistake=lambda n, temperature: math.log(1 + (n - 1) * math.exp(-2 / temperature)),
    mistake_message="cannot all be opposite",
    kind="formula",
)


# --- 3. retrieval recall@k --------------------------------------------------------------------------


def _recall_reference(similarity: torch.Tensor, k: int, dim: int = 1) -> float:
    n = len(similarity)
    ranked = similarity.topk(k, dim=dim).indices  # (N, k) or (k, N)
    hits = (ranked == torch.arange(n)[:, None]).any(1) if dim == 1 else (ranked == torch.arange(n)[None, :]).any(0)
    return hits.double().mean().item()


def _check_recall(fn) -> str | None:
    g = torch.Generator().manual_seed(0)
    for n, k in ((6, 1), (20, 3), (50, 5)):
        similarity = torch.randn(n, n, generator=g) + 1.5 * torch.eye(n) + torch.randn(n, 1, generator=g) * 0.1
        similarity += torch.randn(1, n, generator=g) * 2  # some texts are similar to every image: columns differ
        problem = number_problem(
            f"for N={n}, k={k} your recall", fn(similarity.clone(), k), _recall_reference(similarity, k), rel=1e-6,
            known=[(_recall_reference(similarity, k, dim=0),
                    "you ranked each column (wrong axis): query i is row i, so rank the candidates along dim=1")],
        )
        if problem:
            return problem
    return None


def recall_at_k_solution(similarity, k):
    top = similarity.topk(k, dim=1).indices                     # (N, k): the k best candidates of each query
    right = torch.arange(len(similarity))[:, None]              # query i's match is candidate i
    return (top == right).any(dim=1).float().mean().item()


recall_at_k = Exercise(
    title="retrieval recall@k",
    checker=_check_recall,
    hint="for each row i, take the indices of its k largest entries (topk along dim=1) and see whether i is "
         "among them; average over the rows",
    solution=recall_at_k_solution,
    mistake=lambda similarity, k: _recall_reference(similarity, k, dim=0),
    mistake_message="wrong axis",
)


# --- 4. an experiment: the loss of an untrained encoder at a low temperature -------------------------

RANDOM_N, RANDOM_D, LOW_TEMPERATURE, HIGH_TEMPERATURE = 64, 32, 0.05, 1.0


@lru_cache
def random_embedding_loss(temperature: float, n: int = RANDOM_N, d: int = RANDOM_D, seed: int = 0) -> float:
    """InfoNCE of two batches of unrelated standard normal embeddings (N, D): an untrained encoder."""
    g = torch.Generator().manual_seed(seed)
    queries, keys = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    return _info_nce(queries, keys, temperature).item()


def _check_temperature(prediction, measured) -> str | None:
    if prediction not in ("above", "below"):
        raise WrongAnswer(f'the prediction should be "above" or "below" (log N), got {prediction!r}')
    return number_problem(
        f"your loss at temperature {LOW_TEMPERATURE}", measured, random_embedding_loss(LOW_TEMPERATURE),
        known=[(random_embedding_loss(HIGH_TEMPERATURE), f"that is the loss at temperature {HIGH_TEMPERATURE}; "
                                                         f"set it to {LOW_TEMPERATURE}"),
               (math.log(RANDOM_N), "that is log N itself; measure the loss")],
    )


def _temperature_note(prediction, measured) -> str:
    truth = "above" if random_embedding_loss(LOW_TEMPERATURE) > math.log(RANDOM_N) else "below"
    return (f"{verdict(prediction, truth)}: {random_embedding_loss(LOW_TEMPERATURE):.2f} against log N = {math.log(RANDOM_N):.2f}. At a "
            f"low temperature the random similarities are magnified, so each query confidently picks some wrong "
            f"key. So where an untrained encoder starts depends on the temperature: log N is its level only when "
            f"the temperature is large enough to wash the random similarities out")


temperature_experiment = Exercise(
    title="experiment: an untrained encoder at a low temperature",
    checker=_check_temperature,
    hint=f"set the temperature in the cell to {LOW_TEMPERATURE}, run it, and copy the loss it prints",
    solution=lambda: ("above", random_embedding_loss(LOW_TEMPERATURE)),
    mistake=lambda: ("below", random_embedding_loss(HIGH_TEMPERATURE)),  # left at the original temperature
    mistake_message=f"the loss at temperature {HIGH_TEMPERATURE}",
    kind="experiment",
    parts=2,
    lazy=True,
    note=_temperature_note,
)
