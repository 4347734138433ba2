"""Evaluation metrics: how often a classifier is right, which classes it confuses, whether its
confidence can be trusted; and, for generated text, exact match and BLEU.

    accuracy(logits, targets)                    # logits (N, C) or (..., C), targets (N,) or (...)
    confusion_matrix(predicted, targets, 10)     # (10, 10): row = true class, column = predicted
    macro_f1(logits, targets)                    # F1 of each class, averaged: rare classes count fully
    calibration(probabilities, targets).ece      # expected calibration error of the top-class confidence
    roc_auc(scores, is_positive)                 # P(a positive outscores a negative), ties counting 1/2

Predictions may be scores (logits or probabilities, with one more dimension than the targets, the
classes last: the arg-max is the predicted class) or class labels of the same shape as the targets.
Tensors, NumPy arrays and lists are accepted; the results agree with scikit-learn's (tested).

    exact_match(["三百零五", "十"], ["三百零五", "一十"])   # 0.5: the share of outputs equal to their targets
    bleu(hypotheses, references, max_n=4)             # corpus BLEU in [0, 1] (sacreBLEU reports 100 x this)

For recommendation, one held-out item per user, ranked among all items by a model's scores:

    recall_at_k(scores, targets, k=10)       # scores (N, I), targets (N,): the share of held-out items in the top k
    ndcg_at_k(scores, targets, k=10)         # 1 / log2(rank + 1) inside the top k (equals scikit-learn's ndcg_score)
    ranking_ceiling(probabilities, k=10)     # (recall, ndcg) of the best ranking when targets follow probabilities
    character_error_rate(["sevn"], ["seven"])         # 0.2: edits over reference characters (WER: words)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

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
    ``[0, C)`` (with labels, non-negative). Scores with nan are refused (their arg-max means nothing).
    """
    predictions = _as_tensor("predictions", predictions)
    if predictions.is_floating_point() and predictions.isnan().any():
        raise ValueError(f"predictions hold {int(predictions.isnan().sum())} nan score(s): accuracy needs scores "
                         f"that are numbers (did the model diverge?)")
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


def f1_scores(predictions, targets, num_classes: int | None = None) -> torch.Tensor:
    """F1 of each class, ``2 TP / (2 TP + FP + FN)``: shape (C,), float64.

    The harmonic mean of the class's precision and recall. A class that occurs neither in the targets
    nor in the predictions has no F1 (NaN); one that occurs on one side only scores 0. Shapes and
    ``num_classes`` as for ``confusion_matrix``.
    """
    counts = confusion_matrix(predictions, targets, num_classes).double()
    right = counts.diag()
    occurrences = counts.sum(0) + counts.sum(1)  # predicted + true: 2 TP + FP + FN
    return torch.where(occurrences > 0, 2 * right / occurrences.clamp(min=1), torch.full_like(right, float("nan")))


def macro_f1(predictions, targets, num_classes: int | None = None) -> float:
    """The mean of the per-class F1 scores over the classes that occur in the targets or predictions
    (scikit-learn's ``f1_score(average="macro")``), in [0, 1].

    Unlike accuracy, every class weighs the same however rare it is: a classifier that ignores a
    small class loses a whole class's share.
    """
    return f1_scores(predictions, targets, num_classes).nanmean().item()


@dataclass
class Calibration:
    """How well confidence matches accuracy, in ``bins`` equal-width bins of the top-class probability.

    ``edges`` (bins + 1,); per bin (NaN where a bin is empty): ``confidence``, the mean top-class
    probability, and ``accuracy``, the fraction of those predictions that were right; ``counts``,
    the number of examples, int64. A bin holds the confidences in ``(edges[i], edges[i + 1]]``
    (the first also 0), as scikit-learn's ``calibration_curve`` bins them.
    """

    edges: torch.Tensor
    confidence: torch.Tensor
    accuracy: torch.Tensor
    counts: torch.Tensor

    @property
    def ece(self) -> float:
        """Expected calibration error: ``sum_b (n_b / N) |accuracy_b - confidence_b|`` over the bins."""
        filled = self.counts > 0
        gaps = (self.accuracy[filled] - self.confidence[filled]).abs()
        return (gaps * self.counts[filled]).sum().item() / self.counts.sum().item()


