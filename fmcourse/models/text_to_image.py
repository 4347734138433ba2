"""Text to image, the recipe of DALL-E (Ramesh et al., 2021) at toy scale, and a judge of the results.

    tokenizer = VQVAE(num_codes=64)               # image (B, 3, 16, 16) <-> 4x4 grid of code ids (B, 16)
    codes = tokenizer.encode(images)              # (B, 16) int64 in [0, 64)
    generator = TextToImage(tokenizer)            # a GPT over 8 caption words then 16 image codes
    loss = generator.loss(captions, images)       # next-token cross-entropy on the image codes
    images = generator.generate(["a small red circle at the top left"])   # (1, 3, 16, 16)
    judge = AttributeJudge(); judge.predict(images)    # shape, colour, size and position of each image

Stage 1, the image tokenizer (a VQ-VAE, van den Oord et al., 2017): an encoder maps the image to a 4x4
grid of vectors, each replaced by the nearest of ``num_codes`` code vectors (a codebook); a decoder
draws the image back from the grid. The nearest-code step has no gradient, so the decoder's gradient is
copied straight through to the encoder, and two extra terms pull the codes and the encoder outputs
towards each other. Codes and encoder outputs are compared as unit vectors (cosine), which keeps most
codes in use.

Stage 2, the prior: the course's GPT reads the caption's words and the image's codes as one sequence
and learns to predict each code from the words and the codes before it. To draw an image, give it the
words, sample 16 codes one at a time, and decode them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fmcourse.data.shapes import ATTRIBUTES, VOCAB, encode_captions
from fmcourse.models.contrastive import ConvEncoder
from fmcourse.models.gpt import GPT, GPTConfig
from fmcourse.models.resnet import check_images
from fmcourse.nn import ResidualBlock

# The (shape, colour) pairs the shipped generator never saw in training, neither its tokenizer nor its
# prior: drawing them asks it to combine a shape and a colour it only ever saw apart.
HELD_OUT = (("triangle", "red"), ("circle", "blue"), ("cross", "green"), ("square", "yellow"), ("triangle", "purple"))

CAPTION_LENGTH = 8  # every caption of the shapes world: "a <size> <colour> <shape> at the <row> <column>"


class VQVAE(nn.Module):
    """Images ``(B, 3, 16, 16)`` in [0, 1] <-> code ids ``(B, 16)`` (a 4x4 grid, row by row)."""

    def __init__(self, num_codes: int = 64, code_dim: int = 16, width: int = 32, image_size: int = 16,
                 commitment: float = 0.25):
        super().__init__()
        self.num_codes, self.image_size, self.commitment = num_codes, image_size, commitment
        self.grid = image_size // 4
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.ReLU(), nn.Conv2d(width, width, 4, 2, 1), nn.ReLU(),
            ResidualBlock(width, width, norm=False), nn.Conv2d(width, code_dim, 1))
        self.codebook = nn.Embedding(num_codes, code_dim)
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, width, 3, padding=1), nn.ReLU(), ResidualBlock(width, width, norm=False),
            nn.ConvTranspose2d(width, width, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(width, 3, 4, 2, 1))

    def _latents(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, 3, self.image_size)
        return F.normalize(self.encoder(images), dim=1)  # (B, D, g, g) unit vectors

    def _nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Code ids ``(B, g, g)`` of the codes nearest to the unit latents ``z`` ``(B, D, g, g)``."""
        codes = F.normalize(self.codebook.weight, dim=1)  # (K, D)
        return torch.einsum("bdhw,kd->bhwk", z, codes).argmax(-1)

    def _lookup(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.codebook(ids), dim=-1).permute(0, 3, 1, 2)  # (B, D, g, g)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Code ids ``(B, g * g)`` of images ``(B, 3, S, S)``."""
        return self._nearest(self._latents(images)).flatten(1)

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, S, S)`` in [0, 1] from code ids ``(B, g * g)``."""
        if ids.dim() != 2 or ids.size(1) != self.grid**2 or ids.min() < 0 or ids.max() >= self.num_codes:
            raise ValueError(f"ids must be (B, {self.grid ** 2}) in [0, {self.num_codes}), got {tuple(ids.shape)}")
        return self.decoder(self._lookup(ids.view(-1, self.grid, self.grid))).clamp(0, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The reconstruction ``(B, 3, S, S)`` (through the straight-through estimator) and the loss:
        reconstruction error + codebook term + ``commitment`` x commitment term."""
        z = self._latents(images)
        q = self._lookup(self._nearest(z))
        codebook = F.mse_loss(q, z.detach())  # moves the codes towards the encoder outputs
        commit = F.mse_loss(z, q.detach())  # keeps the encoder near its codes
        z_q = z + (q - z).detach()  # forward: the code; backward: the gradient goes straight to z
        recon = self.decoder(z_q)
        return recon, F.mse_loss(recon, images) + codebook + self.commitment * commit

    @torch.no_grad()
    def restart_unused(self, images: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Move every code that no image of the batch uses onto a random latent of the batch (a code
        nobody is near never learns); returns how many were moved."""
        z = self._latents(images).permute(0, 2, 3, 1).reshape(-1, self.codebook.embedding_dim)
        used = torch.bincount(self._nearest(self._latents(images)).flatten(), minlength=self.num_codes) > 0
        unused = (~used).nonzero().flatten()
        if len(unused):
            pick = torch.randint(len(z), (len(unused),), generator=generator)
            self.codebook.weight[unused] = z[pick].to(self.codebook.weight)
        return len(unused)


def is_held_out(shape: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: whether each (shape, colour) index pair is one of ``HELD_OUT``."""
    colours = list(ATTRIBUTES["colour"])
    pairs = {(ATTRIBUTES["shape"].index(s), colours.index(c)) for s, c in HELD_OUT}
    return torch.tensor([(int(s), int(c)) in pairs for s, c in zip(shape, colour)], dtype=torch.bool)


def caption_ids(captions: Sequence[str]) -> torch.Tensor:
    """Word ids ``(B, 8)`` of full shapes-world captions; anything else is refused with a clear error."""
    ids, is_token = encode_captions(captions)  # raises on unknown words
    if ids.size(1) != CAPTION_LENGTH or not is_token.all():
        raise ValueError(f"captions must have {CAPTION_LENGTH} words, as 'a small red circle at the top left'")
    return ids


class TextToImage(nn.Module):
    """A GPT over ``[8 caption words, 16 image codes]``; image code ``k`` is token ``len(VOCAB) + k``.
    The tokenizer is kept frozen inside (its weights do not train with the prior)."""

    def __init__(self, tokenizer: VQVAE, n_layer: int = 3, n_head: int = 4, d_model: int = 96):
        super().__init__()
        self.tokenizer = tokenizer.requires_grad_(False).eval()
        self.image_tokens = tokenizer.grid**2
        config = GPTConfig(vocab_size=len(VOCAB) + tokenizer.num_codes, context_length=CAPTION_LENGTH + self.image_tokens,
                           n_layer=n_layer, n_head=n_head, d_model=d_model)
        self.gpt = GPT(config)

    def train(self, mode: bool = True) -> TextToImage:
        super().train(mode)
        self.tokenizer.eval()
        return self

    def sequences(self, captions: Sequence[str], images: torch.Tensor) -> torch.Tensor:
        """The token ids ``(B, 24)`` of captions and images."""
        device = self.gpt.token_embedding.weight.device
        return torch.cat([caption_ids(captions).to(device), self.tokenizer.encode(images.to(device)) + len(VOCAB)], 1)

    def image_logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 16, num_codes)`` over the codes, each predicted from everything before it."""
        logits = self.gpt(ids[:, :-1])[:, CAPTION_LENGTH - 1:]
        return logits[..., len(VOCAB):]

    def loss(self, ids: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats per code) of the image codes of sequences ``ids`` ``(B, 24)``."""
        return F.cross_entropy(self.image_logits(ids).flatten(0, 1), ids[:, CAPTION_LENGTH:].flatten() - len(VOCAB))

    @torch.no_grad()
    def generate(self, captions: Sequence[str], temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Images ``(B, 3, 16, 16)`` drawn for ``captions``, codes sampled one at a time (with a key/value
        cache) from ``softmax(logits / temperature)`` over the codes, restricted to the ``top_k`` best."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        was_training = self.training
        self.eval()
        device = self.gpt.token_embedding.weight.device
        ids = caption_ids(captions).to(device)
        cache = self.gpt.new_cache()
        logits = self.gpt(ids, cache=cache)[:, -1]
        codes = []
        for step in range(self.image_tokens):
            scores = logits[:, len(VOCAB):] / temperature
            if top_k is not None:
                scores = scores.masked_fill(scores < scores.topk(top_k, -1).values[:, -1:], float("-inf"))
            code = torch.multinomial(scores.softmax(-1).cpu(), 1, generator=generator).to(device)  # (B, 1)
            codes.append(code)
            if step < self.image_tokens - 1:
                logits = self.gpt(code + len(VOCAB), cache=cache)[:, -1]
        self.train(was_training)
        return self.tokenizer.decode(torch.cat(codes, 1))


class AttributeJudge(nn.Module):
    """An attribute classifier for 16x16 shapes-world images: ``predict(images)`` gives the shape, colour,
    size and position of each (indices into ``ATTRIBUTES``). A small CNN whose flattened features
    keep where things are, and one linear head per attribute."""

    def __init__(self, image_size: int = 16):
        super().__init__()
        self.encoder = ConvEncoder(3, image_size, widths=(16, 32), dim=128)
        self.heads = nn.ModuleDict({name: nn.Linear(128, len(values)) for name, values in ATTRIBUTES.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of each attribute: ``{name: (B, values)}``."""
        features = F.relu(self.encoder(images))
        return {name: head(features) for name, head in self.heads.items()}

    def loss(self, images: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        """Sum over attributes of the cross-entropy against ``attributes`` ``(B, 4)``: the indices of
        shape, colour, size and position (the order of ``ATTRIBUTES``) of each image."""
        logits = self(images)
        return sum(F.cross_entropy(logits[name], attributes[:, i]) for i, name in enumerate(ATTRIBUTES))

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The most likely value of each attribute: ``{name: (B,) indices}``."""
        was_training = self.training
        self.eval()
        out = {name: logits.argmax(1) for name, logits in self(images).items()}
        self.train(was_training)
        return out
