"""Contrastive models: SimCLR (two views of one image agree) and CLIP (an image agrees with its caption).

    encoder = MLPEncoder((1, 8, 8), hidden=256, dim=128)            # (B, 1, 8, 8) -> (B, 128) features
    simclr = SimCLR(encoder, projection_dim=64, temperature=0.5)
    loss = simclr.loss(view1, view2)                                 # NT-Xent of the two views' projections

    clip = CLIP(ConvEncoder(3, 16, dim=128), TextEncoder(vocab_size=20, context_length=8), embed_dim=64)
    loss = clip.loss(images, ids, is_token)                          # symmetric InfoNCE over the batch
    log_p = clip.zero_shot_logits(images, prompt_ids, prompt_is_token, prompt_class)    # (B, classes)

The encoders produce the *features* that later tasks use; the projection heads map them to the
space where the contrastive loss compares them, and are thrown away after pretraining.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fmcourse.models.encoder import Encoder, EncoderConfig
from fmcourse.nn import mean_over_tokens
from fmcourse.objectives import clip_loss, cosine_similarities, log_softmax, logsumexp, nt_xent


def _check_images(images: torch.Tensor, shape: tuple[int, ...]) -> None:
    if not isinstance(images, torch.Tensor) or tuple(images.shape[1:]) != shape or images.dim() != len(shape) + 1:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape (B, {', '.join(map(str, shape))}), got {got}")


def projection_head(in_dim: int, out_dim: int, hidden: int | None = None) -> nn.Sequential:
    """A two-layer MLP ``(B, in_dim) -> (B, out_dim)`` with a ReLU between (SimCLR's projection head)."""
    hidden = hidden or in_dim
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class MLPEncoder(nn.Module):
    """A multilayer perceptron on the flattened image: ``(B, *image_shape)`` -> features ``(B, dim)``.

    Two hidden layers of width ``hidden`` with batch normalisation and ReLU (as in SimCLR's
    networks). Cheap on a CPU, and enough for 8x8 digits.
    """

    def __init__(self, image_shape: tuple[int, ...], hidden: int = 256, dim: int = 128):
        super().__init__()
        self.image_shape, self.dim = tuple(image_shape), dim
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(image_shape), hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, self.image_shape)
        return self.net(images)


class ConvEncoder(nn.Module):
    """A small CNN: images ``(B, in_channels, image_size, image_size)`` -> features ``(B, dim)``.

    Each stage is a 3x3 convolution with ReLU and a 2x2 max-pool, halving the image; the last
    feature map is flattened (not averaged), so the features still know *where* things are.
    """

    def __init__(self, in_channels: int, image_size: int, widths: tuple[int, ...] = (16, 32), dim: int = 128):
        super().__init__()
        if image_size % 2 ** len(widths):
            raise ValueError(f"image_size {image_size} must be divisible by 2**{len(widths)} (one halving per width)")
        self.image_shape, self.dim = (in_channels, image_size, image_size), dim
        layers, channels = [], in_channels
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels = width
        side = image_size // 2 ** len(widths)
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * side * side, dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, self.image_shape)
        return self.net(images)