def calibration(probabilities, targets, bins: int = 10) -> Calibration:
    """Bin the top-class probabilities ``(N, C)`` (rows summing to 1) of ``N`` examples with targets
    ``(N,)`` and compare, per bin, the mean confidence with the accuracy (a reliability diagram).

    A calibrated classifier is right 80% of the time when it says 80%: its points lie on the
    diagonal and its ``ece`` is 0.
    """
    p = _as_tensor("probabilities", probabilities)
    if p.dim() != 2 or not p.is_floating_point():
        raise ValueError(f"probabilities must be a floating-point tensor of shape (N, C), got {tuple(p.shape)} {p.dtype}")
    p = p.double()
    sums = p.sum(1)
    if len(p) and (p.min() < 0 or p.max() > 1 or (sums - 1).abs().max() > 1e-3):
        raise ValueError(
            f"probabilities must lie in [0, 1] with rows summing to 1 (pass softmax(logits), not logits); got "
            f"values from {p.min().item():.3g} to {p.max().item():.3g}, row sums from {sums.min().item():.4g} "
            f"to {sums.max().item():.4g}"
        )
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    labels, targets, columns = _labels(p, targets)
    _check_range("targets", targets, columns)
    confidence, correct = p.max(1).values, (labels == targets).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64, device=p.device)
    which = torch.bucketize(confidence, edges[1:-1])  # bin i holds (edges[i], edges[i + 1]]
    counts = torch.bincount(which, minlength=bins)

    def bin_mean(x: torch.Tensor) -> torch.Tensor:  # 0 / 0 = NaN in an empty bin
        return (torch.bincount(which, weights=x, minlength=bins) / counts).cpu()

    return Calibration(edges.cpu(), bin_mean(confidence), bin_mean(correct), counts.cpu())


def _sequences(name: str, items) -> list:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise TypeError(f"{name} must be a list (one entry per example), got {type(items).__name__}")
    return list(items)


def exact_match(predictions: Sequence, targets: Sequence) -> float:
    """The share of ``predictions`` equal to their ``targets`` (strings, or lists of tokens or ids),
    compared exactly: ``"三百零五" != "三百零五 "``. Lists of equal length, one entry per example."""
    predictions, targets = _sequences("predictions", predictions), _sequences("targets", targets)
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets: give one prediction per target")
    if not targets:
        raise ValueError("no examples: predictions and targets are empty")
    same = [(list(p) if isinstance(p, torch.Tensor) else p) == (list(t) if isinstance(t, torch.Tensor) else t)
            for p, t in zip(predictions, targets)]
    return sum(same) / len(same)


def _tokens(name: str, text, split: str) -> list:
    if isinstance(text, str):
        return text.split() if split == "whitespace" else [c for c in text if not c.isspace()]
    if isinstance(text, torch.Tensor):
        return text.tolist()
    if isinstance(text, Sequence):
        return list(text)
    raise TypeError(f"each of {name} must be a string or a list of tokens, got {type(text).__name__}")


