"""Exercises of chapter 04, self-supervised pretraining. Each answer is checked against a reference:
torch's softmax and cross-entropy, ``MarkovChain.entropy_rate``, or the arithmetic of units."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fmcourse.data import MarkovChain
from fmcourse.exercises import Exercise


def _number(name: str, answer, expected: float, rel: float = 1e-6) -> str | None:
    """What is wrong with a number ``answer`` that should equal ``expected``, or None."""
    if isinstance(answer, torch.Tensor):
        if answer.numel() != 1:
            return f"{name} should be one number, got a tensor of shape {tuple(answer.shape)}"
        answer = answer.item()
    if not isinstance(answer, (int, float)):
        return f"{name} should be a number, got {type(answer).__name__}"
    if not math.isfinite(answer):
        return f"{name} is {answer}, not a finite number"
    if math.isclose(answer, expected, rel_tol=rel, abs_tol=1e-9):
        return None
    return f"{name} is {answer:.6g}, expected {expected:.6g}"


# --- 1. the unigram baseline ----------------------------------------------------------------------

def _unigram_solution(train: torch.Tensor, val: torch.Tensor, vocab_size: int) -> float:
    counts = torch.bincount(train, minlength=vocab_size).double() + 1  # add-one: unseen tokens stay possible
    log_p = (counts / counts.sum()).log()
    return -log_p[val].mean().item()


def _unigram_from_validation(train: torch.Tensor, val: torch.Tensor, vocab_size: int) -> float:
    counts = torch.bincount(val, minlength=vocab_size).double() + 1  # counts the text it is judged on
    return -(counts / counts.sum()).log()[val].mean().item()


def _check_unigram(unigram) -> str | None:
    g = torch.Generator().manual_seed(0)
    train = torch.multinomial(torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0]), 400, replacement=True, generator=g)
    val = torch.cat([torch.multinomial(torch.tensor([0.2, 0.2, 0.3, 0.2, 0.0]), 99, replacement=True, generator=g),
                     torch.tensor([4])])  # token 4 never occurs in training
    counts = torch.bincount(train, minlength=5).double() + 1
    # The reference: every validation token predicted by the same distribution, scored by torch.
    logits = (counts / counts.sum()).log().expand(len(val), 5)
    expected = F.cross_entropy(logits, val).item()
    return _number("the unigram cross-entropy", unigram(train, val, 5), expected)


unigram_baseline = Exercise(
    title="the unigram baseline",
    checker=_check_unigram,
    hint="count each token id in the TRAINING ids only (torch.bincount with minlength), add 1 to every count, "
         "normalise to probabilities, and average -log p over the validation ids",
    solution=_unigram_solution,
    mistake=_unigram_from_validation,
)


# --- 2. the entropy rate of a Markov chain --------------------------------------------------------

def _entropy_rate_solution(transition: torch.Tensor, stationary: torch.Tensor) -> float:
    row_entropy = -(transition * transition.log()).sum(dim=1)  # H of the next token, per current token
    return (stationary * row_entropy).sum().item()  # weighted by how often each current token occurs


def _entropy_rate_unweighted(transition: torch.Tensor, stationary: torch.Tensor) -> float:
    return -(transition * transition.log()).sum(dim=1).mean().item()


def _check_entropy_rate(entropy_rate) -> str | None:
    chain = MarkovChain.random(vocab_size=6, order=1, sharpness=2.0, generator=torch.Generator().manual_seed(3))
    answer = entropy_rate(chain.transition.clone(), chain.stationary())
    return _number("the entropy rate", answer, chain.entropy_rate())


markov_entropy_rate = Exercise(
    title="the entropy rate of a Markov chain",
    checker=_check_entropy_rate,
    hint="H = sum over current tokens c of pi(c) * (-sum over next tokens x of P[c, x] log P[c, x]); "
         "some tokens are visited more often than others, so weight each row's entropy by pi",
    solution=_entropy_rate_solution,
    mistake=_entropy_rate_unweighted,
)


# --- 3. sampling temperature ----------------------------------------------------------------------

def _temperature_solution(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(logits / temperature, dim=-1)


def _temperature_multiplied(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(logits * temperature, dim=-1)


def _check_temperature(softmax_at) -> str | None:
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0, -3.0], dtype=torch.float64)
    for temperature in (1.0, 0.5, 2.0):
        answer = softmax_at(logits, temperature)
        if not isinstance(answer, torch.Tensor) or answer.shape != logits.shape:
            return f"at temperature {temperature}, expected a tensor of shape {tuple(logits.shape)}, got {answer!r}"
        expected = torch.softmax(logits / temperature, dim=-1)
        if not torch.allclose(answer.double(), expected, atol=1e-6):
            return (f"at temperature {temperature} the probabilities are {answer.double().numpy().round(3)}, "
                    f"expected {expected.numpy().round(3)}")
    return None


temperature_softmax = Exercise(
    title="sampling temperature",
    checker=_check_temperature,
    hint="divide the logits by the temperature before the softmax: a temperature below 1 makes the "
         "distribution sharper, above 1 flatter",
    solution=_temperature_solution,
    mistake=_temperature_multiplied,
)


# --- 4. a fair comparison of tokenizers: nats per character ---------------------------------------

def _per_character_solution(loss_per_token: float, tokens: int, characters: int) -> float:
    return loss_per_token * tokens / characters  # total nats over the text, shared out over its characters


def _per_character_inverted(loss_per_token: float, tokens: int, characters: int) -> float:
    return loss_per_token * characters / tokens


def _check_per_character(per_character) -> str | None:
    # 1000 characters: 1000 character tokens at 1.5 nats, or 400 BPE tokens at 3.5 nats each.
    problem = _number("a character model at 1.5 nats/token", per_character(1.5, 1000, 1000), 1.5)
    return problem or _number("a BPE model at 3.5 nats/token, 400 tokens for 1000 characters",
                              per_character(3.5, 400, 1000), 1.4)


nats_per_character = Exercise(
    title="nats per character",
    checker=_check_per_character,
    hint="the total surprise of the text is loss_per_token * tokens nats, whatever the tokenizer; divide it "
         "by the number of characters",
    solution=_per_character_solution,
    mistake=_per_character_inverted,
)
