"""Evaluation metrics: how often a classifier is right, and which classes it confuses.

    accuracy(logits, targets)                    # logits (N, C) or (..., C), targets (N,) or (...)
    confusion_matrix(predicted, targets, 10)     # (10, 10): row = true class, column = predicted

Predictions may be scores (logits or probabilities, with one more dimension than the targets, the
classes last: the arg-max is the predicted class) or class labels of the same shape as the targets.
Tensors, NumPy arrays and lists are accepted; the results agree with scikit-learn's (tested).
"""

from __future__ import annotations

import torch


def _shape(dims, *extra: str) -> str:
    parts = [str(d) for d in dims] + list(extra)
    return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


def _as_tensor(name: str, x) -> torch.Tensor:
    x = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be numbers (labels or scores), got {x.dtype}")
    return x


def _labels(predictions, targets) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """Flat predicted labels and targets, both (N,) int64, and the number of score columns (None when
    labels were given), after checking that the shapes fit.

    ``predictions``: scores (..., C) whose arg-max over the last dimension is the label, or integer
    labels (...). ``targets``: integer labels (...).
    """
    predictions, targets = _as_tensor("predictions", predictions), _as_tensor("targets", targets)
    if targets.is_floating_point():
        raise TypeError(f"targets must be class labels (an integer tensor), got {targets.dtype}")
    shape = tuple(targets.shape)
    if predictions.dim() == targets.dim() + 1 and tuple(predictions.shape[:-1]) == shape:
        labels, columns = predictions.argmax(-1), predictions.shape[-1]
    elif tuple(predictions.shape) == shape:
        if predictions.is_floating_point():
            raise TypeError(
                f"predictions of shape {_shape(shape)} are {predictions.dtype}: labels must be integers, "
                f"and scores need a class dimension, shape {_shape(shape, 'C')}"
            )
        labels, columns = predictions, None
    else:
        raise ValueError(
            f"predictions of shape {_shape(predictions.shape)} do not fit targets of shape {_shape(shape)}: "
            f"expected scores of shape {_shape(shape, 'C')} or labels of shape {_shape(shape)}"
        )
    if targets.numel() == 0:
        raise ValueError("no examples: predictions and targets are empty")
    return labels.reshape(-1).long(), targets.reshape(-1).to(labels.device).long(), columns


def _check_range(name: str, values: torch.Tensor, num_classes: int | None) -> None:
    low, high = int(values.min()), int(values.max())
    if low < 0 or (num_classes is not None and high >= num_classes):
        bad = low if low < 0 else high
        allowed = f"[0, {num_classes - 1}] for {num_classes} classes" if num_classes is not None else "non-negative"
        raise ValueError(f"{name} contain class index {bad}, out of range: class indices must be {allowed}")


def accuracy(predictions, targets) -> float:
    """The fraction of examples whose predicted class equals the target, in [0, 1].

    Shapes: scores (..., C) or labels (...), and targets (...). Targets must be class indices in
    ``[0, C)`` (with labels, non-negative).
    """
    labels, targets, columns = _labels(predictions, targets)
    _check_range("targets", targets, columns)
    _check_range("predicted labels", labels, None)
    return (labels == targets).double().mean().item()


def confusion_matrix(predictions, targets, num_classes: int | None = None) -> torch.Tensor:
    """Counts ``M[i, j]`` of examples of true class ``i`` predicted as class ``j``; shape (C, C), int64.

    ``num_classes`` defaults to the number of score columns, else to the largest label seen plus one.
    Labels outside ``[0, num_classes)`` raise ``ValueError``. Row ``i`` sums to the number of targets
    of class ``i``; the diagonal holds the correct predictions (scikit-learn's convention).
    """
    labels, targets, columns = _labels(predictions, targets)
    if num_classes is None:
        num_classes = columns if columns is not None else int(max(labels.max(), targets.max())) + 1
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    _check_range("targets", targets, num_classes)
    _check_range("predicted labels", labels, num_classes)
    counts = torch.bincount(targets * num_classes + labels, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes).cpu()