def ngram_counts(tokens: Sequence, n: int) -> Counter:
    """How often each ``n``-gram (a tuple of ``n`` tokens) occurs in ``tokens``."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu(hypotheses: Sequence, references: Sequence, max_n: int = 4, split: str = "whitespace") -> float:
    """Corpus BLEU (Papineni et al., 2002) in [0, 1], one reference per hypothesis, no smoothing.

    For ``n = 1..max_n``, the modified precision ``p_n`` is the number of the hypotheses' n-grams found
    in their reference, each counted at most as often as it occurs there (clipping: "the the the" does
    not match "the cat" three times), over the number of the hypotheses' n-grams, summed over the
    corpus. With ``c`` the hypotheses' and ``r`` the references' total length, the brevity penalty is
    ``BP = 1`` if ``c > r`` else ``exp(1 - r / c)``, and

        BLEU = BP * exp(mean_n log p_n)          (0 when some p_n is 0)

    Hypotheses and references are lists of token lists (or of id tensors), or of strings, which are
    split on whitespace (``split="whitespace"``, for words) or into characters (``split="chars"``,
    whitespace dropped, for Chinese numerals). sacreBLEU's ``corpus_bleu`` with tokenisation already
    done and no smoothing gives ``100 *`` this value.
    """
    if split not in ("whitespace", "chars"):
        raise ValueError(f"split must be 'whitespace' or 'chars', got {split!r}")
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"max_n must be a positive int, got {max_n!r}")
    hypotheses, references = _sequences("hypotheses", hypotheses), _sequences("references", references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references: give one reference per "
                         f"hypothesis")
    if not hypotheses:
        raise ValueError("no examples: hypotheses and references are empty")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_length = ref_length = 0
    for hyp, ref in zip(hypotheses, references):
        hyp, ref = _tokens("hypotheses", hyp, split), _tokens("references", ref, split)
        hyp_length, ref_length = hyp_length + len(hyp), ref_length + len(ref)
        for n in range(1, max_n + 1):
            hyp_counts, ref_counts = ngram_counts(hyp, n), ngram_counts(ref, n)
            matches[n - 1] += sum(min(count, ref_counts[gram]) for gram, count in hyp_counts.items())
            totals[n - 1] += sum(hyp_counts.values())
    if hyp_length == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = 1.0 if hyp_length > ref_length else math.exp(1 - ref_length / hyp_length)
    return brevity * math.exp(log_precision)


# --- ranking: one held-out item per user ------------------------------------------------------------


def _ranking_inputs(scores, targets, k) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Scores ``(N, I)`` float64 and targets ``(N,)`` int64 after checking shapes, ids and ``k``."""
    scores, targets = _as_tensor("scores", scores), _as_tensor("targets", targets)
    if scores.dim() != 2:
        raise ValueError(f"scores must have shape (users, items), one score per item, got {_shape(scores.shape)}")
    if targets.is_floating_point():
        raise TypeError(f"targets must be item ids (an integer tensor), got {targets.dtype}")
    if targets.shape != (scores.size(0),):
        raise ValueError(f"targets of shape {_shape(targets.shape)} do not fit scores of shape {_shape(scores.shape)}: "
                         f"expected one held-out item per user, shape ({scores.size(0)},)")
    if targets.numel() == 0:
        raise ValueError("no users: scores and targets are empty")
    n_items = scores.size(1)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_items:
        raise ValueError(f"k must be an int in [1, {n_items}] (the number of items), got {k!r}")
    low, high = int(targets.min()), int(targets.max())
    if low < 0 or high >= n_items:
        raise ValueError(f"targets hold unknown item id {low if low < 0 else high}: the scores cover items "
                         f"0..{n_items - 1}")
    if not torch.isfinite(scores.double()).all():
        raise ValueError("scores must be finite (no nan or inf)")
    return scores.double(), targets.long().to(scores.device), k


