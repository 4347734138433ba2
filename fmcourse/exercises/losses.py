"""Exercises of chapter 02, losses and backpropagation. Each answer is checked against torch's autograd,
``F.cross_entropy`` or an experiment the check runs itself."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fmcourse.exercises import Exercise, WrongAnswer, number_problem, tensor_problem, verdict

# --- 1. backpropagation through a tanh layer ------------------------------------------------------


def _linear_gradients_solution(x, W, b, y):
    n, k = y.shape
    y_hat = torch.tanh(x @ W.T + b)  # (N, K)
    d_y_hat = 2 * (y_hat - y) / (n * k)  # dL/dy_hat, shape (N, K)
    d_z = d_y_hat * (1 - y_hat**2)  # through tanh: tanh'(z) = 1 - tanh(z)^2
    return d_z.T @ x, d_z.sum(0)  # dL/dW (K, D), dL/db (K,)


def _linear_gradients_transposed(x, W, b, y):
    n, k = y.shape
    y_hat = torch.tanh(x @ W.T + b)
    d_z = 2 * (y_hat - y) / (n * k) * (1 - y_hat**2)
    return x.T @ d_z, d_z.sum(0)  # (D, K): the shape of W.T, not of W


def _check_linear_gradients(gradients) -> str | None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(10, 3, generator=g, dtype=torch.float64), torch.randn(10, 4, generator=g, dtype=torch.float64)
    W = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    expected_W, expected_b = torch.autograd.grad(F.mse_loss(torch.tanh(x @ W.T + b), y), (W, b))
    answer = gradients(x, W.detach(), b.detach(), y)
    if not isinstance(answer, tuple) or len(answer) != 2:
        return "return two tensors: (dL/dW, dL/db)"
    problem = tensor_problem("dL/dW", answer[0], expected_W,
                             factor_means="check the factor 2 and the mean over all N*K entries")
    if problem and "swapped" in problem:
        return problem + " (a gradient has the shape of its parameter: W is (K, D), so dL/dW = δᵀ x)"
    return problem or tensor_problem("dL/db", answer[1], expected_b,
                                     factor_means="check the factor 2 and the mean over all N*K entries")


linear_layer_gradients = Exercise(
    title="backpropagation through a tanh layer",
    checker=_check_linear_gradients,
    hint="dL/dy_hat = 2 (y_hat - y) / (N K), shape (N, K); through tanh, δ = dL/dz = dL/dy_hat * (1 - y_hat²); "
         "then dL/dW = δᵀ x and dL/db = δ summed over N",
    solution=_linear_gradients_solution,
    mistake=_linear_gradients_transposed,
    mistake_message="two axes are swapped",
)


# --- 2. the gradient of cross-entropy with label smoothing (a formula) -----------------------------


def _smoothed_gradient_solution(logits: torch.Tensor, targets: torch.Tensor, epsilon: float) -> torch.Tensor:
    n, c = logits.shape
    wanted = (1 - epsilon) * F.one_hot(targets, c).to(logits.dtype) + epsilon / c  # the smoothed target
    return (torch.softmax(logits, dim=-1) - wanted) / n


def _smoothed_gradient_without_mean(logits: torch.Tensor, targets: torch.Tensor, epsilon: float) -> torch.Tensor:
    c = logits.shape[-1]
    wanted = (1 - epsilon) * F.one_hot(targets, c).to(logits.dtype) + epsilon / c
    return torch.softmax(logits, dim=-1) - wanted


def _check_smoothed_gradient(gradient) -> str | None:
    g = torch.Generator().manual_seed(1)
    for n, c, epsilon in ((8, 5, 0.1), (3, 7, 0.3), (6, 4, 0.0)):
        logits = torch.randn(n, c, generator=g, dtype=torch.float64, requires_grad=True)
        targets = torch.randint(0, c, (n,), generator=g)
        loss = F.cross_entropy(logits, targets, label_smoothing=epsilon)
        (expected,) = torch.autograd.grad(loss, logits)
        answer = gradient(logits.detach(), targets, epsilon)
        problem = tensor_problem(f"your gradient (N={n}, C={c}, ε={epsilon})", answer, expected,
                                 factor_means=f"the loss is a mean over the N = {n} examples, so divide by N")
        if problem:
            if epsilon > 0 and isinstance(answer, torch.Tensor) and answer.shape == expected.shape:
                plain = (torch.softmax(logits.detach(), -1) - F.one_hot(targets, c)) / n
                if torch.allclose(answer.double(), plain, atol=1e-9):
                    return problem + ": that is the gradient without smoothing; the target is the smoothed one"
            return problem
    return None


smoothed_cross_entropy_gradient = Exercise(
    title="the gradient of cross-entropy with label smoothing",
    checker=_check_smoothed_gradient,
    hint="the loss is the cross-entropy between the smoothed target q = (1-ε) onehot(y) + ε/C and softmax(z); "
         "as for a one-hot target, dℓ/dz = softmax(z) - q per example, and the mean divides by N",
    solution=_smoothed_gradient_solution,
    mistake=_smoothed_gradient_without_mean,
    mistake_message="divide by N",
    kind="formula",
)


# --- 3. the lowest loss label smoothing allows (a value) -------------------------------------------

SMOOTHING_CLASSES, SMOOTHING_EPSILON = 10, 0.1


def _lowest_smoothed_loss() -> float:
    c, epsilon = SMOOTHING_CLASSES, SMOOTHING_EPSILON
    right, other = 1 - epsilon + epsilon / c, epsilon / c  # the smoothed target's probabilities
    return -right * math.log(right) - (c - 1) * other * math.log(other)  # its entropy


def _check_lowest_smoothed_loss(value) -> str | None:
    c = SMOOTHING_CLASSES
    return number_problem(
        "the lowest loss", value, _lowest_smoothed_loss(),
        known=[(0.0, "with label smoothing the target is not one-hot, so the loss cannot reach 0: "
                              "its minimum is reached when the prediction equals the smoothed target"),
               (math.log(c), "that is the loss of a uniform prediction, where training starts"),
               (_lowest_smoothed_loss() / math.log(2), "that is in bits; the course measures nats (natural log)")],
    )


lowest_smoothed_loss = Exercise(
    title="the lowest loss with label smoothing",
    checker=_check_lowest_smoothed_loss,
    hint="the cross-entropy H(q, p) = H(q) + KL(q || p) is smallest when p = q; so compute the entropy "
         "-Σ q log q of q = (1-ε) onehot + ε/C: one class gets 1-ε+ε/C, each of the other C-1 gets ε/C",
    solution=_lowest_smoothed_loss(),
    mistake=0.0,
    mistake_message="cannot reach 0",
    kind="value",
)


# --- 4. an experiment: a larger learning rate in a valley ------------------------------------------

VALLEY_START, VALLEY_STEPS = (2.0, 1.0), 50
VALLEY_LR, VALLEY_BASELINE_LR = 0.038, 0.02


def valley(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The quadratic loss w² + 25 b²: curvatures 2 and 50, so 2/λ_max = 0.04 (a long, narrow valley)."""
    return w**2 + 25 * b**2


