"""Chapter 05 exercises: InfoNCE, the loss of a collapsed encoder, CLIP's symmetric loss, zero-shot prediction."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fmcourse.exercises import Exercise
from fmcourse.objectives import clip_loss as _clip_loss
from fmcourse.objectives import info_nce as _info_nce
from fmcourse.objectives import nt_xent


def _embedding_pairs(g: torch.Generator, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (n, d) batches with rows of very different lengths, so forgetting to normalise shows."""
    scale = torch.rand(n, 1, generator=g) * 5 + 0.1
    return torch.randn(n, d, generator=g) * scale, torch.randn(n, d, generator=g)


def _check_loss(fn, reference) -> str | None:
    g = torch.Generator().manual_seed(0)
    for n, d, temperature in ((2, 3, 1.0), (7, 5, 0.1), (16, 8, 0.5)):
        a, b = _embedding_pairs(g, n, d)
        expected = reference(a, b, temperature)
        got = fn(a, b, temperature)
        if not isinstance(got, torch.Tensor) or got.dim() != 0:
            return ("expected a scalar tensor (the mean over the batch), "
                    f"got {getattr(got, 'shape', type(got).__name__)}")
        if not torch.allclose(got, expected, atol=1e-5):
            return f"for N={n}, D={d}, temperature {temperature}: expected {expected.item():.5f}, got {got.item():.5f}"
    return None


def info_nce_solution(queries, keys, temperature):
    q, k = F.normalize(queries, dim=1), F.normalize(keys, dim=1)
    logits = q @ k.T / temperature                     # (N, N): query i against key j
    return F.cross_entropy(logits, torch.arange(len(q)))  # the partner of query i is key i


def _info_nce_unnormalised(queries, keys, temperature):
    return F.cross_entropy(queries @ keys.T / temperature, torch.arange(len(queries)))


info_nce = Exercise(
    title="InfoNCE",
    checker=lambda fn: _check_loss(fn, _info_nce),
    hint="cosine similarities (normalise the rows first), divided by the temperature, give (N, N) logits; "
         "query i's right answer is key i: cross-entropy with targets 0, 1, ..., N-1",
    solution=info_nce_solution,
    mistake=_info_nce_unnormalised,
)


def _check_collapsed(fn) -> str | None:
    for n in (2, 5, 64, 256):
        same = torch.ones(n, 4)  # every view of every image mapped to one vector
        expected = nt_xent(same, same, temperature=0.5).item()
        got = fn(n)
        if not isinstance(got, (int, float)) or not math.isclose(got, expected, rel_tol=1e-4):
            return f"for a batch of N={n} images the collapsed loss is {expected:.4f}, your formula gives {got!r}"
    return None


def collapsed_loss_solution(n):
    # All similarities are equal, so each anchor's softmax is uniform over its 2N - 1 candidates
    # (every view but itself), and the positive gets probability 1 / (2N - 1).
    return math.log(2 * n - 1)


collapsed_loss = Exercise(
    title="the NT-Xent loss of a collapsed encoder",
    checker=_check_collapsed,
    hint="all similarities are equal, so each anchor's softmax is uniform over its candidates: how many "
         "candidates does one of the 2N views have (itself excluded)?",
    solution=collapsed_loss_solution,
    mistake=lambda n: math.log(2 * n),  # forgets that an anchor is not its own candidate
)


def clip_loss_solution(image_embeddings, text_embeddings, temperature):
    images, texts = F.normalize(image_embeddings, dim=1), F.normalize(text_embeddings, dim=1)
    logits = images @ texts.T / temperature            # (N, N): image i against text j
    targets = torch.arange(len(images))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


clip_loss = Exercise(
    title="CLIP's symmetric loss",
    checker=lambda fn: _check_loss(fn, _clip_loss),
    hint="each image picks its caption among the N captions (rows of the logits), and each caption picks its "
         "image among the N images (columns, i.e. rows of the transpose); average the two cross-entropies",
    solution=clip_loss_solution,
    mistake=info_nce_solution,  # one direction only: image -> text, without text -> image
)


def _check_zero_shot(fn) -> str | None:
    g = torch.Generator().manual_seed(0)
    for n, c, d in ((20, 3, 4), (50, 10, 16)):
        images = torch.randn(n, d, generator=g) * (torch.rand(n, 1, generator=g) * 3 + 0.1)
        classes = torch.randn(c, d, generator=g) * torch.linspace(0.2, 5, c)[:, None]  # different lengths
        expected = (F.normalize(images, dim=1) @ F.normalize(classes, dim=1).T).argmax(1)
        got = fn(images, classes)
        if not isinstance(got, torch.Tensor) or got.shape != (n,):
            return (f"expected a tensor of {n} class indices, shape ({n},), "
                    f"got {getattr(got, 'shape', type(got).__name__)}")
        if not torch.equal(got.long(), expected):
            return (f"{int((got.long() != expected).sum())} of {n} predictions differ from the class of highest "
                    f"cosine similarity")
    return None


def zero_shot_solution(image_embeddings, class_embeddings):
    similarities = F.normalize(image_embeddings, dim=1) @ F.normalize(class_embeddings, dim=1).T  # (N, C)
    return similarities.argmax(dim=1)


zero_shot = Exercise(
    title="zero-shot prediction",
    checker=_check_zero_shot,
    hint="compare directions, not lengths: the cosine similarity of every image with every class text, "
         "then the class with the highest one",
    solution=zero_shot_solution,
    mistake=lambda image_embeddings, class_embeddings: (image_embeddings @ class_embeddings.T).argmax(dim=1),
)
