"""Chapter 07 exercises: the min-p filter, one step of beam search, BLEU by hand, and an
experiment on the size of the nucleus of the shipped GPT."""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from fmcourse.exercises import Exercise, WrongAnswer, number_problem, verdict

# --- 1. the min-p filter (code) ---------------------------------------------------------------------
# A relative of top-p that the notebook does not write: keep every token whose probability is at least
# a fraction of the most likely token's. Like the nucleus, the kept set shrinks where the model is sure.


def _reference_min_p(logits: torch.Tensor, ratio: float) -> torch.Tensor:
    """``logits`` (V,) with -inf at every token whose probability is below ``ratio`` times the largest."""
    probs = logits.softmax(-1)
    return logits.masked_fill(probs < ratio * probs.max(), float("-inf"))


def _reference_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """``logits`` (V,) with -inf outside the smallest set of most likely tokens whose mass reaches p."""
    order = logits.argsort(descending=True)
    probs = logits[order].softmax(-1)
    mass_before = probs.cumsum(-1) - probs  # the mass of the tokens ranked above each one
    keep = torch.zeros(len(logits), dtype=torch.bool)
    keep[order] = mass_before < p
    return logits.masked_fill(~keep, float("-inf"))


def _kept(name: str, answer, logits: torch.Tensor) -> torch.Tensor:
    if not isinstance(answer, torch.Tensor) or answer.shape != logits.shape:
        got = tuple(answer.shape) if isinstance(answer, torch.Tensor) else type(answer).__name__
        raise WrongAnswer(f"{name} should be a tensor of logits of shape {tuple(logits.shape)}, got {got}")
    if torch.isnan(answer).any():
        raise WrongAnswer(f"{name} contains nan")
    return torch.isfinite(answer)


def _check_min_p(fn) -> str | None:
    g = torch.Generator().manual_seed(0)
    cases = [(torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0]), 0.3), (torch.tensor([3.0, 0.0, 0.0, -2.0]), 0.04)]
    cases += [(torch.randn(30, generator=g) * s, r) for s, r in ((1.0, 0.1), (3.0, 0.05), (0.3, 0.5), (2.0, 1.0))]
    for logits, ratio in cases:
        shown = [round(v, 2) for v in logits.tolist()[:6]]
        name = f"for ratio={ratio} and logits {shown}{' ...' if len(logits) > 6 else ''} your result"
        answer = fn(logits.clone(), ratio)
        got = _kept(name, answer, logits)
        want = torch.isfinite(_reference_min_p(logits, ratio))
        probs = logits.softmax(-1)
        if torch.equal(got, want):
            if not torch.allclose(answer[want], logits[want]):
                return f"{name} changed the logits it kept: keep them as they are and set the others to -inf"
            continue
        if torch.equal(got, probs >= ratio):
            return (f"{name} keeps the {int(got.sum())} token(s) of probability >= {ratio}: the threshold is relative "
                    f"to the most likely token, ratio * max(p) = {ratio * probs.max():.3f}")
        if not got.any():
            return f"{name} keeps no token at all: the most likely token must always stay"
        return f"{name} keeps {int(got.sum())} token(s); {int(want.sum())} have probability >= ratio * max(p)"
    return None


def min_p_solution(logits, ratio):
    probs = logits.softmax(-1)
    keep = probs >= ratio * probs.max()                # relative to the most likely token
    return logits.masked_fill(~keep, float("-inf"))


min_p_filter = Exercise(
    title="the min-p filter",
    checker=_check_min_p,
    hint="turn the logits into probabilities with softmax, compare each with ratio times the largest "
         "probability, and set the logits of the others to -inf",
    solution=min_p_solution,
    mistake=lambda logits, ratio: logits.masked_fill(logits.softmax(-1) < ratio, float("-inf")),
    mistake_message="relative to the most likely token",
)


# --- 2. one step of beam search (code) --------------------------------------------------------------


def _reference_beam_step(scores: torch.Tensor, log_probs: torch.Tensor, beam_size: int):
    total = (scores[:, None] + log_probs).flatten()
    best = total.topk(beam_size)
    V = log_probs.size(1)
    return best.values, best.indices // V, best.indices % V


