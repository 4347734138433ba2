"""Privacy: what a trained model gives away about its training data, and training that bounds it.

Memorisation, measured with canaries (Carlini et al., 2019, "The Secret Sharer"): plant a random
secret in the training text, then rank it among every possible secret by the model's probability.

    text = plant_canaries(text, {"the code of kim is ": "4071"}, {"the code of kim is ": 8}, seed=0)
    exposure(model, tokenizer, "the code of kim is ", "4071")     # bits, from 0 to log2(10^4) = 13.3

    exposure = log2 |R| - log2 rank(secret),   R = every string of the secret's length over the alphabet

A secret the model never saw ranks like a random one: its expected exposure is ``1 / ln 2`` = 1.44
bits (exactly so for a uniform random rank); a memorised one ranks first, ``log2 |R|`` bits.

Membership inference (the loss-threshold attack, Yeom et al., 2018): training examples have lower
loss than unseen ones, so ``-loss`` scores "was this example in the training set?":

    membership_auc(model, (train_x, train_y), (held_out_x, held_out_y))   # ROC AUC, 0.5 = no leak

DP-SGD (Abadi et al., 2016): clip every example's gradient to norm ``C``, sum, add Gaussian noise of
standard deviation ``sigma C``, and account for the privacy spent with Renyi DP (Mironov, 2017;
Mironov, Talwar and Zhang, 2019), converted to an ``(epsilon, delta)`` guarantee:

    grads = per_example_gradients(model, F.cross_entropy, x, y)    # {name: (B, *shape)}, torch.func
    dp_sgd(model, x, y, clip_norm=1.0, noise_multiplier=1.1, sample_rate=0.05, steps=300, lr=0.5)
    epsilon(sample_rate=0.05, noise_multiplier=1.1, steps=300, delta=1e-5)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from fmcourse.metrics import roc_auc

DIGITS = "0123456789"
ORDERS = tuple(range(2, 257))  # integer Renyi orders: the exact formula of the sampled Gaussian holds for them


# --- canaries and exposure ---------------------------------------------------------------------------

def random_secret(length: int = 4, alphabet: str = DIGITS, seed: int = 0) -> str:
    """A random string of ``length`` characters from ``alphabet`` (seeded)."""
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(length))


def plant_canaries(text: str, canaries: Mapping[str, str], repeats: Mapping[str, int], seed: int = 0) -> str:
    """``text`` with each canary line ``prefix + secret`` inserted ``repeats[prefix]`` times, at random
    line breaks (seeded). ``canaries`` maps a prefix to its secret."""
    if set(repeats) - set(canaries):
        raise ValueError(f"repeats names prefixes with no canary: {sorted(set(repeats) - set(canaries))}")
    lines = text.split("\n")
    rng = random.Random(seed)
    for prefix, count in repeats.items():
        if count < 0:
            raise ValueError(f"a repeat count must be >= 0, got {count} for {prefix!r}")
        for _ in range(count):
            lines.insert(rng.randrange(len(lines) + 1), prefix + canaries[prefix])
    return "\n".join(lines)


@torch.no_grad()
def candidate_log_probs(model: nn.Module, prefix_ids: Sequence[int], alphabet_ids: Sequence[int], length: int,
                        batch_size: int = 4096) -> torch.Tensor:
    """Log-probabilities ``(|A| ** length,)`` that the causal LM ``model`` gives every continuation of
    ``prefix_ids`` by ``length`` tokens from ``alphabet_ids``, in lexicographic order (the first
    token most significant). Shares prefixes: ``1 + |A| + ... + |A| ** (length - 1)`` sequences run.
    """
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")
    if len(prefix_ids) == 0:
        raise ValueError("the prefix must have at least one token (the model predicts from it)")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    alphabet = torch.tensor(list(alphabet_ids), device=device)
    prefix = torch.tensor(list(prefix_ids), device=device)
    partial = torch.zeros(1, 0, dtype=torch.long, device=device)       # (|A|^k, k) continuations so far
    total = torch.zeros(1, dtype=torch.float64, device=device)
    for _ in range(length):
        rows = torch.cat([prefix.expand(len(partial), -1), partial], dim=1)
        step = torch.cat([model(chunk)[:, -1].log_softmax(-1)[:, alphabet].double() for chunk in rows.split(batch_size)])
        total = (total[:, None] + step).reshape(-1)                          # (|A|^(k+1),)
        partial = torch.cat([partial.repeat_interleave(len(alphabet), 0), alphabet.repeat(len(partial))[:, None]], 1)
    model.train(was_training)
    return total.cpu()


def exposure_from_log_probs(log_probs: torch.Tensor, index: int) -> float:
    """``log2 |R| - log2 rank``, the rank of candidate ``index`` among ``log_probs`` ``(|R|,)`` (1 = the
    most probable; tied candidates share the mean of their ranks)."""
    if not 0 <= index < len(log_probs):
        raise ValueError(f"index {index} is out of range for {len(log_probs)} candidates")
    mine = log_probs[index]
    higher, equal = int((log_probs > mine).sum()), int((log_probs == mine).sum())
    rank = 1 + higher + (equal - 1) / 2
    return math.log2(len(log_probs)) - math.log2(rank)


def exposure(model: nn.Module, tokenizer, prefix: str, secret: str, alphabet: str = DIGITS) -> float:
    """The exposure in bits of ``secret`` after ``prefix``, among every string of its length over ``alphabet``."""
    if not secret or any(c not in alphabet for c in secret):
        raise ValueError(f"the secret {secret!r} must be a non-empty string over the alphabet {alphabet!r}")
    log_probs = candidate_log_probs(model, tokenizer.encode(prefix), tokenizer.encode(alphabet), len(secret))
    index = 0
    for c in secret:
        index = index * len(alphabet) + alphabet.index(c)
    return exposure_from_log_probs(log_probs, index)


# --- membership inference ----------------------------------------------------------------------------

@torch.no_grad()
def per_example_losses(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                       loss_fn: Callable = F.cross_entropy) -> torch.Tensor:
    """The loss of each example ``(N,)``, the model in eval mode (its mode restored afterwards)."""
    was_training = model.training
    model.eval()
    losses = loss_fn(model(inputs), targets, reduction="none")
    model.train(was_training)
    return losses.reshape(len(inputs), -1).mean(1)


def loss_threshold_auc(member_losses: torch.Tensor, non_member_losses: torch.Tensor) -> float:
    """ROC AUC of the attack that calls an example a member when its loss is low (score = -loss)."""
    member_losses, non_member_losses = torch.as_tensor(member_losses), torch.as_tensor(non_member_losses)
    scores = torch.cat([-member_losses.reshape(-1), -non_member_losses.reshape(-1)])
    truth = torch.cat([torch.ones(member_losses.numel()), torch.zeros(non_member_losses.numel())]).bool()
    return roc_auc(scores, truth)


def membership_auc(model: nn.Module, members: tuple[torch.Tensor, torch.Tensor],
                   non_members: tuple[torch.Tensor, torch.Tensor], loss_fn: Callable = F.cross_entropy) -> float:
    """The loss-threshold attack's AUC on ``members`` (inputs, targets) against ``non_members``."""
    return loss_threshold_auc(per_example_losses(model, *members, loss_fn=loss_fn),
                              per_example_losses(model, *non_members, loss_fn=loss_fn))


