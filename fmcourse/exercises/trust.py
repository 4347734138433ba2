"""Chapter 12 exercises: integrated gradients and their completeness, the WEAT effect size, DP-SGD's
clip-and-noise for one batch, and an experiment on how the privacy budget grows with training."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from fmcourse.exercises import Exercise, WrongAnswer, number_problem, tensor_problem, verdict
from fmcourse.interpret import integrated_gradients as _integrated_gradients
from fmcourse.privacy import epsilon as _epsilon

# --- 1. integrated gradients (code) -----------------------------------------------------------------


class _Scalar(nn.Module):
    """Wraps ``f: (K, D) -> (K,)`` as a one-output classifier ``(K, D) -> (K, 1)``."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)[:, None]


def _test_functions():
    g = torch.Generator().manual_seed(0)
    w1, w2 = torch.randn(5, 8, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)
    yield lambda x: torch.tanh(x @ w1) @ w2
    yield lambda x: (x ** 2).sum(1) + x[:, 0] * x[:, 1]
    yield lambda x: torch.sigmoid(x @ w1[:, 0] * 3)


def _check_ig(fn) -> str | None:
    g = torch.Generator().manual_seed(1)
    for f in _test_functions():
        x, baseline = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
        expected = _integrated_gradients(_Scalar(f), x[None], 0, baseline=baseline[None], steps=50)[0]
        answer = fn(f, x.clone(), baseline.clone(), 50)
        problem = tensor_problem("your attributions", answer, expected, atol=1e-8)
        if problem is None:
            continue
        mean_gradient = expected / (x - baseline)
        if isinstance(answer, torch.Tensor) and answer.shape == expected.shape and torch.allclose(
                answer.double(), mean_gradient, atol=1e-8):
            return "these are the average gradients along the path: multiply them by (x - baseline)"
        return problem
    return None


def integrated_gradients_solution(f, x, baseline, steps):
    alphas = (torch.arange(steps, dtype=x.dtype) + 0.5) / steps           # midpoints of [0, 1]
    path = (baseline + alphas[:, None] * (x - baseline)).requires_grad_(True)   # (steps, D)
    (gradients,) = torch.autograd.grad(f(path).sum(), path)                # each row: grad of f at a point
    return (x - baseline) * gradients.mean(0)


def _mean_gradient_mistake(f, x, baseline, steps):
    return integrated_gradients_solution(f, x, baseline, steps) / (x - baseline)


integrated_gradients = Exercise(
    title="integrated gradients",
    checker=_check_ig,
    hint="points baseline + a (x - baseline) at the midpoints a = (k + 1/2) / steps; the gradient of f at all "
         "of them in one call (torch.autograd.grad of f(path).sum()); average over the points and multiply by "
         "(x - baseline)",
    solution=integrated_gradients_solution,
    mistake=_mean_gradient_mistake,
    mistake_message="multiply them by (x - baseline)",
)


# --- 2. the WEAT effect size (a formula) ------------------------------------------------------------


def _check_effect_size(fn) -> str | None:
    g = torch.Generator().manual_seed(2)
    for n in (3, 8, 20):
        sx, sy = torch.randn(n, generator=g, dtype=torch.float64) + 0.5, torch.randn(n, generator=g, dtype=torch.float64)
        both = torch.cat([sx, sy])
        expected = float((sx.mean() - sy.mean()) / both.std())
        pooled = float((sx.mean() - sy.mean()) / ((sx.var() + sy.var()) / 2).sqrt())
        problem = number_problem(
            f"for {n} words a side your effect size", fn(sx.clone(), sy.clone()), expected, rel=1e-6,
            known=[(float((sx.mean() - sy.mean()) / both.std(unbiased=False)),
                    "you divided by the population standard deviation; WEAT uses the sample one, with n - 1"),
                   (pooled, "that divides by the pooled within-group deviation (Cohen's usual d); WEAT divides by "
                            "the standard deviation of all the target words' scores together"),
                   (float(sx.sum() - sy.sum()), "that is the test statistic S; the effect size compares means and "
                                                "divides by a standard deviation")])
        if problem:
            return problem
    return None


def effect_size_solution(sx, sy):
    both = torch.cat([sx, sy])                        # the scores s(w) of all target words
    return ((sx.mean() - sy.mean()) / both.std()).item()   # std with n - 1 (torch's default)


effect_size = Exercise(
    title="the WEAT effect size",
    checker=_check_effect_size,
    hint="(mean of s over X - mean of s over Y) / (standard deviation of s over X and Y together, with n - 1)",
    solution=effect_size_solution,
    mistake=lambda sx, sy: ((sx.mean() - sy.mean()) / torch.cat([sx, sy]).std(unbiased=False)).item(),
    mistake_message="n - 1",
    kind="formula",
)


# --- 3. clip and noise for one batch (code) ---------------------------------------------------------


def _private_sum(grads, clip_norm, noise_multiplier, noise):
    norms = grads.norm(dim=1, keepdim=True)                       # (B, 1): each example's norm
    clipped = grads * (clip_norm / norms).clamp(max=1.0)          # no example longer than C
    return clipped.sum(0) + noise_multiplier * clip_norm * noise  # noise of standard deviation sigma C


