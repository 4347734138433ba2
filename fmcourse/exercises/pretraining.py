"""Exercises of chapter 04, self-supervised pretraining. Each answer is checked against a reference:
torch's cross-entropy and softmax, the arithmetic of units, or an experiment the check runs itself."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from fmcourse.data import MarkovChain
from fmcourse.exercises import Exercise, WrongAnswer, number_problem, tensor_problem, verdict

# --- 1. the trigram baseline ------------------------------------------------------------------------
# Section 5 counts a bigram model in one line; the exercise takes the next step, two tokens of context.


def _trigram_table(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(V, V, V) add-one counts of (two before, one before, next) triples."""
    triples = (ids[:-2] * vocab_size + ids[1:-1]) * vocab_size + ids[2:]
    return torch.bincount(triples, minlength=vocab_size ** 3).view(vocab_size, vocab_size, vocab_size).double() + 1


def _trigram_solution(train: torch.Tensor, val: torch.Tensor, vocab_size: int) -> float:
    counts = torch.zeros(vocab_size, vocab_size, vocab_size, dtype=torch.float64)
    counts.index_put_((train[:-2], train[1:-1], train[2:]), torch.ones(len(train) - 2, dtype=torch.float64),
                      accumulate=True)
    counts += 1  # add-one: a triple unseen in training stays possible
    probabilities = counts / counts.sum(dim=2, keepdim=True)  # [a, b, :] is P(next | the two before are a, b)
    return -probabilities[val[:-2], val[1:-1], val[2:]].log().mean().item()


def _trigram_wrong_axis(train: torch.Tensor, val: torch.Tensor, vocab_size: int) -> float:
    counts = _trigram_table(train, vocab_size)
    probabilities = counts / counts.sum(dim=0, keepdim=True)  # normalised over the oldest token: wrong axis
    return -probabilities[val[:-2], val[1:-1], val[2:]].log().mean().item()


def _check_trigram(trigram) -> str | None:
    g = torch.Generator().manual_seed(0)
    chain = MarkovChain.random(vocab_size=5, order=2, sharpness=2.0, generator=g)
    train, val = chain.sample(5000, generator=g), chain.sample(400, generator=g)
    table = _trigram_table(train, 5)
    log_p = (table / table.sum(2, keepdim=True)).log()
    expected = F.cross_entropy(log_p[val[:-2], val[1:-1]], val[2:]).item()  # each next token scored by torch
    wrong = {axis: -(table / table.sum(axis, keepdim=True)).log()[val[:-2], val[1:-1], val[2:]].mean().item()
             for axis in (0, 1)}
    on_validation = _trigram_table(val, 5)
    from_validation = -(on_validation / on_validation.sum(2, keepdim=True)).log()[val[:-2], val[1:-1], val[2:]]
    return number_problem(
        "the trigram cross-entropy", trigram(train, val, 5), expected, rel=1e-6,
        known=[(wrong[0], "your probabilities are normalised over the oldest token (the wrong axis): for each pair of "
                          "tokens before, the probabilities of the next token must sum to 1"),
               (wrong[1], "your probabilities are normalised over the middle token (the wrong axis): normalise over "
                          "the next token"),
               (from_validation.mean().item(), "you counted triples in the validation ids, the text being scored; "
                                               "count the training ids only")],
    )


trigram_baseline = Exercise(
    title="the trigram baseline",
    checker=_check_trigram,
    hint="count the (two before, one before, next) triples of the TRAINING ids in a (V, V, V) table, add 1 "
         "everywhere, normalise over the last axis, and average -log P over the validation triples",
    solution=_trigram_solution,
    mistake=_trigram_wrong_axis,
    mistake_message="the wrong axis",
)


# --- 2. perplexity per character (a value) ----------------------------------------------------------

TOKEN_PERPLEXITY, CHARACTERS_PER_TOKEN = 20.0, 3.6


def _per_character_perplexity() -> float:
    nats_per_token = math.log(TOKEN_PERPLEXITY)
    return math.exp(nats_per_token / CHARACTERS_PER_TOKEN)  # the loss, not the perplexity, is shared out


def _check_per_character_perplexity(value) -> str | None:
    return number_problem(
        "your perplexity per character", value, _per_character_perplexity(),
        known=[(TOKEN_PERPLEXITY / CHARACTERS_PER_TOKEN, "you divided the perplexity; divide the loss (its logarithm) "
                                                         "by the characters per token, then exponentiate"),
               (math.log(TOKEN_PERPLEXITY) / CHARACTERS_PER_TOKEN, "that is the loss in nats per character; the "
                                                                   "perplexity is its exponential")],
    )


per_character_perplexity = Exercise(
    title="perplexity per character",
    checker=_check_per_character_perplexity,
    hint="perplexity = exp(loss per token); the loss per character is the loss per token divided by the "
         "characters per token",
    solution=_per_character_perplexity(),
    mistake=TOKEN_PERPLEXITY / CHARACTERS_PER_TOKEN,
    mistake_message="you divided the perplexity",
    kind="value",
)


# --- 3. top-k sampling probabilities ----------------------------------------------------------------


