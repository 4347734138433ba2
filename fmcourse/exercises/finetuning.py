"""Chapter 06 exercises: LoRA's trainable numbers in a whole GPT, balanced accuracy, the standard error of
a test accuracy, and an experiment on temperature scaling."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from fmcourse.exercises import Exercise, WrongAnswer, number_problem, verdict
from fmcourse.finetune import add_lora, count_parameters
from fmcourse.models import GPT, GPTConfig

# --- 1. LoRA's trainable numbers in a whole GPT (a formula) -----------------------------------------


def _check_lora_gpt(fn) -> str | None:
    for n_layer, d_model, rank in ((1, 16, 2), (2, 32, 4), (3, 24, 1)):
        model = GPT(GPTConfig(vocab_size=7, context_length=8, n_layer=n_layer, n_head=2, d_model=d_model))
        add_lora(model, rank=rank)  # the default targets: qkv, out, fc, proj of every block
        expected = count_parameters(model)
        square = 8 * n_layer * rank * d_model  # every adapted layer taken as d -> d
        problem = number_problem(
            f"for n_layer={n_layer}, d_model={d_model}, rank={rank} your count", fn(n_layer, d_model, rank), expected,
            rel=0, abs_tol=0.5,
            known=[(square, "that counts every adapted layer as d -> d; qkv is d -> 3d, fc is d -> 4d and proj "
                            "4d -> d"),
                   (expected + n_layer * 12 * d_model * d_model, "the frozen weights do not count, only A and B")])
        if problem:
            return problem
    return None


def lora_gpt_parameters_solution(n_layer, d_model, rank):
    d = d_model
    per_block = (rank * (d + 3 * d)      # qkv: d -> 3d
                 + rank * (d + d)        # out: d -> d
                 + rank * (d + 4 * d)    # fc: d -> 4d
                 + rank * (4 * d + d))   # proj: 4d -> d
    return n_layer * per_block           # = 16 · n_layer · rank · d_model


lora_gpt_parameters = Exercise(
    title="LoRA's trainable numbers in a whole GPT",
    checker=_check_lora_gpt,
    hint="add_lora adapts four layers per block: qkv (d -> 3d), out (d -> d), fc (d -> 4d), proj (4d -> d); an "
         "adapter on a d_in -> d_out layer trains r (d_in + d_out) numbers",
    solution=lora_gpt_parameters_solution,
    mistake=lambda n_layer, d_model, rank: 8 * n_layer * rank * d_model,
    mistake_message="qkv is d -> 3d",
    kind="formula",
)


# --- 2. balanced accuracy from a confusion matrix ---------------------------------------------------


def _check_balanced(fn) -> str | None:
    cases = [torch.tensor([[50, 0, 0], [10, 0, 0], [0, 5, 40]]),  # a classifier that ignores the small class
             torch.tensor([[90, 10], [30, 20]])]
    g = torch.Generator().manual_seed(0)
    cases += [torch.randint(0, 20, (c, c), generator=g) + torch.diag(torch.randint(10, 60, (c,), generator=g))
              for c in (4, 7)]
    for M in cases:
        Md = M.double()
        expected = (Md.diag() / Md.sum(1)).mean().item()  # recall of each true class (row), averaged
        problem = number_problem(
            f"for the confusion matrix {M.tolist()} your balanced accuracy", fn(M.clone()), expected, rel=1e-6,
            known=[((Md.diag() / Md.sum(0).clamp_min(1)).mean().item(),
                    "you divided by the column sums (the predictions): rows are the true classes, so divide "
                    "each diagonal entry by its row sum (wrong axis)"),
                   ((Md.diag().sum() / Md.sum()).item(), "that is the plain accuracy; average the per-class recalls")])
        if problem:
            return problem
    return None


def balanced_accuracy_solution(M):
    M = M.double()
    recall = M.diag() / M.sum(dim=1)       # row i: the examples whose true class is i
    return recall.mean().item()            # every class counts the same, however small


balanced_accuracy = Exercise(
    title="balanced accuracy from a confusion matrix",
    checker=_check_balanced,
    hint="rows of the confusion matrix are true classes and columns predictions; the recall of class i is "
         "M[i, i] / (sum of row i); average the recalls",
    solution=balanced_accuracy_solution,
    mistake=lambda M: (M.double().diag() / M.double().sum(0).clamp_min(1)).mean().item(),
    mistake_message="wrong axis",
)


# --- 3. how many test examples an accuracy needs (a value) --------------------------------------------
# Section 6 draws binomial error bars, sqrt(p (1 - p) / n); the exercise turns the formula around.

TEST_ACCURACY, TARGET_ERROR = 0.96, 0.005


def _test_size() -> float:
    return TEST_ACCURACY * (1 - TEST_ACCURACY) / TARGET_ERROR ** 2  # solve sqrt(p (1 - p) / n) = e for n


def _check_test_size(value) -> str | None:
    return number_problem(
        "your number of test examples", value, _test_size(),
        known=[(TEST_ACCURACY * (1 - TEST_ACCURACY) / TARGET_ERROR, "the error is a square root: square it, "
                                                                    "n = p (1 - p) / e**2"),
               (math.sqrt(TEST_ACCURACY * (1 - TEST_ACCURACY)) / TARGET_ERROR, "you solved sqrt(p (1 - p)) / n = e; "
                                                                              "the root covers n too: n = p (1 - p) / e**2"),
               (0.25 / TARGET_ERROR ** 2, "that is the worst case p = 0.5; use p = 0.96"),
               (TEST_ACCURACY * (1 - TEST_ACCURACY) / 0.5 ** 2, "0.5 points is 0.005 as a fraction, not 0.5")],
    )


accuracy_test_size = Exercise(
    title="how many test examples an accuracy needs",
    checker=_check_test_size,
    hint="the standard error of an accuracy p measured on n examples is sqrt(p (1 - p) / n); set it equal to the "
         "target and solve for n",
    solution=_test_size(),
    mistake=TEST_ACCURACY * (1 - TEST_ACCURACY) / TARGET_ERROR,
    mistake_message="square it",
    kind="value",
)


# --- 4. an experiment: temperature scaling ----------------------------------------------------------

SCALING_TEMPERATURE = 2.0


def overconfident_logits(n: int = 2000, classes: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation logits (n, classes) of an overconfident model, and labels (n,) drawn from the truth.

    The labels follow softmax(z); the model outputs 2.5 z, sharper than the truth.
    """
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, classes, generator=g, dtype=torch.float64) * 1.5
    labels = torch.multinomial(torch.softmax(z, dim=1), 1, generator=g).squeeze(1)
    return 2.5 * z, labels


