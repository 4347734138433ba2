"""Losses: what a model is trained to make small.

    loss = cross_entropy(logits, targets)          # logits (N, C) or (..., C), targets (N,) or (...)
    loss = mse(predictions, targets)               # any shape, the same for both
    loss = nt_xent(z1, z2, temperature=0.5)        # two views (N, D) each: SimCLR's contrastive loss
    loss = clip_loss(images, texts, temperature)   # (N, D) each, pair i matches: CLIP's symmetric loss
    loss = distillation_loss(student_logits, teacher_logits, temperature=2.0)   # (..., C) each: knowledge distillation

Each function is written from its formula and agrees with its torch counterpart (``F.mse_loss``,
``F.cross_entropy``, ``torch.softmax``, ``torch.log_softmax``, ``torch.logsumexp``) in value and
gradient; the tests check this. The class dimension is always the last one, as in a language model's
``(B, T, V)`` logits (torch's ``F.cross_entropy`` wants it second instead). The contrastive losses
(``info_nce``, ``nt_xent``, ``clip_loss``) are cross-entropies over a matrix of cosine similarities;
the tests check them against their formulas written as explicit loops.

Half-precision inputs (float16, bfloat16) are computed in float32 and the result is cast back, as
torch's own kernels do: a sum of many exponentials in bfloat16 keeps only about three digits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")


def _check_floating(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def _reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def _shift(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z - m, m)`` with ``z`` = ``x`` in float32 or wider and ``m`` its max along ``dim`` (kept).

    The shift cancels exactly in every value and gradient below, so ``m`` is treated as a constant;
    a slice whose max is infinite is left unshifted (inf - inf would be nan).
    """
    z = x.to(_compute_dtype(x))
    m = z.detach().amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return z - m, m


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(x)))`` along ``dim``, without overflow: ``m + log(sum(exp(x - m)))``, ``m = max(x)``.

    Shape: ``x`` (..., C, ...) -> the same with ``dim`` removed. Entries of ``-inf`` (masked out)
    count as zero probability; a slice that is all ``-inf`` gives ``-inf``.
    """
    _check_floating("x", x)
    shifted, m = _shift(x, dim)
    return (shifted.exp().sum(dim, keepdim=True).log() + m).squeeze(dim).to(x.dtype)


def _log_softmax(logits: torch.Tensor, dim: int) -> torch.Tensor:
    # (z - m) - log(sum(exp(z - m))): subtracting m first keeps the digits of z - m when |z| is large.
    shifted, _ = _shift(logits, dim)
    return shifted - shifted.exp().sum(dim, keepdim=True).log()


def log_softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Log-probabilities ``z - logsumexp(z)`` along ``dim``; same shape as ``logits``."""
    _check_floating("logits", logits)
    return _log_softmax(logits, dim).to(logits.dtype)


def softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Probabilities ``exp(z - m) / sum(exp(z - m))`` along ``dim`` with ``m = max(z)``: the same as
    ``exp(z) / sum(exp(z))``, without overflow. Same shape as ``logits``."""
    _check_floating("logits", logits)
    e = _shift(logits, dim)[0].exp()
    return (e / e.sum(dim, keepdim=True)).to(logits.dtype)


def mse(predictions: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error ``mean((predictions - targets)^2)``.

    Both tensors must have the same shape: ``F.mse_loss`` broadcasts a ``(N, 1)`` prediction against a
    ``(N,)`` target into an ``(N, N)`` table (with a warning), which is silently the wrong loss.
    ``reduction``: ``"mean"`` (a scalar), ``"sum"`` or ``"none"`` (the squared errors, same shape).
    """
    _check_floating("predictions", predictions)
    _check_floating("targets", targets)
    _check_reduction(reduction)
    if predictions.shape != targets.shape:
        raise ValueError(
            f"mse: predictions of shape {tuple(predictions.shape)} and targets of shape "
            f"{tuple(targets.shape)} differ; expected the same shape for both "
            f"(reshape one, e.g. targets.view({', '.join(map(str, predictions.shape))}))"
        )
    return _reduce((predictions - targets).pow(2), reduction)


def cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    class_dim: int = -1,
) -> torch.Tensor:
    """Cross-entropy between ``softmax(logits)`` and the targets, as ``F.cross_entropy`` defines it.

    Layout: the classes are on the *last* axis, as a language model's ``(B, T, V)`` logits have
    them. ``F.cross_entropy`` takes them on axis 1 instead (``(N, C, d1, ...)``); pass
    ``class_dim=1`` for that layout, and the two agree for every shape. Without it a ``(B, C, T)``
    tensor with ``C == T`` is read as ``(B, T, C)``, classes last, so it gives another loss than
    ``F.cross_entropy`` with no error: the shapes alone cannot tell the two layouts apart.

    Shapes: ``logits`` (..., C) with the classes last, and ``targets`` either
    - class indices (...) of an integer dtype, each in ``[0, C)`` or equal to ``ignore_index``, or
    - probabilities (..., C), floating point (each row a distribution, e.g. a teacher's softmax).

    Per position, with log-probabilities ``l = log_softmax(logits)`` and class weights ``w`` (all 1 if
    not given): ``-w[y] * l[y]`` for an index ``y``, ``-sum_c w[c] q[c] l[c]`` for a distribution ``q``.
    ``label_smoothing`` ``e`` trains towards ``(1 - e) * target + e / C`` instead.
    ``reduction="mean"`` divides by the summed weights of the counted positions (ignored positions do
    not count; with no weights, by their number; with probability targets, by the number of
    positions), as torch does: a batch that is entirely ignored gives nan. ``"sum"`` adds, ``"none"``
    returns the per-position losses, shape (...).
    """
    _check_floating("logits", logits)
    _check_reduction(reduction)
    if logits.dim() == 0:
        raise ValueError("cross_entropy: logits must have a class dimension, shape (..., C); got a scalar")
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if isinstance(class_dim, bool) or not isinstance(class_dim, int) or not -logits.dim() <= class_dim < logits.dim():
        raise ValueError(f"class_dim must be an axis of the logits (-1: classes last, 1: F.cross_entropy's layout), "
                         f"got {class_dim!r} for logits of shape {tuple(logits.shape)}")
    if class_dim % logits.dim() != logits.dim() - 1:
        if targets.is_floating_point() and targets.shape == logits.shape:
            targets = targets.movedim(class_dim, -1)
        logits = logits.movedim(class_dim, -1)
    num_classes = logits.shape[-1]
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if weight is not None:
        _check_floating("weight", weight)
        if weight.shape != (num_classes,):
            raise ValueError(f"weight must have shape ({num_classes},), one per class; got {tuple(weight.shape)}")

    log_p = _log_softmax(logits, -1)  # (..., C), in float32 or float64
    w = torch.ones(num_classes, dtype=log_p.dtype, device=log_p.device) if weight is None else weight.to(log_p)

    if targets.is_floating_point() and targets.shape == logits.shape:
        q = targets.to(log_p.dtype)
        if label_smoothing > 0:
            q = q * (1 - label_smoothing) + label_smoothing / num_classes
        return _reduce(-(q * w * log_p).sum(-1), reduction).to(logits.dtype)

    if targets.shape != logits.shape[:-1]:
        torch_layout = logits.dim() >= 3 and targets.shape == logits.shape[:1] + logits.shape[2:]
        raise ValueError(
            f"cross_entropy: targets of shape {tuple(targets.shape)} do not fit logits of shape "
            f"{tuple(logits.shape)}; expected class indices of shape {tuple(logits.shape[:-1])} "
            f"or probabilities of shape {tuple(logits.shape)}"
            + ("; the classes are on the last axis here: for F.cross_entropy's layout (N, C, d1, ...) "
               "pass class_dim=1" if torch_layout else "")
        )
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(f"class-index targets must be an integer tensor (torch.long), got {targets.dtype}")
    counted = targets != ignore_index  # (...)
    outside = counted & ((targets < 0) | (targets >= num_classes))
    if outside.any():
        raise ValueError(
            f"cross_entropy: class index {targets[outside][0].item()} is out of range; logits have "
            f"{num_classes} classes, so targets must be in [0, {num_classes - 1}] (or ignore_index={ignore_index})"
        )
    index = torch.where(counted, targets, torch.zeros_like(targets)).long()  # ignored -> any valid class
    zero = log_p.new_zeros(())
    w_target = torch.where(counted, w[index], zero)  # (...): each position's weight, 0 where ignored
    losses = torch.where(counted, -log_p.gather(-1, index.unsqueeze(-1)).squeeze(-1) * w[index], zero)
    if label_smoothing > 0:
        # Mix in the cross-entropy with the uniform distribution over the classes. Only when asked:
        # a masked (-inf) logit makes that term infinite, and 0 * inf would turn a finite loss into nan.
        uniform = torch.where(counted, -(log_p * w).sum(-1) / num_classes, zero)
        losses = (1 - label_smoothing) * losses + label_smoothing * uniform

    loss = losses.sum() / w_target.sum() if reduction == "mean" else _reduce(losses, reduction)
    return loss.to(logits.dtype)


# --- contrastive losses ---------------------------------------------------------------------------