def _top_k_solution(logits: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
    kth = logits.topk(k, dim=-1).values[..., -1:]  # the k-th largest logit of each row
    kept = logits.masked_fill(logits < kth, float("-inf"))  # the others can never be drawn
    return torch.softmax(kept / temperature, dim=-1)


def _top_k_not_renormalised(logits: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
    probabilities = torch.softmax(logits / temperature, dim=-1)
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return probabilities.masked_fill(logits < kth, 0.0)  # zeroed after the softmax: sums to less than 1


def _check_top_k(fn) -> str | None:
    g = torch.Generator().manual_seed(4)
    for k, temperature in ((3, 1.0), (1, 0.7), (5, 2.0), (8, 0.5)):
        logits = torch.randn(4, 8, generator=g, dtype=torch.float64)
        expected = torch.softmax(logits.masked_fill(logits < logits.topk(k).values[:, -1:], float("-inf"))
                                 / temperature, dim=-1)
        got = fn(logits.clone(), k, temperature)
        problem = tensor_problem(f"with k={k}, temperature {temperature}: your probabilities", got, expected)
        if problem and isinstance(got, torch.Tensor) and got.shape == expected.shape:
            total = got.double().sum(-1)
            if not torch.allclose(total, torch.ones_like(total), atol=1e-6):
                return (f"with k={k}, temperature {temperature}: your rows sum to {total.numpy().round(3)}, "
                        f"not 1: renormalise the k kept probabilities")
            zero = expected == 0
            if (got.double()[zero] != 0).any():
                return f"with k={k}: tokens outside the top {k} must get probability 0"
        if problem:
            return problem
    return None


top_k_probabilities = Exercise(
    title="top-k sampling probabilities",
    checker=_check_top_k,
    hint="find the k-th largest logit of each row (logits.topk(k).values[..., -1:]), set the smaller logits to "
         "-inf, and only then take the softmax of logits / temperature",
    solution=_top_k_solution,
    mistake=_top_k_not_renormalised,
    mistake_message="renormalise",
)


# --- 4. an experiment: what context is worth in a sharper chain -------------------------------------

CHAIN_SHARPNESS, CHAIN_BASELINE_SHARPNESS, CHAIN_SEEDS = 4.0, 2.0, (0, 1, 2)


@lru_cache
def context_gain(sharpness: float, seed: int = 0, train_length: int = 20_000, val_length: int = 5_000) -> float:
    """Unigram loss minus entropy rate (nats/token) of a random order-2 chain over 6 tokens."""
    g = torch.Generator().manual_seed(seed)
    chain = MarkovChain.random(vocab_size=6, order=2, sharpness=sharpness, generator=g)
    train, val = chain.sample(train_length, generator=g), chain.sample(val_length, generator=g)
    counts = torch.bincount(train, minlength=6).double() + 1
    unigram = -(counts / counts.sum()).log()[val].mean().item()
    return unigram - chain.entropy_rate()


def mean_context_gain(sharpness: float, seeds=CHAIN_SEEDS) -> float:
    """``context_gain`` averaged over the chains drawn with ``seeds``."""
    return sum(context_gain(sharpness, seed) for seed in seeds) / len(seeds)


def _check_gain(prediction, measured) -> str | None:
    if prediction not in ("grows", "shrinks"):
        raise WrongAnswer(f'the prediction should be "grows" or "shrinks", got {prediction!r}')
    return number_problem(
        f"your mean gap at sharpness {CHAIN_SHARPNESS:g}", measured, mean_context_gain(CHAIN_SHARPNESS),
        known=[(mean_context_gain(CHAIN_BASELINE_SHARPNESS), f"that is the gap at the original sharpness "
                                                             f"{CHAIN_BASELINE_SHARPNESS:g}; change it to {CHAIN_SHARPNESS:g}"),
               (-mean_context_gain(CHAIN_SHARPNESS), "the sign is flipped: the unigram loss minus the entropy rate"),
               (context_gain(CHAIN_SHARPNESS, CHAIN_SEEDS[0]), "that is one chain's gap; average the three seeds")],
    )


def _gain_note(prediction, measured) -> str:
    before, after = mean_context_gain(CHAIN_BASELINE_SHARPNESS), mean_context_gain(CHAIN_SHARPNESS)
    truth = "grows" if after > before else "shrinks"
    per_seed = ", ".join(f"{context_gain(CHAIN_BASELINE_SHARPNESS, s):.2f} → {context_gain(CHAIN_SHARPNESS, s):.2f}"
                         for s in CHAIN_SEEDS)
    return (f"{verdict(prediction, truth)}: on average the gap {truth} from {before:.2f} to {after:.2f} nats/token, but not for every "
            f"chain (per seed: {per_seed}). A sharper chain makes the next token more predictable from its "
            f"context; yet a sharp chain can also trap itself among a few tokens, and then their frequencies "
            f"alone predict well too")


markov_context_experiment = Exercise(
    title="experiment: what context is worth in a sharper chain",
    checker=_check_gain,
    hint=f"change the sharpness in the cell to {CHAIN_SHARPNESS:g}, run it, and copy the mean gap it prints",
    solution=lambda: ("grows", mean_context_gain(CHAIN_SHARPNESS)),
    mistake=lambda: ("shrinks", mean_context_gain(CHAIN_BASELINE_SHARPNESS)),  # forgot to change the sharpness
    mistake_message="the original sharpness",
    kind="experiment",
    parts=2,
    lazy=True,
    note=_gain_note,
)
