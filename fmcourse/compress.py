"""Making a trained model smaller and faster: int8 quantization, magnitude pruning, distillation, bf16.

    small = quantize(model)                         # nn.Linear weights in int8 (PyTorch's dynamic quantization)
    model_bytes(small), model_bytes(model)          # the size of the saved weights
    pruned = prune(model, sparsity=0.5)             # half of the Linear weights (the smallest) set to 0
    loss_fn = distillation(teacher, temperature=2)  # fit(student, batches, loss_fn, ...) learns from the teacher
    loss_fn = bf16(train.supervised())              # the same loss computed under bfloat16 autocast

Each returns a new model or a ``loss_fn`` for ``fmcourse.train.fit``; the model given is never
changed. The work is done by PyTorch's own tools: ``torch.ao.quantization.quantize_dynamic`` (the
weights of every ``nn.Linear`` stored as int8 with one scale per tensor, the activations quantized on the
fly at each call, CPU only), ``torch.nn.utils.prune`` (global L1-magnitude pruning) and
``torch.autocast``.
"""

from __future__ import annotations

import copy
import io
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from fmcourse.objectives import distillation_loss

Batch = torch.Tensor | tuple | list
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


def _check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def quantize(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (on the CPU, in eval mode) whose ``nn.Linear`` layers keep int8 weights and
    compute with int8 matrix products (dynamic quantization). Embeddings and LayerNorms stay float32."""
    _check_model(model)
    model = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():  # torch announces that the ao API moves to the torchao package
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def model_bytes(model: nn.Module) -> int:
    """Bytes of ``model``'s saved ``state_dict`` (``torch.save``): what its file would take on disk."""
    _check_model(model)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def prune(model: nn.Module, sparsity: float) -> nn.Module:
    """A copy of ``model`` with the fraction ``sparsity`` of its ``nn.Linear`` weights set to zero: the
    smallest in magnitude over all those layers together (global pruning), made permanent.

    A Linear whose weight is shared with another module (a head tied to the embedding) is left whole:
    pruning it would prune the embedding too. ``sparsity`` must be in [0, 1)."""
    _check_model(model)
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be a number in [0, 1) (the fraction of weights set to 0), got {sparsity!r}")
    model = copy.deepcopy(model)
    targets = [(m, "weight") for m in prunable(model)]
    if sparsity > 0:
        torch_prune.global_unstructured(targets, pruning_method=torch_prune.L1Unstructured, amount=float(sparsity))
        for module, name in targets:
            torch_prune.remove(module, name)
    return model


def prunable(model: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of ``model`` whose weight no other module shares."""
    owners: dict[int, int] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            owners[id(p)] = owners.get(id(p), 0) + 1
    return [m for m in model.modules() if isinstance(m, nn.Linear) and owners[id(m.weight)] == 1]


def sparsity_of(model: nn.Module) -> float:
    """The fraction of zeros among the weights of ``prunable(model)``."""
    weights = [m.weight for m in prunable(model)]
    return sum((w == 0).sum().item() for w in weights) / sum(w.numel() for w in weights)


def distillation(teacher: nn.Module, temperature: float = 2.0, alpha: float = 0.5) -> LossFn:
    """``loss_fn`` for ``fit`` on batches ``(inputs, targets)``: ``alpha`` times the distillation loss
    from ``teacher``'s outputs at ``temperature`` plus ``1 - alpha`` times the cross-entropy with the
    true targets. The teacher is frozen (evaluated without gradients, in eval mode)."""
    _check_model(teacher)
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1] (the weight of the teacher's targets), got {alpha}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    teacher.eval().requires_grad_(False)

    def loss_fn(model: nn.Module, batch: Batch) -> torch.Tensor:
        inputs, targets = batch
        logits = model(inputs)
        with torch.no_grad():
            teacher_logits = teacher(inputs)
        hard = nn.functional.cross_entropy(logits.flatten(0, -2), targets.flatten())
        soft = distillation_loss(logits, teacher_logits, temperature) if alpha > 0 else 0.0
        return alpha * soft + (1 - alpha) * hard

    return loss_fn


def bf16(loss_fn: LossFn) -> LossFn:
    """``loss_fn`` computed under bfloat16 autocast on the model's device (matrix products in bfloat16,
    the weights and optimizer in float32), as mixed-precision training does."""

    def wrapped(model: nn.Module, batch: Batch) -> torch.Tensor:
        device = next(model.parameters()).device.type
        with torch.autocast(device, dtype=torch.bfloat16):
            return loss_fn(model, batch).float()

    return wrapped


def seconds_per_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` after ``warmup`` untimed ones, in seconds."""
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
    return best
