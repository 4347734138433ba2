"""Chapter 01 exercises: what a linear probe trains, the compute of a pretraining run, the closest passage
to a question, and an experiment on the context a masked language model needs."""

from __future__ import annotations

from functools import lru_cache

import torch

from fmcourse import checkpoints, shipped
from fmcourse.data import clean_text, pydoc_text, train_val_split
from fmcourse.exercises import Exercise, WrongAnswer, number_problem, verdict
from fmcourse.models import Encoder

# --- 1. what a linear probe trains (a formula) -----------------------------------------------------


def _check_probe_parameters(fn) -> str | None:
    for dim, classes in ((384, 6), (96, 2), (768, 10), (5, 3)):
        probe = torch.nn.Linear(dim, classes)                    # what linear_probe fits on frozen features
        expected = sum(p.numel() for p in probe.parameters())
        problem = number_problem(
            f"for {dim} features and {classes} classes your count", fn(dim, classes), expected, rel=0, abs_tol=0.5,
            known=[(dim * classes, "that is the weight matrix only: each class also has a bias"),
                   (dim * classes + dim, "a bias per class, not per feature")])
        if problem:
            return problem
    return None


def probe_parameters_solution(dim, classes):
    return dim * classes + classes      # the weight matrix (classes, dim) and one bias per class


probe_parameters = Exercise(
    title="the numbers a linear probe trains",
    checker=_check_probe_parameters,
    hint="a linear probe is logits = W h + b on the frozen features h: W has one row per class and one column per "
         "feature, b one entry per class; the backbone's parameters are frozen and do not count",
    solution=probe_parameters_solution,
    mistake=lambda dim, classes: dim * classes,
    mistake_message="each class also has a bias",
    kind="formula",
)


# --- 2. the compute of a pretraining run (a value) ---------------------------------------------------

GPT3_PARAMETERS, GPT3_TOKENS = 175e9, 300e9


def _check_training_flops(answer) -> str | None:
    n, d = GPT3_PARAMETERS, GPT3_TOKENS
    return number_problem(
        "your FLOPs", answer, 6 * n * d,
        known=[(2 * n * d, "that is the forward pass alone (2 FLOPs per parameter per token); the backward pass "
                           "costs about twice the forward"),
               (4 * n * d, "that is the backward pass alone; add the forward pass"),
               (6 * n, "that is per token: multiply by the number of tokens")])


training_flops = Exercise(
    title="the compute of GPT-3's pretraining",
    checker=_check_training_flops,
    hint="each parameter costs a multiply and an add (2 FLOPs) per token in the forward pass and about twice that "
         "in the backward pass: about 6 FLOPs per parameter per token, times the tokens",
    solution=6 * GPT3_PARAMETERS * GPT3_TOKENS,
    mistake=2 * GPT3_PARAMETERS * GPT3_TOKENS,
    mistake_message="the forward pass alone",
    kind="value",
)


# --- 3. the closest passage to a question (code) -----------------------------------------------------


def _check_nearest(fn) -> str | None:
    g = torch.Generator().manual_seed(0)
    for n, d in ((6, 4), (50, 16), (200, 384)):
        directions = torch.randn(n, d, generator=g)
        lengths = torch.rand(n, 1, generator=g) * 4 + 0.1           # embeddings of very different lengths
        passages = directions * lengths
        question = torch.randn(d, generator=g) * 3
        cosine = (passages / passages.norm(dim=1, keepdim=True)) @ (question / question.norm())
        expected = int(cosine.argmax())
        got = fn(question.clone(), passages.clone())
        got = int(got.item() if isinstance(got, torch.Tensor) else got)
        if got != expected:
            if got == int((passages @ question).argmax()):
                return (f"for {n} passages your answer is passage {got}, the largest dot product; the most similar in "
                        f"direction is {expected}: normalise both to unit length first (cosine similarity)")
            if got == int(cosine.argmin()):
                return f"for {n} passages your answer is the least similar passage ({got}), not the most ({expected})"
            return f"for {n} passages your answer is passage {got}, the closest is {expected}"
    return None