class SimCLR(nn.Module):
    """An encoder and a projection head trained so that two augmented views of one image agree.

    ``forward(images)`` gives the projections ``(B, projection_dim)``; ``encoder(images)`` the
    features ``(B, encoder.dim)`` to keep for downstream tasks.
    """

    def __init__(self, encoder: nn.Module, projection_dim: int = 64, temperature: float = 0.5):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.encoder, self.temperature = encoder, temperature
        self.projection = projection_head(encoder.dim, projection_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(self.encoder(images))

    def loss(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        """NT-Xent of two views ``(B, C, H, W)`` each, image ``i`` of one a view of image ``i`` of the other."""
        if view1.shape != view2.shape:
            raise ValueError(f"the two views must have the same shape, got {tuple(view1.shape)} and "
                             f"{tuple(view2.shape)}")
        z = self(torch.cat([view1, view2]))  # one pass for both views
        return nt_xent(*z.chunk(2), temperature=self.temperature)


class TextEncoder(nn.Module):
    """Word ids ``(B, T)`` -> one vector per text ``(B, d_model)``: a bidirectional Transformer
    (fmcourse's ``Encoder``) whose hidden states are averaged over the real tokens."""

    def __init__(self, vocab_size: int, context_length: int, d_model: int = 64, n_layer: int = 2, n_head: int = 4):
        super().__init__()
        self.dim = d_model
        self.transformer = Encoder(EncoderConfig(vocab_size=vocab_size, context_length=context_length,
                                                 n_layer=n_layer, n_head=n_head, d_model=d_model))

    def forward(self, ids: torch.Tensor, is_token: torch.Tensor | None = None) -> torch.Tensor:
        return mean_over_tokens(self.transformer.hidden(ids, is_token), is_token)


class CLIP(nn.Module):
    """A dual encoder: images and texts mapped into one space where a picture and its caption are close.

    Each tower is an encoder with a linear projection to ``embed_dim``; embeddings are unit vectors
    and the logits are their cosine similarities divided by a temperature that is learned (as its
    logarithm, kept at 0.01 or above) unless ``learn_temperature=False``.
    """

    def __init__(self, image_encoder: nn.Module, text_encoder: nn.Module, embed_dim: int = 64,
                 temperature: float = 0.07, learn_temperature: bool = True):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.image_projection = nn.Linear(image_encoder.dim, embed_dim, bias=False)
        self.text_projection = nn.Linear(text_encoder.dim, embed_dim, bias=False)
        log_t = torch.tensor(math.log(temperature))
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp().clamp(min=0.01)

    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """images ``(B, C, H, W)`` -> unit vectors ``(B, embed_dim)``."""
        return F.normalize(self.image_projection(self.image_encoder(images)), dim=-1)

    def text_embeddings(self, ids: torch.Tensor, is_token: torch.Tensor | None = None) -> torch.Tensor:
        """word ids ``(B, T)`` (and ``is_token``, False at padding) -> unit vectors ``(B, embed_dim)``."""
        return F.normalize(self.text_projection(self.text_encoder(ids, is_token)), dim=-1)

    def forward(self, images: torch.Tensor, ids: torch.Tensor, is_token: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B_images, B_texts)``: similarity of every image with every text, over the temperature."""
        similarities = cosine_similarities(self.image_embeddings(images), self.text_embeddings(ids, is_token))
        return similarities / self.temperature

    def loss(self, images: torch.Tensor, ids: torch.Tensor, is_token: torch.Tensor | None = None) -> torch.Tensor:
        """The symmetric contrastive loss of a batch of (image, caption) pairs, row ``i`` of each a pair."""
        return clip_loss(self.image_embeddings(images), self.text_embeddings(ids, is_token), self.temperature)

    @torch.no_grad()
    def zero_shot_logits(self, images: torch.Tensor, prompt_ids: torch.Tensor, prompt_is_token: torch.Tensor | None,
                         prompt_class: torch.Tensor) -> torch.Tensor:
        """Classify images by text alone: log-probabilities ``(B, num_classes)``.

        ``prompt_ids`` ``(P, T)`` are texts that each name one class, ``prompt_class`` ``(P,)`` which.
        Each image's softmax over the P prompts (its similarities over the learned temperature) says
        how likely each text is its caption; a class's probability is the sum over its prompts. With
        one prompt per class this is CLIP's zero-shot classifier; with several (e.g. every caption
        that names a circle, whatever else it says) it adds up all the ways of describing the class.
        """
        if prompt_class.shape != (len(prompt_ids),) or prompt_class.is_floating_point() or prompt_class.min() < 0:
            raise ValueError(f"prompt_class must give one class index per prompt, shape ({len(prompt_ids)},), "
                             f"got {tuple(prompt_class.shape)} {prompt_class.dtype}")
        prompt_class = prompt_class.to(prompt_ids.device)
        missing = sorted(set(range(int(prompt_class.max()) + 1)) - set(prompt_class.tolist()))
        if missing:
            raise ValueError(f"classes {missing} have no prompt; give every class from 0 to "
                             f"{int(prompt_class.max())} at least one")
        texts = self.text_embeddings(prompt_ids, prompt_is_token)  # (P, embed_dim)
        similarities = cosine_similarities(self.image_embeddings(images), texts)  # (B, P)
        log_p = log_softmax(similarities / self.temperature, dim=1)
        classes = range(int(prompt_class.max()) + 1)
        return torch.stack([logsumexp(log_p[:, prompt_class == c], dim=1) for c in classes], 1)
