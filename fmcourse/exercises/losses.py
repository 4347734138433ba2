"""Exercises of chapter 02, losses and backpropagation. Each answer is checked against torch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fmcourse.exercises import Exercise


def _close(name: str, answer, expected: torch.Tensor, hint_on_ratio: str | None = None) -> str | None:
    """What is wrong with a tensor ``answer`` that should equal ``expected``, or None."""
    if answer is None:
        return f"{name} is None: finish the function so that it returns a tensor"
    if not isinstance(answer, torch.Tensor):
        return f"{name} should be a tensor, got {type(answer).__name__}"
    if answer.shape != expected.shape:
        return f"{name} has shape {tuple(answer.shape)}, expected {tuple(expected.shape)}"
    if not torch.isfinite(answer).all():
        return f"{name} contains nan or inf"
    if torch.allclose(answer.double(), expected, rtol=1e-4, atol=1e-6):
        return None
    if hint_on_ratio is not None:
        ratio = (answer.double() / expected).median().item()
        if abs(ratio - round(ratio)) < 1e-3 and round(ratio) > 1:
            return f"{name} is {round(ratio)} times too large: {hint_on_ratio}"
    return f"{name} differs from the correct values by up to {(answer.double() - expected).abs().max().item():.3g}"


# --- 1. a softmax that does not overflow ----------------------------------------------------------

def _softmax_solution(z: torch.Tensor) -> torch.Tensor:
    shifted = z - z.max(dim=-1, keepdim=True).values  # the largest logit becomes 0: exp cannot overflow
    e = shifted.exp()
    return e / e.sum(dim=-1, keepdim=True)


def _softmax_naive(z: torch.Tensor) -> torch.Tensor:
    return z.exp() / z.exp().sum(dim=-1, keepdim=True)


def _check_softmax(softmax) -> str | None:
    g = torch.Generator().manual_seed(0)
    ordinary = torch.randn(6, 5, generator=g, dtype=torch.float64)
    problem = _close("softmax of ordinary logits", softmax(ordinary), torch.softmax(ordinary, -1))
    if problem:
        return problem
    huge = torch.tensor([[1000.0, 0.0, -1000.0], [800.0, 801.0, 802.0]])
    result = softmax(huge)
    if isinstance(result, torch.Tensor) and not torch.isfinite(result).all():
        return "logits like 1000 give nan or inf: exp(1000) overflows"
    return _close("softmax of logits like 1000", result.double(), torch.softmax(huge.double(), -1))


stable_softmax = Exercise(
    title="a softmax that does not overflow",
    checker=_check_softmax,
    hint="softmax(z) = softmax(z - c) for any constant c; choose c = max(z) along the last dimension",
    solution=_softmax_solution,
    mistake=_softmax_naive,
)


# --- 2. the gradient of cross-entropy -------------------------------------------------------------

def _ce_gradient_solution(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    n, c = logits.shape
    return (torch.softmax(logits, dim=-1) - F.one_hot(targets, c).to(logits.dtype)) / n


def _ce_gradient_without_mean(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=-1) - F.one_hot(targets, logits.shape[-1]).to(logits.dtype)


def _check_ce_gradient(gradient) -> str | None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 5, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 5, (8,), generator=g)
    (expected,) = torch.autograd.grad(F.cross_entropy(logits, targets), logits)
    return _close("your gradient", gradient(logits.detach(), targets), expected,
                  hint_on_ratio="the loss is a mean over N = 8 examples, so each row is divided by N")


cross_entropy_gradient = Exercise(
    title="the gradient of the mean cross-entropy",
    checker=_check_ce_gradient,
    hint="for one example dL/dz = softmax(z) - onehot(y); the mean over N examples divides each row by N",
    solution=_ce_gradient_solution,
    mistake=_ce_gradient_without_mean,
)


# --- 3. backpropagation through a linear layer ----------------------------------------------------

def _linear_gradients_solution(x, W, b, y):
    n, k = y.shape
    residual = 2 * (x @ W.T + b - y) / (n * k)  # dL/dy_hat, shape (N, K)
    return residual.T @ x, residual.sum(0)  # dL/dW (K, D), dL/db (K,)


def _linear_gradients_transposed(x, W, b, y):
    n, k = y.shape
    residual = 2 * (x @ W.T + b - y) / (n * k)
    return x.T @ residual, residual.sum(0)  # (D, K): the shape of W.T, not of W


def _check_linear_gradients(gradients) -> str | None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(10, 3, generator=g, dtype=torch.float64), torch.randn(10, 4, generator=g, dtype=torch.float64)
    W = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    expected_W, expected_b = torch.autograd.grad(F.mse_loss(x @ W.T + b, y), (W, b))
    answer = gradients(x, W.detach(), b.detach(), y)
    if not isinstance(answer, tuple) or len(answer) != 2:
        return "return two tensors: (dL/dW, dL/db)"
    problem = _close("dL/dW", answer[0], expected_W, hint_on_ratio="check the factor 2 and the mean over N*K entries")
    if problem and isinstance(answer[0], torch.Tensor) and answer[0].shape == expected_W.T.shape:
        return problem + " (a gradient has the shape of its parameter: W is (K, D))"
    return problem or _close("dL/db", answer[1], expected_b)


linear_layer_gradients = Exercise(
    title="backpropagation through a linear layer",
    checker=_check_linear_gradients,
    hint="with r = dL/dy_hat = 2 (y_hat - y) / (N K), shape (N, K): dL/dW = r^T x and dL/db = r summed over N",
    solution=_linear_gradients_solution,
    mistake=_linear_gradients_transposed,
)


# --- 4. the loss an untrained language model starts at ---------------------------------------------

GPT2_VOCABULARY = 50257


def _check_initial_loss(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"answer with a number, got {type(value).__name__}"
    if abs(value - math.log(GPT2_VOCABULARY)) < 1e-3:
        return None
    if abs(value - 1 / GPT2_VOCABULARY) < 1e-6:
        return f"1/{GPT2_VOCABULARY} is the probability of the right token; the loss is minus its logarithm"
    if abs(value - math.log10(GPT2_VOCABULARY)) < 1e-3:
        return "that is a base-10 logarithm; cross-entropy uses the natural logarithm"
    return f"{value} is not it; the loss is -log(probability of the right token)"


initial_loss = Exercise(
    title="the first loss of an untrained language model",
    checker=_check_initial_loss,
    hint="an untrained model gives each of the C tokens about the same probability 1/C; the loss is -log of that",
    solution=math.log(GPT2_VOCABULARY),
    mistake=1 / GPT2_VOCABULARY,
)