def _check_beam_step(fn) -> str | None:
    g = torch.Generator().manual_seed(1)
    cases = [(torch.tensor([-0.1, -2.5]), torch.tensor([[-1.6, -0.4, -2.0], [-0.05, -3.5, -4.0]]).log_softmax(-1), 2)]
    cases += [(-torch.rand(k, generator=g) * 4, torch.randn(k, v, generator=g).mul(2).log_softmax(-1), b)
              for k, v, b in ((3, 7, 3), (4, 11, 4), (2, 5, 3))]
    for scores, log_probs, beam_size in cases:
        answer = fn(scores.clone(), log_probs.clone(), beam_size)
        if not isinstance(answer, tuple) or len(answer) != 3:
            raise WrongAnswer("return three tensors: (new_scores, beam, token), each of length beam_size")
        new_scores, beam, token = (torch.as_tensor(a) for a in answer)
        want_scores, want_beam, want_token = _reference_beam_step(scores, log_probs, beam_size)
        name = f"with {len(scores)} beams of running scores {[round(s, 2) for s in scores.tolist()]} your new scores"
        if new_scores.shape != want_scores.shape:
            return f"{name} have shape {tuple(new_scores.shape)}, expected ({beam_size},): keep beam_size candidates"
        if torch.allclose(new_scores.double(), want_scores.double(), atol=1e-5):
            chosen = set(zip(beam.tolist(), token.tolist()))
            if chosen != set(zip(want_beam.tolist(), want_token.tolist())):
                return f"{name} are right but the (beam, token) pairs are not: beam = index // V, token = index % V"
            continue
        per_token = log_probs.flatten().topk(beam_size).values
        if torch.allclose(new_scores.double().sort(descending=True).values, per_token.double(), atol=1e-5):
            return (f"{name} are {[round(s, 3) for s in new_scores.tolist()]}: they ignore each beam's running "
                    f"score; add each beam's running score to its next-token log-probabilities before choosing")
        return f"{name} are {[round(s, 3) for s in new_scores.tolist()]}, expected {[round(s, 3) for s in want_scores.tolist()]}"
    return None


def beam_step_solution(scores, log_probs, beam_size):
    V = log_probs.size(1)
    total = scores[:, None] + log_probs                # (K, V): every beam extended by every token
    best = total.flatten().topk(beam_size)             # the best beam_size of all K * V extensions
    return best.values, best.indices // V, best.indices % V


def _beam_step_mistake(scores, log_probs, beam_size):
    V = log_probs.size(1)
    best = log_probs.flatten().topk(beam_size)         # the next token alone decides
    return best.values, best.indices // V, best.indices % V


beam_search_step = Exercise(
    title="one step of beam search",
    checker=_check_beam_step,
    hint="a candidate is a beam extended by a token; its score is the beam's running log-probability plus the "
         "token's log-probability; keep the beam_size best of all K * V candidates (flatten, topk)",
    solution=beam_step_solution,
    mistake=_beam_step_mistake,
    mistake_message="add each beam's running score",
)


# --- 3. BLEU by hand (a value) ----------------------------------------------------------------------

BLEU_CANDIDATE = "the the cat on the mat".split()
BLEU_REFERENCE = "the cat sat on the mat today".split()


def _ngrams(words: list[str], n: int) -> dict[tuple[str, ...], int]:
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - n + 1):
        gram = tuple(words[i:i + n])
        counts[gram] = counts.get(gram, 0) + 1
    return counts


def _precision(n: int, clip: bool = True) -> float:
    cand, ref = _ngrams(BLEU_CANDIDATE, n), _ngrams(BLEU_REFERENCE, n)
    matched = sum(min(c, ref.get(g, 0)) if clip else (c if g in ref else 0) for g, c in cand.items())
    return matched / sum(cand.values())


def _bleu2(clip: bool = True, brevity: bool = True) -> float:
    c, r = len(BLEU_CANDIDATE), len(BLEU_REFERENCE)
    penalty = math.exp(1 - r / c) if brevity and c < r else 1.0
    return penalty * math.sqrt(_precision(1, clip) * _precision(2, clip))


