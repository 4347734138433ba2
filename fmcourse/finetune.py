"""Using a pretrained model for a new task: probes that leave it frozen, and fine-tuning that changes it.

Probes measure how useful frozen features are by how well the simplest classifiers do on them:

    train_f = extract_features(encoder, train_images)           # (N, D), the encoder unchanged
    probe = linear_probe(train_f, train_labels)                 # logistic regression on the features
    accuracy(probe(extract_features(encoder, test_images)), test_labels)
    predicted = knn_predict(train_f, train_labels, test_f, k=5) # majority vote of the 5 most similar

A linear probe asks "is the information there, linearly readable?"; k-nearest neighbours asks "are
examples of a class close together?". Neither changes the encoder, so they compare encoders fairly.

Fine-tuning trains a classification head together with the backbone, all of it or a small part:

    model = Classifier(MeanPooled(gpt), num_classes=6)          # token ids (B, T) -> logits (B, 6)
    add_lora(model.backbone, rank=4)                            # freeze the backbone, add LoRA adapters
    fit(model, labelled_batches, lambda m, batch: m.loss(*batch), steps=100, lr=1e-2)
    count_parameters(model)                                     # what was trained: adapters + head
    remove_lora(model.backbone)                                 # the pretrained backbone, exactly as it was
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from fmcourse.metrics import accuracy
from fmcourse.models import TransformerLM
from fmcourse.nn import LoRALinear, mean_over_tokens
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


def tuned_linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, val_features: torch.Tensor,
                       val_labels: torch.Tensor, l2s: Iterable[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
                       ) -> tuple[LinearProbe, float, float]:
    """``linear_probe`` with its penalty ``l2`` chosen on validation from ``l2s``.

    Features ``(N, D)`` and ``(M, D)``, labels ``(N,)`` and ``(M,)``. Returns the chosen probe, its
    ``l2`` and its validation accuracy; a tie goes to the stronger penalty.
    """
    best = None
    for l2 in sorted(l2s, reverse=True):
        probe = linear_probe(train_features, train_labels, l2=l2)
        score = accuracy(probe(val_features).cpu(), val_labels.cpu())
        if best is None or score > best[2]:
            best = (probe, l2, score)
    if best is None:
        raise ValueError("l2s is empty: give at least one penalty to try")
    return best


def char_ngram_counts(train_texts: list[str], *other_texts: list[str], n: int = 2) -> list:
    """Counts of the character ``n``-grams of each text, a NumPy array ``(len(texts), V)`` per list:
    the raw features of the n-gram baseline. The vocabulary of ``V`` n-grams comes from
    ``train_texts`` (scikit-learn's ``CountVectorizer``); n-grams seen only elsewhere are dropped."""
    from sklearn.feature_extraction.text import CountVectorizer

    if isinstance(train_texts, str) or not train_texts:
        raise TypeError("train_texts must be a non-empty list of strings")
    vectorizer = CountVectorizer(analyzer="char", ngram_range=(n, n), lowercase=False).fit(train_texts)
    return [vectorizer.transform(texts).toarray().astype("float64") for texts in (train_texts, *other_texts)]


def logistic_regression_baseline(train_x, train_y, val_x, val_y, Cs: Iterable[float] = (0.01, 0.1, 1.0, 10.0, 100.0)):
    """The strong simple baseline: scikit-learn's logistic regression on raw features (NumPy
    ``(N, F)``, standardised), its inverse penalty ``C`` chosen on validation from ``Cs``.

    Returns ``(predict, C, validation accuracy)``, ``predict`` mapping raw features ``(M, F)`` to
    labels ``(M,)``; a tie goes to the stronger penalty (the smaller ``C``).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best = None
    for C in sorted(Cs):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(train_x, train_y)
        score = float((model.predict(val_x) == val_y).mean())
        if best is None or score > best[2]:
            best = (model.predict, C, score)
    if best is None:
        raise ValueError("Cs is empty: give at least one C to try")
    return best


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


def stratified_subset(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Indices of a random ``fraction`` of each class of ``labels`` (N,), at least one per class.

    Keeps the class balance of the full set, as a small labelled budget drawn from it should; a
    different ``seed`` draws a different subset. Returns sorted int64 indices.
    """
    if labels.dim() != 1 or labels.is_floating_point() or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty 1-D integer tensor, got {tuple(labels.shape)} {labels.dtype}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    g = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    chosen = []
    for c in labels.unique().tolist():
        members = torch.nonzero(labels == c).flatten()
        keep = max(1, round(fraction * len(members)))
        chosen.append(members[torch.randperm(len(members), generator=g)[:keep]])
    return torch.cat(chosen).sort().values


# --- changing the model: freezing, classification heads, LoRA ---------------------------------------

_NORM_WITH_STATISTICS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def _frozen_norm_runs_in_eval(layer: nn.Module, inputs: tuple) -> None:
    """Forward pre-hook of a frozen normalisation layer: normalise with the stored running statistics
    and leave them untouched, whatever mode the surrounding model is in."""
    if getattr(layer, "fmcourse_frozen", False):
        layer.training = False


def _check_module(module) -> None:
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected a torch.nn.Module (a model or one of its parts), got {type(module).__name__}")


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients to every parameter of ``module`` (``requires_grad=False``) and freeze its
    normalisation statistics; returns it.

    BatchNorm's running mean and variance are buffers, not parameters: a frozen layer in training
    mode would still normalise with the batch's statistics and overwrite its stored ones. So every
    BatchNorm (and InstanceNorm with running statistics) inside ``module`` runs in evaluation mode
    from now on, even when ``fit`` puts the whole model in training mode: training a head or adapters
    on a frozen backbone leaves every number of its ``state_dict`` exactly as it was.
    """
    _check_module(module)
    module.requires_grad_(False)
    for layer in module.modules():
        if isinstance(layer, _NORM_WITH_STATISTICS):
            if not hasattr(layer, "fmcourse_frozen"):
                layer.register_forward_pre_hook(_frozen_norm_runs_in_eval)
            layer.fmcourse_frozen = True
            layer.eval()
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Let gradients reach every parameter of ``module`` again, and its normalisation layers follow
    the model's training mode (and update their statistics in it) again; returns it."""
    _check_module(module)
    for layer in module.modules():
        if isinstance(layer, _NORM_WITH_STATISTICS):
            layer.fmcourse_frozen = False
    return module.requires_grad_(True)


def count_parameters(module: nn.Module, trainable: bool = True) -> int:
    """The number of parameters of ``module`` that training changes (``trainable=True``) or of all.

    A parameter shared by two layers (a GPT's tied embedding and output head) counts once.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


class MeanPooled(nn.Module):
    """A Transformer language model as a text encoder: token ids ``(B, T)`` -> features ``(B, d_model)``.

    The final hidden states ``(B, T, d_model)`` (before the language-model head) are averaged over
    the real tokens (``is_token``, ``(B, T)`` bool, False at padding; all tokens when None). The model
    itself stays reachable as ``.lm``, so its pretraining loss can still be measured.
    """

    def __init__(self, lm: TransformerLM):
        super().__init__()
        if not isinstance(lm, TransformerLM):
            raise TypeError(f"MeanPooled needs a fmcourse GPT or Encoder (a TransformerLM), got {type(lm).__name__}")
        self.lm, self.dim = lm, lm.config.d_model

    def forward(self, idx: torch.Tensor, is_token: torch.Tensor | None = None) -> torch.Tensor:
        return mean_over_tokens(self.lm.hidden(idx, is_token), is_token)


class Classifier(nn.Module):
    """A backbone that gives features ``(B, D)`` and a linear head: inputs -> logits ``(B, num_classes)``.

    ``backbone`` is any module with a ``dim`` attribute (fmcourse's image encoders, ``MeanPooled``),
    or give ``dim`` explicitly. ``loss(*inputs, labels)`` is the cross-entropy ``fit`` trains with;
    it refuses labels the head has no output for.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, dim: int | None = None):
        super().__init__()
        dim = dim if dim is not None else getattr(backbone, "dim", None)
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"{type(backbone).__name__} has no `dim` attribute (its feature size): pass dim=...")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.backbone, self.head = backbone, nn.Linear(dim, num_classes)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(*inputs))

    def loss(self, *inputs_and_labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of a batch ``(*inputs, labels)``, labels ``(B,)`` in ``[0, num_classes)``."""
        *inputs, labels = inputs_and_labels
        if labels.is_floating_point() or labels.dim() != 1:
            raise TypeError(f"labels must be a 1-D integer tensor of class indices, got {tuple(labels.shape)} "
                            f"{labels.dtype}")
        if len(labels) == 0:
            raise ValueError("an empty batch: no labels to learn from")
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= self.num_classes:
            raise ValueError(
                f"the head has {self.num_classes} outputs (classes 0..{self.num_classes - 1}) but the labels go "
                f"from {low} to {high}: build the Classifier with num_classes={max(high + 1, 2)} for this task"
            )
        return cross_entropy(self(*inputs), labels)


def add_lora(module: nn.Module, rank: int, alpha: float = 8.0,
             targets: Iterable[str] | None = ("qkv", "out", "fc", "proj")) -> list[str]:
    """Freeze ``module`` and wrap its ``nn.Linear`` layers named in ``targets`` in ``LoRALinear``
    adapters (every ``nn.Linear`` when ``targets`` is None); returns the names of the adapted layers.

    The default targets are the attention (``qkv``, ``out``) and MLP (``fc``, ``proj``) projections of
    fmcourse's Transformer blocks. Only the adapters are trainable afterwards: unfreeze a head yourself.
    """
    if lora_layers(module):
        raise ValueError(f"{type(module).__name__} has LoRA adapters already: remove_lora(...) them first")
    wanted = None if targets is None else set(targets)
    linear = [(name, layer) for name, layer in module.named_modules() if name and type(layer) is nn.Linear]
    chosen = [(name, layer) for name, layer in linear if wanted is None or name.rsplit(".", 1)[-1] in wanted]
    if not chosen:
        names = [name for name, _ in linear]
        raise ValueError(f"no nn.Linear layer inside {type(module).__name__} is named one of {sorted(wanted or [])}; "
                         f"its linear layers are {names[:8]}{' ...' if len(names) > 8 else ''}")
    adapters = []
    for name, layer in chosen:  # every adapter is built (and its rank checked) before the model changes
        try:
            adapters.append((name, LoRALinear(layer, rank, alpha)))
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    freeze(module)  # the adapters are not inside yet, so they stay trainable
    for name, adapter in adapters:
        _replace(module, name, adapter)
    return [name for name, _ in adapters]


def _replace(module: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` (dotted path, e.g. ``blocks.0.attn.qkv``) is."""
    parent, _, child = name.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, child, new)