def nearest_passage_solution(question, passages):
    q = question / question.norm()                                   # (D,)
    p = passages / passages.norm(dim=1, keepdim=True)                # (N, D)
    return int((p @ q).argmax())                                     # the largest cosine similarity


nearest_passage = Exercise(
    title="the closest passage to a question",
    checker=_check_nearest,
    hint="cosine similarity is the dot product of the two vectors divided by both lengths; divide every row of "
         "passages and the question by its norm, then take the argmax of passages @ question",
    solution=nearest_passage_solution,
    mistake=lambda question, passages: int((passages @ question).argmax()),
    mistake_message="normalise both to unit length",
)


# --- 4. an experiment: the context a masked language model needs -------------------------------------

BLANK_POSITIONS = {"middle": 32, "end": 63}
_WINDOW, _COUNT = 64, 400


@lru_cache
def _held_out_windows() -> torch.Tensor:
    encoder, tokenizer = _encoder()
    _, held_out = train_val_split(clean_text(pydoc_text()), val_fraction=0.1, seed=0)   # chapter 04's split
    ids = torch.tensor(tokenizer.encode(held_out))
    starts = torch.randint(0, len(ids) - _WINDOW, (_COUNT,), generator=torch.Generator().manual_seed(0))
    return torch.stack([ids[s:s + _WINDOW] for s in starts.tolist()])                   # (400, 64)


@lru_cache
def _encoder():
    return checkpoints.load(shipped.path("encoder_pydoc_char"), Encoder)


@lru_cache
def blank_accuracy(blank_at: str = "middle") -> float:
    """How often the shipped encoder's most likely character is the hidden one, for one blank in each of
    400 held-out windows of 64 characters: at position 32 (``"middle"``: 32 characters of context on the
    left, 31 on the right) or 63 (``"end"``: the left side only)."""
    if blank_at not in BLANK_POSITIONS:
        raise ValueError(f"blank_at must be one of {', '.join(map(repr, BLANK_POSITIONS))}, got {blank_at!r}")
    encoder, tokenizer = _encoder()
    windows, position = _held_out_windows(), BLANK_POSITIONS[blank_at]
    masked = windows.clone()
    masked[:, position] = tokenizer.specials["<mask>"]
    with torch.no_grad():
        logits = encoder(masked)[:, position]                                            # (400, V)
    logits[:, list(tokenizer.specials.values())] = -float("inf")      # a blank is text, never <mask> or <unk>
    return (logits.argmax(1) == windows[:, position]).double().mean().item()


def _check_blank(prediction, measured) -> str | None:
    if prediction not in ("lower", "higher"):
        raise WrongAnswer(f'the prediction should be "lower" or "higher", got {prediction!r}')
    return number_problem("your accuracy with the blank at the end", measured, blank_accuracy("end"),
                          known=[(blank_accuracy("middle"), "that is the accuracy with the blank in the middle; "
                                                            "set blank_at = \"end\" and run the cell again")])


def _blank_note(prediction, measured) -> str:
    truth = "lower" if blank_accuracy("end") < blank_accuracy("middle") else "higher"
    return (f"{verdict(prediction, truth)}: {blank_accuracy('middle'):.1%} in the middle, {blank_accuracy('end'):.1%} "
            f"at the end. The encoder was pretrained to use both sides of a blank; with the right side gone it is "
            f"left with what a GPT sees, and the characters after a blank say much about it (how a word ends)")


blank_context_experiment = Exercise(
    title="experiment: a blank without its right-hand side",
    checker=_check_blank,
    hint='in the cell, set blank_at = "end" and copy the accuracy it prints',
    solution=lambda: ("lower", blank_accuracy("end")),
    mistake=lambda: ("higher", blank_accuracy("middle")),        # measured before changing the position
    mistake_message="the blank in the middle",
    kind="experiment",
    parts=2,
    lazy=True,
    note=_blank_note,
)
