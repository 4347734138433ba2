"""Interpretability: which inputs a prediction rests on, what a hidden layer holds, which component a
behaviour needs.

Attributions (a score per input feature for one output of a classifier):

    gradient_times_input(model, x, target)          # (B, ...): x * d f_target / d x
    integrated_gradients(model, x, target)          # (B, ...): (x - x') * mean over the path of the gradient

Integrated gradients (Sundararajan et al., 2017) average the gradient along the straight path from a
baseline ``x'`` (black image by default) to ``x``; their sum is ``f(x) - f(x')`` (completeness), up to
the error of the ``steps``-point midpoint rule.

Inside a Transformer language model:

    residual_stream(gpt, idx)                       # (n_layer + 1, B, T, d_model): the embeddings, then after each block
    with ablate_heads(gpt, [(layer, head)]):        # that head's output is zeroed while inside
        gpt(idx)
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager

import torch
from torch import nn

from fmcourse.models import TransformerLM


def _target_index(model: nn.Module, inputs: torch.Tensor, target) -> tuple[torch.Tensor, int]:
    """Target classes ``(B,)`` after checking them against the model's number of outputs."""
    with torch.no_grad():
        outputs = model(inputs[:1])
    if outputs.dim() != 2:
        raise ValueError(f"the model must give scores (B, C) for attribution, got shape {tuple(outputs.shape)}")
    num_classes = outputs.shape[1]
    target = torch.as_tensor(target, device=inputs.device)
    if target.is_floating_point():
        raise TypeError(f"target must be class indices (an int or an integer tensor), got {target.dtype}")
    target = target.expand(len(inputs)) if target.dim() == 0 else target
    if target.shape != (len(inputs),):
        raise ValueError(f"target must be one class or one per example, shape ({len(inputs)},), got {tuple(target.shape)}")
    if len(target) and (target.min() < 0 or target.max() >= num_classes):
        bad = int(target.min()) if target.min() < 0 else int(target.max())
        raise ValueError(f"target class {bad} is out of range: the model has {num_classes} outputs, 0..{num_classes - 1}")
    return target.long(), num_classes


def _gradients(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``d model(inputs)[i, target[i]] / d inputs[i]`` for every example: ``(B, ...)``."""
    inputs = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        selected = model(inputs).gather(1, target[:, None]).sum()
        (gradient,) = torch.autograd.grad(selected, inputs)
    return gradient


def gradient_times_input(model: nn.Module, inputs: torch.Tensor, target) -> torch.Tensor:
    """``inputs * gradient`` of output ``target`` (an int, or ``(B,)`` classes): ``(B, ...)`` like ``inputs``."""
    target, _ = _target_index(model, inputs, target)
    return inputs.detach() * _gradients(model, inputs, target)


def integrated_gradients(model: nn.Module, inputs: torch.Tensor, target, baseline: torch.Tensor | None = None,
                         steps: int = 64, batch_size: int = 1024) -> torch.Tensor:
    """Integrated gradients ``(B, ...)`` of output ``target`` for ``inputs`` ``(B, ...)``.

    ``IG_i = (x_i - x'_i) * (1 / m) sum_{k=1..m} d f(x' + a_k (x - x')) / d x_i``, ``a_k = (k - 1/2) / m``
    (the midpoint rule with ``m = steps`` points; captum's ``riemann_middle``). ``baseline`` ``x'``:
    zeros by default, or a tensor broadcastable to ``inputs``.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    target, _ = _target_index(model, inputs, target)
    inputs = inputs.detach()
    baseline = torch.zeros_like(inputs) if baseline is None else torch.as_tensor(baseline).to(inputs).expand_as(inputs)
    alphas = (torch.arange(steps, dtype=inputs.dtype, device=inputs.device) + 0.5) / steps
    total = torch.zeros_like(inputs)
    shape = (-1,) + (1,) * (inputs.dim() - 1)
    for chunk in alphas.split(max(1, batch_size // max(1, len(inputs)))):
        # (k * B, ...): every point of this chunk of the path, for every example
        points = (baseline[None] + chunk.view((-1,) + shape[1:] + (1,)) * (inputs - baseline)[None]).flatten(0, 1)
        gradient = _gradients(model, points, target.repeat(len(chunk)))
        total += gradient.view(len(chunk), *inputs.shape).sum(0)
    return (inputs - baseline) * total / steps


# --- inside a Transformer ----------------------------------------------------------------------------

@torch.no_grad()
def residual_stream(model: TransformerLM, idx: torch.Tensor) -> torch.Tensor:
    """The residual stream of ``model`` for token ids ``idx`` ``(B, T)``: ``(n_layer + 1, B, T, d_model)``.

    Entry 0 is the token plus position embedding, entry ``l`` the stream after block ``l`` (before the
    final LayerNorm): what a linear probe at each depth reads.
    """
    if not isinstance(model, TransformerLM):
        raise TypeError(f"residual_stream needs a TransformerLM (GPT or Encoder), got {type(model).__name__}")
    model.hidden(idx[:1])  # checks the ids (range, length) with the model's own messages
    x = model.token_embedding(idx) + model._positions(idx.size(1))
    states = [x]
    for block in model.blocks:
        x = block(x)
        states.append(x)
    return torch.stack(states)


@contextmanager
def ablate_heads(model: TransformerLM, heads: Iterable[tuple[int, int]]):
    """Inside the ``with``, the listed ``(layer, head)`` attention heads write nothing: their part of the
    concatenated head outputs is set to zero before the output projection (zero ablation)."""
    config = model.config
    head_dim = config.d_model // config.n_head
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        if not (0 <= layer < config.n_layer and 0 <= head < config.n_head):
            raise ValueError(f"head ({layer}, {head}) does not exist: layers 0..{config.n_layer - 1}, "
                             f"heads 0..{config.n_head - 1}")
        by_layer.setdefault(layer, []).append(head)

    def zero(heads_here):
        def hook(module, args):
            (y,) = args
            y = y.clone()
            for h in heads_here:
                y[..., h * head_dim:(h + 1) * head_dim] = 0
            return (y,)
        return hook

    handles = [model.blocks[layer].attn.out.register_forward_pre_hook(zero(hs)) for layer, hs in by_layer.items()]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()