def _check_pairs(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Two (N, D) batches of embeddings, row i of one paired with row i of the other, N >= 2."""
    _check_floating(name_a, a)
    _check_floating(name_b, b)
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"{name_a} and {name_b} must be (N, D) batches of embeddings, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} has {a.shape[0]} rows but {name_b} has {b.shape[0]}: row i of one must be "
                         f"the positive partner of row i of the other, so both need the same batch size")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_a} has dimension {a.shape[1]} but {name_b} has {b.shape[1]}: a similarity "
                         f"needs embeddings of the same size")
    if a.shape[0] < 2:
        raise ValueError(f"a contrastive loss needs a batch of at least 2 pairs, got {a.shape[0]}: with one pair "
                         f"there are no negatives to contrast with, and the loss is always 0")


def _check_temperature(temperature: float | torch.Tensor) -> None:
    value = float(temperature.detach()) if isinstance(temperature, torch.Tensor) else float(temperature)
    if not value > 0:  # also refuses nan
        raise ValueError(f"temperature must be > 0 (it divides the similarities), got {value}")


def cosine_similarities(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All cosine similarities ``a_i · b_j / (|a_i| |b_j|)``: ``a`` (N, D), ``b`` (M, D) -> (N, M), in [-1, 1]."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"cosine_similarities needs (N, D) and (M, D) with the same D, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def info_nce(queries: torch.Tensor, keys: torch.Tensor, temperature: float | torch.Tensor = 0.1,
             reduction: str = "mean") -> torch.Tensor:
    """InfoNCE: for each query ``i``, the cross-entropy of picking its own key ``i`` among all N keys.

    ``queries``, ``keys``: (N, D), row ``i`` of each a positive pair; the other N - 1 keys are the
    negatives of query ``i``. With cosine similarities ``s_ij``,

        loss_i = -log( exp(s_ii / t) / sum_j exp(s_ij / t) ),

    the cross-entropy of the logits ``S / t`` (N, N) with targets ``0, 1, ..., N-1``. ``reduction``:
    ``"mean"``, ``"sum"`` or ``"none"`` (the N losses).
    """
    _check_pairs("queries", queries, "keys", keys)
    _check_temperature(temperature)
    logits = cosine_similarities(queries, keys) / temperature  # (N, N)
    targets = torch.arange(len(queries), device=queries.device)
    return cross_entropy(logits, targets, reduction=reduction)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float | torch.Tensor = 0.5,
            reduction: str = "mean") -> torch.Tensor:
    """SimCLR's NT-Xent (normalised temperature-scaled cross-entropy) over two views of N examples.

    ``z1``, ``z2``: (N, D), row ``i`` of each a view of example ``i``. All 2N views are anchors; an
    anchor's positive is the other view of its example, its negatives the other 2N - 2 views (itself
    excluded). The loss of each anchor is InfoNCE over those 2N - 1 candidates; ``"mean"`` averages
    the 2N anchors, ``"none"`` returns them (2N,): first the anchors from ``z1``, then from ``z2``.
    """
    _check_pairs("z1", z1, "z2", z2)
    _check_temperature(temperature)
    n = len(z1)
    z = torch.cat([z1, z2])  # (2N, D)
    similarities = cosine_similarities(z, z) / temperature  # (2N, 2N)
    # An anchor is not its own candidate: drop the diagonal, leaving (2N, 2N - 1) logits. Anchor i < N
    # finds its positive at column N + i, one to the left once column i is gone; anchor N + i at column i.
    others = ~torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = similarities[others].view(2 * n, 2 * n - 1)
    targets = torch.cat([torch.arange(n - 1, 2 * n - 1), torch.arange(n)]).to(z.device)
    return cross_entropy(logits, targets, reduction=reduction)


def clip_loss(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor,
              temperature: float | torch.Tensor = 0.07) -> torch.Tensor:
    """CLIP's symmetric loss: the mean of InfoNCE image -> text (each image picks its caption among the
    batch's N captions) and text -> image (each caption picks its image). Both (N, D), row ``i`` a pair.
    """
    _check_pairs("image_embeddings", image_embeddings, "text_embeddings", text_embeddings)
    return (info_nce(image_embeddings, text_embeddings, temperature)
            + info_nce(text_embeddings, image_embeddings, temperature)) / 2


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None = None,
                      temperature: float = 1.0, *, teacher_probs: torch.Tensor | None = None) -> torch.Tensor:
    """Knowledge distillation (Hinton et al. 2015): the cross-entropy from the teacher's softened
    distribution to the student's, times ``temperature²``.

    ``student_logits`` (..., C); the teacher as ``teacher_logits`` (..., C), softened to
    ``softmax(teacher_logits / temperature)``, or directly as ``teacher_probs`` (..., C), each row a
    distribution. The loss is ``T² · cross_entropy(student_logits / T, p_teacher)`` (mean over
    positions); the factor ``T²`` keeps the gradients' size about the same at every temperature. With
    ``T = 1`` and one-hot teacher probabilities it is the ordinary cross-entropy with those labels.
    """
    _check_floating("student_logits", student_logits)
    _check_temperature(temperature)
    if (teacher_logits is None) == (teacher_probs is None):
        raise ValueError("give exactly one of teacher_logits or teacher_probs")
    teacher = teacher_logits if teacher_probs is None else teacher_probs
    _check_floating("the teacher", teacher)
    if teacher.shape != student_logits.shape:
        raise ValueError(f"the teacher's shape {tuple(teacher.shape)} differs from the student's "
                         f"{tuple(student_logits.shape)}: both are (..., C) over the same classes")
    if teacher_probs is None:
        teacher_probs = softmax(teacher_logits.detach() / temperature)
    return temperature**2 * cross_entropy(student_logits / temperature, teacher_probs)
