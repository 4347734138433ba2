"""Using a pretrained encoder for a new task. For now: probes, which measure how useful frozen
features are by how well the simplest classifiers do on them.

    train_f = extract_features(encoder, train_images)           # (N, D), the encoder unchanged
    probe = linear_probe(train_f, train_labels)                 # logistic regression on the features
    accuracy(probe(extract_features(encoder, test_images)), test_labels)
    predicted = knn_predict(train_f, train_labels, test_f, k=5) # majority vote of the 5 most similar

A linear probe asks "is the information there, linearly readable?"; k-nearest neighbours asks "are
examples of a class close together?". Neither changes the encoder, so they compare encoders fairly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fmcourse.objectives import cosine_similarities, cross_entropy


@torch.no_grad()
def extract_features(encoder: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``encoder``'s outputs for ``images`` (N, ...) -> (N, D), in eval mode, in batches, on the
    encoder's device, as float32; the encoder's training mode is restored afterwards."""
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    features = torch.cat([encoder(batch.to(device)) for batch in images.split(batch_size)])
    encoder.train(was_training)
    return features.float()


def _check_labelled(features: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or not features.is_floating_point():
        got = (f"{tuple(features.shape)} {features.dtype}" if isinstance(features, torch.Tensor)
               else type(features).__name__)
        raise TypeError(f"features must be a floating-point tensor of shape (N, D), got {got}")
    if not isinstance(labels, torch.Tensor) or labels.shape != features.shape[:1] or labels.is_floating_point():
        got = f"{tuple(labels.shape)} {labels.dtype}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be integer class indices of shape ({len(features)},), one per row of "
                         f"features, got {got}")
    if len(labels) and labels.min() < 0:
        raise ValueError(f"labels must be class indices >= 0, got {labels.min().item()}")


class LinearProbe(nn.Module):
    """A linear classifier on standardised features: ``(N, D) -> (N, num_classes)`` logits."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, linear: nn.Linear):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = linear

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[1] != self.mean.numel():
            raise ValueError(f"expected features of shape (N, {self.mean.numel()}), got {tuple(features.shape)}")
        return self.linear((features.to(self.mean) - self.mean) / self.std)


def linear_probe(features: torch.Tensor, labels: torch.Tensor, l2: float = 1e-3, max_iter: int = 300,
                 num_classes: int | None = None) -> LinearProbe:
    """Multinomial logistic regression on frozen ``features`` (N, D) with ``labels`` (N,).

    The features are standardised (each column to mean 0 and standard deviation 1 on these data);
    then ``mean cross-entropy + l2 / 2 * |W|^2`` (the bias is not penalised) is minimised with L-BFGS.
    The objective is convex, so the result does not depend on a seed: the same as scikit-learn's
    ``LogisticRegression(C=1 / (l2 * N))`` on the same standardised features (tested).
    """
    _check_labelled(features, labels)
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0 (it keeps the solution unique and finite), got {l2}")
    num_classes = num_classes or int(labels.max()) + 1
    if int(labels.max()) >= num_classes:
        raise ValueError(f"labels go up to {labels.max().item()} but num_classes is {num_classes}")
    x = features.detach()
    mean, std = x.mean(0), x.std(0, unbiased=False)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant feature stays 0 after centring
    probe = LinearProbe(mean, std, nn.Linear(x.shape[1], num_classes, dtype=x.dtype, device=x.device))
    nn.init.zeros_(probe.linear.weight)
    nn.init.zeros_(probe.linear.bias)
    z, y = (x - mean) / std, labels.to(x.device)
    optimizer = torch.optim.LBFGS(probe.linear.parameters(), lr=1, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = cross_entropy(probe.linear(z), y) + l2 / 2 * probe.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return probe.requires_grad_(False).eval()


def knn_predict(train_features: torch.Tensor, train_labels: torch.Tensor, features: torch.Tensor,
                k: int = 5) -> torch.Tensor:
    """The majority label of each row's ``k`` most similar (cosine) training rows: (M, D) -> (M,).

    ``train_features`` (N, D) with ``train_labels`` (N,). A tie goes to the smallest label, as in
    scikit-learn's ``KNeighborsClassifier``.
    """
    _check_labelled(train_features, train_labels)
    if features.dim() != 2 or features.shape[1] != train_features.shape[1]:
        raise ValueError(f"features must have shape (M, {train_features.shape[1]}) like the training features, "
                         f"got {tuple(features.shape)}")
    if not 1 <= k <= len(train_features):
        raise ValueError(f"k must be between 1 and the number of training rows ({len(train_features)}), got {k}")
    nearest = cosine_similarities(features, train_features).topk(k, dim=1).indices  # (M, k)
    votes = F.one_hot(train_labels.to(nearest.device)[nearest], int(train_labels.max()) + 1).sum(1)  # (M, classes)
    return votes.argmax(1)  # the first of equal maxima: the smallest label