def lora_layers(module: nn.Module) -> list[LoRALinear]:
    """Every ``LoRALinear`` inside ``module``."""
    return [layer for layer in module.modules() if isinstance(layer, LoRALinear)]


def merge_lora(module: nn.Module) -> nn.Module:
    """Merge every adapter of ``module`` into its base weight (as fast as the plain model); returns it."""
    for layer in lora_layers(module):
        layer.merge()
    return module


def unmerge_lora(module: nn.Module) -> nn.Module:
    """Take every merged adapter of ``module`` out of its base weight again; returns it."""
    for layer in lora_layers(module):
        layer.unmerge()
    return module


def remove_lora(module: nn.Module, merge: bool = False) -> nn.Module:
    """Replace every ``LoRALinear`` of ``module`` by its base ``nn.Linear``; returns ``module``.

    ``merge=False`` throws the adapters away: the layers are the pretrained ones again (exactly, if
    they were never merged). ``merge=True`` keeps what they learned, merged into plain linear layers.
    The base layers stay frozen either way.
    """
    if isinstance(module, LoRALinear):
        raise TypeError("call remove_lora on the model that holds the adapter; a lone LoRALinear's plain layer is .base")
    for name, layer in [(n, m) for n, m in module.named_modules() if isinstance(m, LoRALinear)]:
        if merge:
            layer.merge()
        else:
            layer.unmerge()
        _replace(module, name, layer.base)
    return module
