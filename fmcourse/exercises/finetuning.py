"""Chapter 06 exercises: LoRA's parameter count, merging an adapter, macro-F1, the expected calibration error."""

from __future__ import annotations

import math

import torch
from torch import nn

from fmcourse.exercises import Exercise
from fmcourse.metrics import calibration
from fmcourse.metrics import macro_f1 as _macro_f1
from fmcourse.nn import LoRALinear


def _check_lora_parameters(fn) -> str | None:
    for d_in, d_out, rank in ((96, 288, 4), (64, 256, 1), (512, 512, 16), (10, 3, 3)):
        expected = sum(p.numel() for p in LoRALinear(nn.Linear(d_in, d_out), rank).parameters() if p.requires_grad)
        got = fn(d_in, d_out, rank)
        if got != expected:
            return f"for nn.Linear({d_in}, {d_out}) and rank {rank} the adapter trains {expected} numbers, you said {got!r}"
    return None


def lora_parameters_solution(d_in, d_out, rank):
    return rank * d_in + d_out * rank  # A is (rank, d_in), B is (d_out, rank); the frozen W0 does not count


lora_parameters = Exercise(
    title="LoRA's trainable parameters",
    checker=_check_lora_parameters,
    hint="count the entries of A (rank x d_in) and of B (d_out x rank); the base weight is frozen",
    solution=lora_parameters_solution,
    mistake=lambda d_in, d_out, rank: rank * (d_in + d_out) + d_in * d_out,  # counts the frozen weight too
)


def _check_merged_weight(fn) -> str | None:
    g = torch.Generator().manual_seed(0)
    for d_in, d_out, rank, alpha in ((5, 3, 2, 4.0), (8, 8, 1, 1.0), (6, 10, 3, 16.0)):
        layer = LoRALinear(nn.Linear(d_in, d_out, dtype=torch.float64), rank, alpha)
        with torch.no_grad():
            layer.lora_B.copy_(torch.randn(d_out, rank, generator=g, dtype=torch.float64))
        x = torch.randn(7, d_in, generator=g, dtype=torch.float64)
        weight = fn(layer.base.weight.detach().clone(), layer.lora_A.detach().clone(), layer.lora_B.detach().clone(),
                    alpha)
        if not isinstance(weight, torch.Tensor) or weight.shape != (d_out, d_in):
            return f"expected a weight of shape ({d_out}, {d_in}), got {getattr(weight, 'shape', type(weight).__name__)}"
        if not torch.allclose(x @ weight.T + layer.base.bias, layer(x), atol=1e-9):
            return f"with rank {rank} and alpha {alpha}, the merged layer's outputs differ from the adapted layer's"
    return None


def merged_weight_solution(W0, A, B, alpha):
    rank = A.shape[0]
    return W0 + (alpha / rank) * B @ A  # (d_out, r) @ (r, d_in) -> (d_out, d_in)


merged_weight = Exercise(
    title="merging an adapter",
    checker=_check_merged_weight,
    hint="W = W0 + (alpha / r) B A, with r the number of rows of A",
    solution=merged_weight_solution,
    mistake=lambda W0, A, B, alpha: W0 + B @ A,  # forgets the scale alpha / r
)


def _confusion_cases():
    g = torch.Generator().manual_seed(0)
    yield torch.tensor([[50, 0, 0], [10, 0, 0], [0, 0, 40]])  # a classifier that ignores the small class
    for classes in (2, 5, 10):
        yield torch.randint(1, 30, (classes, classes), generator=g) + torch.diag(torch.randint(20, 90, (classes,), generator=g))


def _check_macro_f1(fn) -> str | None:
    for M in _confusion_cases():
        classes = len(M)
        targets = torch.arange(classes).repeat_interleave(M.sum(1))
        predicted = torch.cat([torch.arange(classes).repeat_interleave(row) for row in M])
        expected = _macro_f1(predicted, targets, classes)
        got = fn(M.clone())
        if not isinstance(got, (int, float)) or not math.isclose(got, expected, abs_tol=1e-6):
            return f"for the confusion matrix {M.tolist()} macro-F1 is {expected:.4f}, you gave {got!r}"
    return None


def macro_f1_solution(M):
    M = M.double()
    right = M.diag()
    predicted, true = M.sum(0), M.sum(1)  # columns: how often predicted; rows: how often true
    return (2 * right / (predicted + true)).mean().item()  # 2 TP / (2 TP + FP + FN), per class


macro_f1 = Exercise(
    title="macro-F1 from a confusion matrix",
    checker=_check_macro_f1,
    hint="for class i: TP = M[i, i], TP + FP = the column sum, TP + FN = the row sum; average the F1 of the classes",
    solution=macro_f1_solution,
    mistake=lambda M: (M.diag().sum() / M.sum()).item(),  # that is the accuracy (= micro-F1)
)


def _check_ece(fn) -> str | None:
    g = torch.Generator().manual_seed(0)
    for n, bins in ((200, 10), (57, 4), (1000, 15)):
        confidences = 0.5 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
        correct = torch.rand(n, generator=g, dtype=torch.float64) < confidences ** 2  # overconfident
        probabilities = torch.stack([confidences, 1 - confidences], 1)  # two classes, class 0 on top
        expected = calibration(probabilities, (~correct).long(), bins).ece
        got = fn(confidences.clone(), correct.clone(), bins)
        if not isinstance(got, (int, float)) or not math.isclose(got, expected, abs_tol=1e-9):
            return f"for {n} predictions and {bins} bins the ECE is {expected:.5f}, you gave {got!r}"
    return None


def expected_calibration_error_solution(confidences, correct, bins):
    edges = torch.linspace(0, 1, bins + 1, dtype=confidences.dtype)
    which = torch.bucketize(confidences, edges[1:-1])  # bin i holds (edges[i], edges[i + 1]]
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap = (correct[members].double().mean() - confidences[members].mean()).abs()
            total += members.sum().item() / len(confidences) * gap.item()  # weighted by the bin's size
    return total


def _ece_unweighted(confidences, correct, bins):
    edges = torch.linspace(0, 1, bins + 1, dtype=confidences.dtype)
    which = torch.bucketize(confidences, edges[1:-1])
    gaps = [(correct[which == b].double().mean() - confidences[which == b].mean()).abs().item()
            for b in range(bins) if (which == b).any()]
    return sum(gaps) / len(gaps)  # every bin counts the same, however few examples it holds


expected_calibration_error = Exercise(
    title="the expected calibration error",
    checker=_check_ece,
    hint="per non-empty bin: |accuracy - mean confidence|, weighted by the fraction of all examples in the bin",
    solution=expected_calibration_error_solution,
    mistake=_ece_unweighted,
)