def _rank_span(scores: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each user, how many items score above the held-out one (``above``) and how many tie with
    it, itself included (``tied``): it sits at a rank in ``above + 1 .. above + tied``."""
    target_scores = scores.gather(1, targets[:, None])
    return (scores > target_scores).sum(1), (scores == target_scores).sum(1)


def _expected_over_ties(scores, targets, k, gain_at) -> torch.Tensor:
    """``(N,)``: the mean of ``gain_at(rank)`` (0 beyond k) over the ranks the held-out item may take
    when ties are broken at random."""
    above, tied = _rank_span(scores, targets)
    ranks = torch.arange(1, k + 1, dtype=torch.float64, device=scores.device)  # (k,)
    inside = (ranks[None] > above[:, None]) & (ranks[None] <= (above + tied)[:, None])  # (N, k)
    return (gain_at(ranks)[None] * inside).sum(1) / tied


def recall_at_k(scores, targets, k: int = 10, reduce: bool = True):
    """Recall@k (= hit rate with one held-out item): whether the held-out item is among the ``k``
    items of highest score.

    ``scores`` ``(N, I)``: a score for every item for each of ``N`` users; ``targets`` ``(N,)``: each
    user's held-out item id. Ties are broken at random, in expectation: an item tied with others
    across the k-th place counts for its chance of being inside. Returns the mean over users, or the
    ``(N,)`` float64 values with ``reduce=False``.
    """
    scores, targets, k = _ranking_inputs(scores, targets, k)
    values = _expected_over_ties(scores, targets, k, torch.ones_like)
    return float(values.mean()) if reduce else values


def ndcg_at_k(scores, targets, k: int = 10, reduce: bool = True):
    """NDCG@k with one held-out item per user: ``1 / log2(rank + 1)`` when the item's rank (1 = the
    highest score) is at most ``k``, else 0. The ideal ranking puts the item first, ``1 / log2(2) = 1``,
    so no normalisation is left to do.

    Shapes and ties as ``recall_at_k`` (a tie averages the discounts of the ranks it spans, as
    scikit-learn's ``ndcg_score`` does, and equals it on one-hot relevance).
    """
    scores, targets, k = _ranking_inputs(scores, targets, k)
    values = _expected_over_ties(scores, targets, k, lambda ranks: 1.0 / torch.log2(ranks + 1))
    return float(values.mean()) if reduce else values


def ranking_ceiling(probabilities, k: int = 10) -> tuple[float, float]:
    """``(recall, ndcg)``: the best expected Recall@k and NDCG@k of any ranking, when each user's
    held-out item is drawn from ``probabilities`` ``(N, I)`` (rows summing to 1).

    Ranking by the true probabilities is best: it puts the largest ``p`` on the largest discount, so
    expected Recall@k is the sum of the ``k`` largest probabilities and expected NDCG@k is
    ``sum_r p_(r) / log2(r + 1)`` over the ranks ``r = 1..k``. Averaged over users.
    """
    p = _as_tensor("probabilities", probabilities).double()
    if p.dim() != 2 or p.numel() == 0:
        raise ValueError(f"probabilities must have shape (users, items), got {_shape(p.shape)}")
    if (p < 0).any() or not torch.allclose(p.sum(1), torch.ones_like(p[:, 0]), atol=1e-6):
        raise ValueError("probabilities must be non-negative with rows summing to 1")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= p.size(1):
        raise ValueError(f"k must be an int in [1, {p.size(1)}] (the number of items), got {k!r}")
    top = p.topk(k, dim=1).values
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64, device=p.device))
    return float(top.sum(1).mean()), float((top * discounts).sum(1).mean())
def edit_distance(hypothesis: Sequence, reference: Sequence) -> int:
    """The Levenshtein distance: the fewest substitutions, deletions and insertions that turn
    ``hypothesis`` into ``reference`` (two strings, or two lists of tokens)."""
    previous = list(range(len(reference) + 1))          # distances from an empty hypothesis prefix
    for i, h in enumerate(hypothesis, start=1):
        current = [i]
        for j, r in enumerate(reference, start=1):
            current.append(min(previous[j] + 1,                 # h is extra: delete it
                               current[j - 1] + 1,              # r is missing: insert it
                               previous[j - 1] + (h != r)))     # substitute (free when equal)
        previous = current
    return previous[-1]


def _error_rate(hypotheses: Sequence, references: Sequence, units) -> float:
    hypotheses, references = _sequences("hypotheses", hypotheses), _sequences("references", references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references: give one reference per "
                         f"hypothesis")
    if not references:
        raise ValueError("no examples: hypotheses and references are empty")
    for name, texts in (("hypotheses", hypotheses), ("references", references)):
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"each of {name} must be a string, got {type(text).__name__}")
    edits = sum(edit_distance(units(h), units(r)) for h, r in zip(hypotheses, references))
    length = sum(len(units(r)) for r in references)
    if length == 0:
        raise ValueError("the references are all empty: an error rate divides by their length")
    return edits / length


def character_error_rate(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """CER: the character edits from the hypotheses to their references over the references' total
    number of characters (spaces count), summed over the corpus. Can exceed 1 (many insertions)."""
    return _error_rate(hypotheses, references, lambda text: text)


def word_error_rate(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """WER: the word edits (words split on whitespace) over the references' number of words."""
    return _error_rate(hypotheses, references, str.split)


def roc_auc(scores, is_positive) -> float:
    """The area under the ROC curve of ``scores`` (N,) for the binary truth ``is_positive`` (N,).

    It equals the probability that a randomly chosen positive example scores higher than a randomly
    chosen negative one, a tie counting one half (the Mann-Whitney statistic): 0.5 is chance, 1 a
    perfect ranking. Equal to scikit-learn's ``roc_auc_score`` (tested).
    """
    scores = _as_tensor("scores", scores).double()
    truth = torch.as_tensor(is_positive)
    if scores.dim() != 1 or truth.shape != scores.shape:
        raise ValueError(f"scores and is_positive must both have shape (N,), got {_shape(scores.shape)} and "
                         f"{_shape(truth.shape)}")
    truth = truth.bool() if truth.dtype == torch.bool else truth.long()
    if truth.dtype != torch.bool and not ((truth == 0) | (truth == 1)).all():
        raise ValueError("is_positive must be 0/1 or True/False")
    truth = truth.bool()
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"the AUC needs positives and negatives, got {n_pos} positive and {n_neg} negative")
    # average ranks (1-based, ties share their mean rank), then the Mann-Whitney U of the positives
    order = scores.argsort()
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    unique, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    first = torch.cumsum(counts, 0) - counts + 1                      # the first rank of each tie group
    mean_rank = (first + (counts - 1) / 2).double()
    ranks[order] = mean_rank[inverse]
    u = ranks[truth].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))