def valley_descent(lr: float, steps: int = VALLEY_STEPS, start: tuple[float, float] = VALLEY_START) -> float:
    """The loss of ``valley`` after ``steps`` steps of gradient descent at ``lr`` from ``start``."""
    w, b = (torch.tensor(v, dtype=torch.float64) for v in start)
    for _ in range(steps):
        w, b = w - lr * 2 * w, b - lr * 50 * b  # the gradient of w² + 25 b² is (2w, 50b)
    return valley(w, b).item()


def _check_valley(prediction, measured) -> str | None:
    if prediction not in ("lower", "higher"):
        raise WrongAnswer(f'the prediction should be "lower" or "higher", got {prediction!r}')
    truth = valley_descent(VALLEY_LR)
    return number_problem(
        f"your loss after {VALLEY_STEPS} steps at lr = {VALLEY_LR}", measured, truth,
        known=[(valley_descent(VALLEY_BASELINE_LR), f"that is the loss at the baseline's lr = {VALLEY_BASELINE_LR}; "
                                                    f"run it again at lr = {VALLEY_LR}"),
               (valley(*(torch.tensor(v) for v in VALLEY_START)).item(), "that is the loss at the start")],
        abs_tol=1e-12,
    )


def _valley_note(prediction, measured) -> str:
    truth = "lower" if valley_descent(VALLEY_LR) < valley_descent(VALLEY_BASELINE_LR) else "higher"
    return (f"{verdict(prediction, truth)}: at lr = {VALLEY_LR} the steep direction zig-zags (factor |1 - 50·lr| = 0.9 a step) but the "
            f"flat one, which sets the pace, shrinks by 1 - 2·lr = 0.924 a step instead of 0.96, so the loss "
            f"ends {truth} than the baseline's {valley_descent(VALLEY_BASELINE_LR):.3g}")


def _valley_solution():
    return "lower", valley_descent(0.038)


def _valley_mistake():
    return "higher", valley_descent(0.02)  # measured at the baseline's learning rate


learning_rate_experiment = Exercise(
    title="experiment: a larger learning rate in a narrow valley",
    checker=_check_valley,
    hint=f"set lr = {VALLEY_LR} in the cell, run it, and copy the loss it prints",
    solution=_valley_solution,
    mistake=_valley_mistake,
    mistake_message="the baseline's lr",
    kind="experiment",
    parts=2,
    lazy=True,
    note=_valley_note,
)

