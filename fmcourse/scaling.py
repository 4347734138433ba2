"""Scaling laws at toy scale: sweep GPT sizes and training lengths, fit power laws, count compute.

    rows = sweep(text, sizes=[(1, 16), (2, 32)], steps=[200, 400])    # one pretraining run per pair
    law = fit_power_law(params, losses)                                 # L(N) = E + A / N^alpha
    joint = fit_joint_law(params, tokens, losses)                       # L(N, D) = E + A / N^alpha + B / D^beta
    n_opt, d_opt = joint.compute_optimal(1e12)                          # the best size for a FLOP budget

Conventions (Kaplan et al. 2020): ``N`` counts the *non-embedding* parameters (attention, MLP and
LayerNorm weights; not the token and position embeddings), ``D`` the training tokens, and the
training compute is ``C = 6 N D`` FLOPs (a forward pass costs about ``2 N`` per token, the backward
pass twice that). ``training_memory`` gives the bytes a training run holds per parameter and what
sharding the optimizer state, the gradients and the weights over ``world`` processes (ZeRO stages
1-3, PyTorch's FSDP) leaves on each.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from fmcourse.models import GPTConfig
from fmcourse.models.cost import forward_flops, parameter_counts
from fmcourse.pretrain import Settings, pretrain, prepare_for

# (n_layer, d_model) of the sweep: 3.3 thousand to 150 thousand non-embedding parameters (1.7 decades)
SIZES = ((1, 16), (2, 24), (2, 32), (2, 48), (3, 64))
STEPS = (200, 400, 800, 1600)

# Published exponents, for comparison (the papers' own fits on web text with BPE tokens).
PUBLISHED = {
    "Kaplan et al. 2020": {"alpha_N": 0.076, "alpha_D": 0.095, "optimal_N_exponent": 0.73},
    "Hoffmann et al. 2022": {"alpha_N": 0.34, "alpha_D": 0.28, "optimal_N_exponent": 0.46},
}


def non_embedding_parameters(config: GPTConfig) -> int:
    """Parameters of the Transformer blocks and the final LayerNorm: what Kaplan et al. call ``N``."""
    counts = parameter_counts(config)
    return counts["attention"] + counts["MLP"] + counts["LayerNorm"]


def training_flops(params: float, tokens: float) -> float:
    """``6 N D``: the FLOPs of training ``params`` parameters on ``tokens`` tokens (forward 2ND, backward 4ND)."""
    if params <= 0 or tokens <= 0:
        raise ValueError(f"params and tokens must be positive, got {params} and {tokens}")
    return 6.0 * params * tokens


def measured_training_flops(config: GPTConfig, batch_size: int, length: int) -> float:
    """Matrix-multiply FLOPs of one training step counted layer by layer: 3 x ``forward_flops`` per
    sequence (the backward pass costs two forward passes) x ``batch_size`` sequences of ``length``."""
    return 3.0 * batch_size * sum(forward_flops(config, length).values())


# --- memory of training -----------------------------------------------------------------------

BYTES_PER_PARAMETER = {  # mixed-precision training with Adam (ZeRO paper, Rajbhandari et al. 2020)
    "weights (bf16)": 2,
    "gradients (bf16)": 2,
    "optimizer: fp32 master weights, Adam m and v": 12,
}


def training_memory(params: float, world: int = 1, stage: int = 0) -> dict[str, float]:
    """Bytes per process for the weights, gradients and optimizer state of ``params`` parameters
    trained with Adam in mixed precision on ``world`` processes, sharded as ZeRO ``stage``:
    0 keeps a full copy everywhere (plain data parallel), 1 shards the optimizer state, 2 also the
    gradients, 3 also the weights (as FSDP does). Activations are not included."""
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3 (ZeRO), got {stage!r}")
    if not isinstance(world, int) or world < 1:
        raise ValueError(f"world must be a positive int, got {world!r}")
    weights, grads, optimizer = (b * params for b in BYTES_PER_PARAMETER.values())
    return {
        "weights": weights / (world if stage >= 3 else 1),
        "gradients": grads / (world if stage >= 2 else 1),
        "optimizer state": optimizer / (world if stage >= 1 else 1),
    }


# --- power laws -------------------------------------------------------------------------------

def _positive(name: str, values) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).flatten()
    if t.numel() < 3:
        raise ValueError(f"{name} needs at least 3 points to fit a law with 3 parameters, got {t.numel()}")
    if not torch.isfinite(t).all() or (t <= 0).any():
        raise ValueError(f"{name} must be positive and finite, got {t.tolist()}")
    return t


@dataclass
class PowerLaw:
    """``L(x) = E + A x^(-alpha)``: a loss that falls as a power of ``x`` towards the floor ``E``."""

    E: float
    A: float
    alpha: float

    def __call__(self, x):
        return self.E + self.A * torch.as_tensor(x, dtype=torch.float64) ** (-self.alpha)


def fit_power_law(x, loss, floors: int = 400) -> PowerLaw:
    """Least-squares fit of ``loss ~ E + A x^(-alpha)`` (in log loss, so each point counts alike).

    For a given floor ``E`` the law is a straight line in log-log axes, ``log(L - E) = log A -
    alpha log x``, solved exactly; the floor is searched on a grid of ``floors`` values in
    ``[0, min(loss))``, then refined around the best one. ``x`` and ``loss`` are 1-D, positive.
    """
    x, loss = _positive("x", x), _positive("loss", loss)
    if x.shape != loss.shape:
        raise ValueError(f"x and loss must have the same length, got {len(x)} and {len(loss)}")
    logx, low = x.log(), loss.min().item()

    def solve(E: float) -> tuple[float, float, float]:
        y = (loss - E).log()
        X = torch.stack([torch.ones_like(logx), -logx], 1)
        (logA, alpha) = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1).tolist()
        predicted = E + math.exp(logA) * x ** (-alpha)
        return ((predicted.log() - loss.log()) ** 2).sum().item(), logA, alpha

    grid = [low * k / floors for k in range(floors)]
    best = min(grid, key=lambda E: solve(E)[0])
    step = low / floors
    fine = [min(max(best + step * (k / 50 - 1), 0.0), low * (1 - 1e-9)) for k in range(101)]
    E = min(fine, key=lambda E: solve(E)[0])
    _, logA, alpha = solve(E)
    return PowerLaw(E, math.exp(logA), alpha)


def bootstrap(x, loss, samples: int = 200, seed: int = 0) -> list[PowerLaw]:
    """``fit_power_law`` on ``samples`` resamplings (with replacement) of the points: the spread of
    the fitted ``alpha`` and ``E`` shows how well the data pin them down."""
    x, loss = _positive("x", x), _positive("loss", loss)
    g = torch.Generator().manual_seed(seed)
    fits = []
    while len(fits) < samples:
        idx = torch.randint(len(x), (len(x),), generator=g)
        if len(set(x[idx].tolist())) >= 3:  # a resample needs 3 distinct x to pin a 3-parameter law
            fits.append(fit_power_law(x[idx], loss[idx], floors=100))
    return fits


@dataclass
class JointLaw:
    """``L(N, D) = E + A / N^alpha + B / D^beta`` (Hoffmann et al. 2022, their approach 3)."""

    E: float
    A: float
    alpha: float
    B: float
    beta: float

    def __call__(self, N, D):
        N, D = torch.as_tensor(N, dtype=torch.float64), torch.as_tensor(D, dtype=torch.float64)
        return self.E + self.A * N ** (-self.alpha) + self.B * D ** (-self.beta)

    @property
    def optimal_N_exponent(self) -> float:
        """``a`` in ``N_opt ∝ C^a``: with ``C = 6ND`` fixed, the best split gives ``a = beta / (alpha + beta)``."""
        return self.beta / (self.alpha + self.beta)

    def compute_optimal(self, flops: float) -> tuple[float, float]:
        """``(N, D)`` that minimise the fitted loss for a budget of ``flops = 6 N D`` (closed form)."""
        if not flops > 0:
            raise ValueError(f"flops must be positive, got {flops}")
        G = (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))
        N = G * (flops / 6) ** self.optimal_N_exponent
        return N, flops / (6 * N)


def fit_joint_law(N, D, loss, delta: float = 1e-3) -> JointLaw:
    """Fit ``JointLaw`` to losses measured at sizes ``N`` and token counts ``D`` (1-D, same length).

    As Hoffmann et al.: minimise the Huber loss (``delta``) between the log of the predicted and of the
    measured loss, with L-BFGS from a grid of starting points, keeping the best.
    """
    N, D, loss = _positive("N", N), _positive("D", D), _positive("loss", loss)
    if not len(N) == len(D) == len(loss) or len(N) < 5:
        raise ValueError(f"N, D and loss need the same length, at least 5, got {len(N)}, {len(D)}, {len(loss)}")
    logN, logD, target = N.log(), D.log(), loss.log()

    def objective(p: torch.Tensor) -> torch.Tensor:
        e, a, alpha, b, beta = p
        predicted = torch.logsumexp(torch.stack([e.expand_as(logN), a - alpha * logN, b - beta * logD]), 0)
        return torch.nn.functional.huber_loss(predicted, target, delta=delta, reduction="sum")

    best, best_value = None, math.inf
    for e in (-1.0, 0.0, 0.5):
        for alpha in (0.2, 0.5, 1.0):
            for beta in (0.2, 0.5, 1.0):
                p = torch.tensor([e, 5.0, alpha, 5.0, beta], dtype=torch.float64, requires_grad=True)
                opt = torch.optim.LBFGS([p], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

                def closure():
                    opt.zero_grad()
                    value = objective(p)
                    value.backward()
                    return value

                opt.step(closure)
                value = objective(p).item()
                if math.isfinite(value) and value < best_value and p[2] > 0 and p[4] > 0:
                    best, best_value = p.detach().clone(), value
    if best is None:
        raise RuntimeError("the joint law could not be fitted: no starting point converged")
    e, a, alpha, b, beta = best.tolist()
    return JointLaw(math.exp(e), math.exp(a), alpha, math.exp(b), beta)


# --- the sweep --------------------------------------------------------------------------------

def sweep(text: str, sizes=SIZES, steps=STEPS, *, base: Settings | None = None, log=print) -> list[dict]:
    """Pretrain a GPT of every size ``(n_layer, d_model)`` for every number of ``steps`` (each its own
    run, warm-up a tenth of it, cosine decay to its end) and return one row per run: the sizes,
    ``N`` (non-embedding parameters), all parameters, ``D`` (tokens seen), ``C = 6 N D``, the final
    validation loss and the seconds it took. ``base`` holds the other settings (default ``Settings()``)."""
    base = base or Settings()
    corpus = prepare_for(text, base)
    rows = []
    for n_layer, d_model in sizes:
        for n in steps:
            settings = Settings(**{**base.__dict__, "n_layer": n_layer, "d_model": d_model, "steps": n,
                                   "warmup_steps": max(1, n // 10), "evaluations": 1})
            start = time.perf_counter()
            result = pretrain(text, settings, corpus=corpus, plot=False, progress=False, device="cpu")
            seconds = time.perf_counter() - start
            config = result.model.config
            N = non_embedding_parameters(config)
            D = n * settings.batch_size * settings.context_length
            rows.append({"n_layer": n_layer, "d_model": d_model, "N": N,
                         "parameters": sum(p.numel() for p in result.model.parameters()), "steps": n, "D": D,
                         "C": training_flops(N, D), "val_loss": round(result.val_loss, 4),
                         "seconds": round(seconds, 2)})
            log(f"layers {n_layer} width {d_model:>3} (N={N:>7,}) steps {n:>5}: validation loss "
                f"{result.val_loss:.3f} in {seconds:.0f} s")
    return rows


def frontier(rows: list[dict]) -> list[dict]:
    """The runs that no cheaper run beats: sorted by compute, each with a lower loss than all before it."""
    out, best = [], math.inf
    for row in sorted(rows, key=lambda r: r["C"]):
        if row["val_loss"] < best:
            out.append(row)
            best = row["val_loss"]
    return out