def _check_private_sum(fn) -> str | None:
    g = torch.Generator().manual_seed(3)
    for b, d, c, sigma in ((4, 3, 1.0, 1.0), (16, 10, 0.5, 2.0), (9, 6, 3.0, 0.7)):
        grads = torch.randn(b, d, generator=g, dtype=torch.float64) * torch.rand(b, 1, generator=g, dtype=torch.float64) * 4
        noise = torch.randn(d, generator=g, dtype=torch.float64)
        expected = _private_sum(grads, c, sigma, noise)
        answer = fn(grads.clone(), c, sigma, noise.clone())
        problem = tensor_problem("your private sum", answer, expected, atol=1e-8)
        if problem is None:
            continue
        total = grads.sum(0)
        wrong = {"you clipped the sum; clip each example's gradient before adding them up (that bounds what one "
                 "example can change)": total * min(1.0, c / float(total.norm())) + sigma * c * noise,
                 "the noise's standard deviation is sigma times the clipping norm C": _private_sum(grads, c, sigma, noise / c),
                 "clip by each example's whole norm, not coordinate by coordinate": grads.clamp(-c, c).sum(0) + sigma * c * noise}
        if isinstance(answer, torch.Tensor) and answer.shape == expected.shape:
            for message, value in wrong.items():
                if torch.allclose(answer.double(), value, atol=1e-8):
                    return message
        return problem
    return None


def private_sum_solution(grads, clip_norm, noise_multiplier, noise):
    norms = grads.norm(dim=1, keepdim=True)                       # (B, 1)
    clipped = grads * (clip_norm / norms).clamp(max=1.0)          # each row now has norm <= C
    return clipped.sum(0) + noise_multiplier * clip_norm * noise  # (D,)


def _clip_the_sum(grads, clip_norm, noise_multiplier, noise):
    total = grads.sum(0)
    return total * min(1.0, clip_norm / float(total.norm())) + noise_multiplier * clip_norm * noise


private_sum = Exercise(
    title="DP-SGD's clip and noise for one batch",
    checker=_check_private_sum,
    hint="scale each row of grads by min(1, C / its norm), sum the rows, add noise_multiplier · C · noise",
    solution=private_sum_solution,
    mistake=_clip_the_sum,
    mistake_message="clip each example's gradient",
)


# --- 4. an experiment: the privacy budget of twice as many steps ------------------------------------

BUDGET = dict(sample_rate=0.05, noise_multiplier=1.0, steps=500, delta=1e-5)
CHOICES = ("less than double", "double", "more than double")


@lru_cache
def budget_epsilon(steps: int) -> float:
    """The epsilon of DP-SGD with ``BUDGET``'s settings and ``steps`` steps."""
    return _epsilon(BUDGET["sample_rate"], BUDGET["noise_multiplier"], steps, BUDGET["delta"])


def _truth() -> str:
    ratio = budget_epsilon(2 * BUDGET["steps"]) / budget_epsilon(BUDGET["steps"])
    return CHOICES[0] if ratio < 1.95 else CHOICES[1] if ratio < 2.05 else CHOICES[2]


def _check_budget(prediction, measured) -> str | None:
    if prediction not in CHOICES:
        raise WrongAnswer(f"the prediction should be one of {CHOICES}, got {prediction!r}")
    return number_problem(
        f"your epsilon after {2 * BUDGET['steps']} steps", measured, budget_epsilon(2 * BUDGET["steps"]),
        known=[(budget_epsilon(BUDGET["steps"]), f"that is epsilon after {BUDGET['steps']} steps; double the steps"),
               (2 * budget_epsilon(BUDGET["steps"]), "that doubles epsilon by hand; compute it with privacy.epsilon")])


def _budget_note(prediction, measured) -> str:
    one, two = budget_epsilon(BUDGET["steps"]), budget_epsilon(2 * BUDGET["steps"])
    return (f"{verdict(prediction, _truth())}: epsilon goes from {one:.2f} to {two:.2f}, {two / one:.2f} times. "
            f"Renyi DP adds up linearly over steps, but the conversion to (epsilon, delta) picks a smaller order "
            f"for a longer run, so epsilon grows roughly like the square root of the number of steps")


budget_experiment = Exercise(
    title="experiment: the privacy budget of twice as many steps",
    checker=_check_budget,
    hint=f"call privacy.epsilon({BUDGET['sample_rate']}, {BUDGET['noise_multiplier']}, {2 * BUDGET['steps']}, "
         f"{BUDGET['delta']})",
    solution=lambda: (_truth(), budget_epsilon(2 * BUDGET["steps"])),
    mistake=lambda: (CHOICES[1] if _truth() != CHOICES[1] else CHOICES[0], budget_epsilon(BUDGET["steps"])),
    mistake_message="double the steps",
    kind="experiment",
    parts=2,
    lazy=True,
    note=_budget_note,
)