def _check_bleu(value) -> str | None:
    c, r = len(BLEU_CANDIDATE), len(BLEU_REFERENCE)
    geometric = math.sqrt(_precision(1) * _precision(2))
    return number_problem(
        "your BLEU-2", value, _bleu2(),
        known=[(_bleu2(clip=False), "'the' is counted 3 times, but the reference has it only twice: clip each n-gram's "
                                    "count at its count in the reference"),
               (_bleu2(brevity=False), f"the candidate ({c} words) is shorter than the reference ({r}): multiply by the "
                                       f"brevity penalty exp(1 - r / c)"),
               (math.exp(1 - c / r) * geometric, "the brevity penalty is exp(1 - r / c) with r the reference length, "
                                                 "below 1 for a short candidate"),
               (math.exp(1 - r / c) * (_precision(1) + _precision(2)) / 2, "BLEU takes the geometric mean of the "
                                                                           "precisions, not the arithmetic mean"),
               (100 * _bleu2(), "give BLEU as a fraction between 0 and 1")],
    )


bleu_by_hand = Exercise(
    title="BLEU by hand",
    checker=_check_bleu,
    hint="clipped unigram and bigram precisions (each n-gram counts at most as often as in the reference), their "
         "geometric mean, times the brevity penalty exp(1 - r / c) when the candidate is shorter",
    solution=_bleu2(),
    mistake=_bleu2(clip=False),
    mistake_message="clip",
    kind="value",
)


# --- 4. an experiment: how large is the nucleus? -----------------------------------------------------

#: A passage the shipped GPT reads; at every position it predicts the next character.
NUCLEUS_TEXT = ("The function returns a new list of the items of the sequence, sorted from the smallest to the "
                "largest. If the key argument is given, it is called once for each item, and the items are "
                "compared by the values it returns.")
NUCLEUS_P = 0.9


@lru_cache
def _next_logits() -> torch.Tensor:
    from fmcourse import checkpoints, shipped  # the shipped GPT of chapter 04, loaded on first use only
    from fmcourse.models import GPT

    gpt, tok = checkpoints.load(shipped.path("gpt_pydoc_char"), GPT)
    ids = torch.tensor([tok.encode(NUCLEUS_TEXT)])[:, : gpt.config.context_length]
    with torch.no_grad():
        return gpt(ids)[0].double()  # (T, V)


def nucleus_logits() -> torch.Tensor:
    """The shipped GPT's next-character logits ``(T, V)`` at every position of ``NUCLEUS_TEXT`` (its first
    context_length characters)."""
    return _next_logits().clone()


@lru_cache
def mean_nucleus_size(p: float, temperature: float = 1.0) -> float:
    """The average number of tokens in the top-p nucleus over the positions of ``NUCLEUS_TEXT``."""
    logits = _next_logits() / temperature
    return float(sum(torch.isfinite(_reference_top_p(row, p)).sum().item() for row in logits) / len(logits))


def _check_nucleus(prediction, measured) -> str | None:
    if prediction not in ("smaller", "larger"):
        raise WrongAnswer(f'the prediction should be "smaller" or "larger", got {prediction!r}')
    return number_problem(
        f"your mean nucleus size at p = {NUCLEUS_P:g}", measured, mean_nucleus_size(NUCLEUS_P),
        known=[(mean_nucleus_size(0.5), "that is the size at p = 0.5; set top_p to 0.9 and run the cell again")],
    )


def _nucleus_note(prediction, measured) -> str:
    size = mean_nucleus_size(NUCLEUS_P)
    truth = "smaller" if size < 5 else "larger"
    return (f"{verdict(prediction, truth)}: the nucleus holds {mean_nucleus_size(0.5):.2f} characters on average at p = 0.5 and "
            f"{size:.2f} at p = {NUCLEUS_P:g}, against top-k's fixed 5. Its size changes with every position: one "
            f"character where the model is sure, many where it is not, which a fixed k cannot do")


nucleus_size_experiment = Exercise(
    title="experiment: how large is the nucleus?",
    checker=_check_nucleus,
    hint=f"in the cell, set top_p = {NUCLEUS_P:g} and copy the mean nucleus size it prints",
    solution=lambda: ("smaller" if mean_nucleus_size(NUCLEUS_P) < 5 else "larger", mean_nucleus_size(NUCLEUS_P)),
    mistake=lambda: ("larger" if mean_nucleus_size(NUCLEUS_P) < 5 else "smaller", mean_nucleus_size(0.5)),
    kind="experiment",
    parts=2,
    lazy=True,
    note=_nucleus_note,
    mistake_message="the size at p = 0.5",
)