@lru_cache
def scaled_nll(temperature: float) -> float:
    """Validation negative log-likelihood (nats) of ``overconfident_logits`` divided by ``temperature``."""
    logits, labels = overconfident_logits()
    return F.cross_entropy(logits / temperature, labels).item()


def _check_scaling(prediction, measured) -> str | None:
    if prediction not in ("lower", "higher"):
        raise WrongAnswer(f'the prediction should be "lower" or "higher", got {prediction!r}')
    return number_problem(
        f"your NLL at temperature {SCALING_TEMPERATURE:g}", measured, scaled_nll(SCALING_TEMPERATURE),
        known=[(scaled_nll(1.0), f"that is the NLL at temperature 1; divide the logits by {SCALING_TEMPERATURE:g}"),
               (scaled_nll(1 / SCALING_TEMPERATURE), "you multiplied the logits by the temperature; divide them")],
    )


def _scaling_note(prediction, measured) -> str:
    truth = "lower" if scaled_nll(SCALING_TEMPERATURE) < scaled_nll(1.0) else "higher"
    return (f"{verdict(prediction, truth)}: {scaled_nll(1.0):.3f} → {scaled_nll(SCALING_TEMPERATURE):.3f} nats. An overconfident model "
            f"pays heavily for its confident mistakes; dividing its logits by T > 1 softens every prediction "
            f"without changing a single argmax, so the accuracy stays the same while the NLL falls")


temperature_scaling_experiment = Exercise(
    title="experiment: temperature scaling",
    checker=_check_scaling,
    hint=f"in the cell, set the temperature to {SCALING_TEMPERATURE:g} and copy the NLL it prints",
    solution=lambda: ("lower", scaled_nll(SCALING_TEMPERATURE)),
    mistake=lambda: ("higher", scaled_nll(1.0)),  # measured before changing the temperature
    mistake_message="the NLL at temperature 1",
    kind="experiment",
    parts=2,
    lazy=True,
    note=_scaling_note,
)
