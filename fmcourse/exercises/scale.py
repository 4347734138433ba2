"""Exercises of chapter 11, scale and efficiency. Each answer is checked against a reference: the
arithmetic of 6ND, a least-squares line fitted by torch, the full-batch gradient from autograd, or
an experiment the check runs itself."""

from __future__ import annotations

from functools import lru_cache

import torch

from fmcourse import checkpoints, shipped
from fmcourse.compress import model_bytes, quantize
from fmcourse.exercises import Exercise, WrongAnswer, number_problem, tensor_problem, verdict
from fmcourse.models import GPT

# --- 1. training FLOPs (a value) ----------------------------------------------------------------------

PARAMS, TOKENS = 1.3e9, 26e9  # a GPT-3 XL-sized model trained on 20 tokens a parameter


def _check_flops(value) -> str | None:
    return number_problem(
        "your FLOPs", value, 6 * PARAMS * TOKENS,
        known=[(2 * PARAMS * TOKENS, "that is the forward pass only (2 FLOPs a parameter a token); the backward "
                                     "pass costs twice the forward"),
               (PARAMS * TOKENS, "that counts one operation per parameter per token; a multiply-add is 2 FLOPs, and "
                                 "training does a forward and a backward pass")],
    )


training_flops = Exercise(
    title="training FLOPs",
    checker=_check_flops,
    hint="C = 6 N D: 2 FLOPs per parameter per token forward, 4 backward",
    solution=6 * PARAMS * TOKENS,
    mistake=2 * PARAMS * TOKENS,
    mistake_message="forward pass only",
    kind="value",
)


# --- 2. the exponent of a power law, given its floor (a formula) ----------------------------------------


def _alpha_solution(N: torch.Tensor, loss: torch.Tensor, floor: float) -> float:
    x, y = N.double().log(), (loss.double() - floor).log()  # a straight line: log(L - E) = log A - alpha log N
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    return -slope.item()


def _alpha_without_floor(N: torch.Tensor, loss: torch.Tensor, floor: float) -> float:
    return _alpha_solution(N, loss, 0.0)


def _check_alpha(fn) -> str | None:
    g = torch.Generator().manual_seed(0)
    for alpha, floor in ((0.3, 1.2), (0.7, 0.5)):
        N = torch.logspace(3, 6, 8, dtype=torch.float64)
        loss = floor + 40.0 * N**-alpha * torch.exp(0.01 * torch.randn(8, generator=g, dtype=torch.float64))
        X = torch.stack([torch.ones(8, dtype=torch.float64), N.log()], 1)
        expected = -torch.linalg.lstsq(X, (loss - floor).log().unsqueeze(1)).solution[1].item()
        problem = number_problem(
            f"your exponent (true law alpha={alpha}, floor {floor})", fn(N.clone(), loss.clone(), floor), expected,
            rel=1e-4,
            known=[(_alpha_without_floor(N, loss, floor), "the floor was not subtracted: the law is a straight line "
                                                          "in log(L - E), not in log L"),
                   (-expected, "the sign is flipped: alpha is minus the slope")])
        if problem:
            return problem
    return None


power_law_exponent = Exercise(
    title="the exponent of a power law",
    checker=_check_alpha,
    hint="take x = log N and y = log(loss - floor); the least-squares slope is cov(x, y) / var(x); alpha is minus it",
    solution=_alpha_solution,
    mistake=_alpha_without_floor,
    mistake_message="floor was not subtracted",
    kind="formula",
)


# --- 3. all-reduce by hand on two ranks ----------------------------------------------------------------


def _all_reduce_solution(grads0: list[torch.Tensor], grads1: list[torch.Tensor]) -> list[torch.Tensor]:
    return [(a + b) / 2 for a, b in zip(grads0, grads1)]


def _all_reduce_sum(grads0: list[torch.Tensor], grads1: list[torch.Tensor]) -> list[torch.Tensor]:
    return [a + b for a, b in zip(grads0, grads1)]


def _rank_gradients(model: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]


def _check_all_reduce(fn) -> str | None:
    g = torch.Generator().manual_seed(1)
    model = torch.nn.Linear(3, 2).double()
    x, y = torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64)
    full = _rank_gradients(model, x, y)  # one process, the whole batch
    ranks = [_rank_gradients(model, x[:4], y[:4]), _rank_gradients(model, x[4:], y[4:])]
    got = fn([t.clone() for t in ranks[0]], [t.clone() for t in ranks[1]])
    if not isinstance(got, (list, tuple)) or len(got) != len(full):
        raise WrongAnswer(f"return a list of {len(full)} tensors (one per parameter: weight, bias)")
    for name, answer, expected in zip(("weight", "bias"), got, full):
        if problem := tensor_problem(f"the reduced {name} gradient", answer, expected,
                                     factor_means="the gradients were summed; DDP averages them over the ranks"):
            return problem
    return None


all_reduce_by_hand = Exercise(
    title="all-reduce by hand on two ranks",
    checker=_check_all_reduce,
    hint="each rank's loss is a mean over its own half of the batch: average the two ranks' gradients, "
         "parameter by parameter",
    solution=_all_reduce_solution,
    mistake=_all_reduce_sum,
    mistake_message="summed",
)


# --- 4. an experiment: how much does int8 shrink the file? ---------------------------------------------


@lru_cache
def quantized_ratio() -> float:
    """Bytes of the shipped GPT's saved weights in float32 over those after ``quantize``."""
    model, _ = checkpoints.load(shipped.path("gpt_pydoc_char"), GPT)
    return model_bytes(model) / model_bytes(quantize(model))


def _check_ratio(prediction, measured) -> str | None:
    if prediction not in ("4x", "less than 4x", "more than 4x"):
        raise WrongAnswer(f'the prediction should be "4x", "less than 4x" or "more than 4x", got {prediction!r}')
    return number_problem("your measured ratio", measured, quantized_ratio(),
                          known=[(4.0, "4 is the ratio of the bytes per weight (4 for float32, 1 for int8); measure "
                                       "the files with model_bytes")])


def _ratio_note(prediction, measured) -> str:
    ratio = quantized_ratio()
    truth = "less than 4x" if ratio < 3.9 else "more than 4x" if ratio > 4.1 else "4x"
    return (f"{verdict(prediction, truth)}: {ratio:.2f}x. Only the Linear layers become int8; the token and "
            f"position embeddings and the LayerNorms stay float32, and the output head, tied to the embedding in "
            f"float32, becomes an int8 copy of its own, so the embedding matrix is stored twice")


quantization_experiment = Exercise(
    title="experiment: how much int8 shrinks the file",
    checker=_check_ratio,
    hint="call model_bytes(teacher) / model_bytes(quantize(teacher)) and copy the number",
    solution=lambda: ("less than 4x", quantized_ratio()),
    mistake=lambda: ("4x", 4.0),
    mistake_message="bytes per weight",
    kind="experiment",
    parts=2,
    lazy=True,
    note=_ratio_note,
)