# --- DP-SGD ------------------------------------------------------------------------------------------

def per_example_gradients(model: nn.Module, loss_fn: Callable, inputs: torch.Tensor,
                          targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """The gradient of each example's loss: ``{parameter name: (B, *parameter.shape)}``.

    ``torch.func``: ``grad`` of the loss of one example (a batch of one), ``vmap`` over the batch, so
    one call computes what ``B`` backward passes would. Only parameters that require a gradient.
    """
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def loss_of_one(params, x, y):
        out = functional_call(model, (params, buffers), (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0))

    return vmap(grad(loss_of_one), in_dims=(None, 0, 0), randomness="different")(params, inputs, targets)


def _check_positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def clip_and_noise(per_example: Mapping[str, torch.Tensor], clip_norm: float, noise_multiplier: float,
                   generator: torch.Generator | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """DP-SGD's private sum of gradients, and each example's norm before clipping ``(B,)``.

    Each example's whole gradient (all parameters together) is scaled by ``min(1, C / norm)``, so its
    norm is at most ``C = clip_norm``; the clipped gradients are summed and ``N(0, (sigma C)^2)`` is
    added to every coordinate, ``sigma = noise_multiplier`` (0 adds no noise). Divide by the
    expected batch size to get the update direction.
    """
    _check_positive("clip_norm", clip_norm)
    if not noise_multiplier >= 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    grads = list(per_example.values())
    norms = torch.cat([g.flatten(1) for g in grads], dim=1).norm(dim=1)              # (B,)
    scale = (clip_norm / (norms + 1e-12)).clamp(max=1.0)
    noisy = {}
    for name, g in per_example.items():
        summed = torch.einsum("b,b...->...", scale.to(g.dtype), g)
        noise = torch.randn(summed.shape, generator=generator, dtype=g.dtype).to(g.device)
        noisy[name] = summed + noise_multiplier * clip_norm * noise
    return noisy, norms


def dp_sgd(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, clip_norm: float,
           noise_multiplier: float, sample_rate: float, steps: int, lr: float, momentum: float = 0.0,
           loss_fn: Callable = F.cross_entropy, seed: int = 0,
           callback: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """Train ``model`` with DP-SGD on ``inputs`` ``(N, ...)``, ``targets`` ``(N,)``; returns it in eval mode.

    Every step draws a Poisson sample (each example in with probability ``sample_rate``, as the
    privacy accounting assumes), computes the private sum ``clip_and_noise`` and divides it by the
    expected batch size ``sample_rate * N``; SGD with ``momentum``. ``noise_multiplier=0`` is
    clipped SGD without privacy. ``callback(step, model)`` is called after each step.
    """
    _check_positive("clip_norm", clip_norm)
    _check_positive("lr", lr)
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    expected = sample_rate * len(inputs)
    model.train()
    for step in range(steps):
        chosen = (torch.rand(len(inputs), generator=g) < sample_rate).nonzero().squeeze(1)
        if len(chosen):
            per_example = per_example_gradients(model, loss_fn, inputs[chosen], targets[chosen])
        else:  # an empty sample still gets its noise
            per_example = {n: torch.zeros(1, *p.shape) for n, p in model.named_parameters() if p.requires_grad}
        noisy, _ = clip_and_noise(per_example, clip_norm, noise_multiplier, g)
        for name, p in model.named_parameters():
            if name in noisy:
                p.grad = (noisy[name] / expected).to(p.dtype)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if callback is not None:
            callback(step, model)
    return model.eval()


# --- privacy accounting: Renyi DP of the sampled Gaussian mechanism ----------------------------------

def _log_a(q: float, sigma: float, alpha: int) -> float:
    """``log A_alpha`` of the sampled Gaussian mechanism for an integer order ``alpha`` (Mironov et al.,
    2019, section 3.3): ``A = sum_k C(alpha, k) (1 - q)^(alpha - k) q^k exp((k^2 - k) / (2 sigma^2))``."""
    terms = [math.lgamma(alpha + 1) - math.lgamma(k + 1) - math.lgamma(alpha - k + 1)
             + k * math.log(q) + (alpha - k) * math.log1p(-q) + (k * k - k) / (2 * sigma ** 2)
             for k in range(alpha + 1)]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def rdp(sample_rate: float, noise_multiplier: float, steps: int, orders: Sequence[int] = ORDERS) -> list[float]:
    """Renyi DP ``epsilon_alpha`` of ``steps`` compositions of the sampled Gaussian mechanism, one per order."""
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
    _check_positive("noise_multiplier", noise_multiplier)
    if any(int(a) != a or a < 2 for a in orders):
        raise ValueError("orders must be integers >= 2 (the formula used holds for integer orders)")
    if sample_rate == 1:
        return [steps * a / (2 * noise_multiplier ** 2) for a in orders]
    return [steps * _log_a(sample_rate, noise_multiplier, int(a)) / (a - 1) for a in orders]


def epsilon(sample_rate: float, noise_multiplier: float, steps: int, delta: float,
            orders: Sequence[int] = ORDERS) -> float:
    """The ``epsilon`` of an ``(epsilon, delta)`` guarantee for DP-SGD with these settings.

    From Renyi DP at each order, converted with Balle et al. (2020, theorem 21):
    ``epsilon = rdp_alpha + log((alpha - 1) / alpha) - (log delta + log alpha) / (alpha - 1)``,
    minimised over the orders. ``noise_multiplier=0`` gives infinity (no privacy).
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if noise_multiplier == 0:
        return math.inf
    values = rdp(sample_rate, noise_multiplier, steps, orders)
    return min(r + math.log((a - 1) / a) - (math.log(delta) + math.log(a)) / (a - 1) for r, a in zip(values, orders))


def noise_for_epsilon(target_epsilon: float, sample_rate: float, steps: int, delta: float,
                      orders: Sequence[int] = ORDERS) -> float:
    """The smallest noise multiplier (to 0.1%) whose ``epsilon`` is at most ``target_epsilon``."""
    _check_positive("target_epsilon", target_epsilon)
    low, high = 0.05, 1.0
    while epsilon(sample_rate, high, steps, delta, orders) > target_epsilon:
        low, high = high, high * 2
        if high > 1e4:
            raise ValueError(f"epsilon {target_epsilon} is out of reach for {steps} steps at sample rate {sample_rate}")
    while high - low > 1e-3 * high:
        middle = (low + high) / 2
        if epsilon(sample_rate, middle, steps, delta, orders) > target_epsilon:
            low = middle
        else:
            high = middle
    return high
