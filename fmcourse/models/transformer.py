"""What a GPT and a BERT-style encoder share: a stack of Transformer blocks over token embeddings.

    tokens (B, T) -> token embedding + positions -> n_layer blocks -> final LayerNorm -> head -> logits (B, T, V)

The output head is tied to the token embedding (one ``(V, d_model)`` matrix reads tokens in and
scores them out). The only difference between the two models is the mask: a GPT is causal (position
i sees positions 0..i), an encoder sees the whole sequence except padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from fmcourse.nn import Block, KVCache, Rotary, sinusoidal_positions

POSITIONAL = ("learned", "sinusoidal", "rotary")



def check_token_ids(idx: torch.Tensor, is_token: torch.Tensor | None, context_length: int, vocab_size: int,
                    name: str = "token") -> None:
    """Refuse ids that are not a ``(batch, length)`` integer tensor within the context and vocabulary,
    and an ``is_token`` mask of another shape, with a message naming ``name`` (``"source"``, ...)."""
    if not isinstance(idx, torch.Tensor) or idx.dtype not in (torch.int64, torch.int32) or idx.dim() != 2:
        described = f"{tuple(idx.shape)} {idx.dtype}" if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise TypeError(f"{name} ids must be a (batch, length) integer tensor (int64), got {described}")
    T, C, V = idx.size(1), context_length, vocab_size
    if T > C:
        raise ValueError(f"{name} sequence of length {T} is longer than the context length {C}")
    if torch.compiler.is_compiling():  # no values are read back inside a compiled graph; its indexing checks the range
        return
    low, high = idx.aminmax()
    low, high = low.item(), high.item()
    if low < 0 or high >= V:
        raise ValueError(f"{name} ids must be in [0, {V}) (vocab_size={V}), got ids from {low} to {high}")
    if is_token is not None and is_token.shape != idx.shape:
        raise ValueError(f"is_token must have the shape of the {name} ids {tuple(idx.shape)}, got {tuple(is_token.shape)}")

@dataclass
class TransformerConfig:
    """Sizes of a Transformer language model (stored on the model as ``model.config``)."""

    vocab_size: int
    context_length: int
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    dropout: float = 0.0
    positional: str = "learned"  # one of POSITIONAL

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "n_layer", "n_head", "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.positional not in POSITIONAL:
            raise ValueError(f"positional must be one of {POSITIONAL}, got {self.positional!r}")


class TransformerLM(nn.Module):
    """Token ids ``(B, T)`` to next-token (GPT) or masked-token (encoder) logits ``(B, T, vocab_size)``."""

    causal: bool  # set by the subclass

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        if c.positional == "learned":
            self.position_embedding = nn.Embedding(c.context_length, c.d_model)
        elif c.positional == "sinusoidal":
            self.register_buffer("position_table", sinusoidal_positions(c.context_length, c.d_model), persistent=False)
        rotary = Rotary(c.d_model // c.n_head, c.context_length) if c.positional == "rotary" else None
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(c.d_model, c.n_head, c.dropout, causal=self.causal, rotary=rotary) for _ in range(c.n_layer)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # weight tying
        self.apply(self._init_weights)
        # GPT-2: scale the layers that write into the residual stream, so its variance stays ~1 with depth
        for block in self.blocks:
            for layer in (block.attn.out, block.mlp.proj):
                nn.init.normal_(layer.weight, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def _positions(self, T: int, offset: int = 0) -> torch.Tensor | float:
        """``(T, d_model)`` added to the token embeddings at positions offset..offset+T-1 (0 with rotary
        positions, applied inside attention)."""
        if self.config.positional == "learned":
            return self.position_embedding.weight[offset:offset + T]
        if self.config.positional == "sinusoidal":
            return self.position_table[offset:offset + T]
        return 0.0

    def new_cache(self) -> KVCache:
        """An empty key/value cache for ``forward(idx, cache=...)`` (causal models only)."""
        if not self.causal:
            raise ValueError(f"{type(self).__name__} is not causal: a key/value cache serves left-to-right generation only")
        return KVCache(self.config.n_layer)

    def _run(self, idx: torch.Tensor, is_token: torch.Tensor | None, need_weights: bool, cache: KVCache | None = None):
        check_token_ids(idx, is_token, self.config.context_length, self.config.vocab_size)
        past = 0
        if cache is not None:
            if not self.causal:
                raise ValueError(f"{type(self).__name__} is not causal: a key/value cache serves left-to-right generation only")
            if not isinstance(cache, KVCache) or len(cache.layers) != len(self.blocks):
                raise TypeError(f"cache must be a KVCache with {len(self.blocks)} layers (model.new_cache()), got {cache!r}")
            past = len(cache)
            if past + idx.size(1) > self.config.context_length:
                raise ValueError(f"the cache holds {past} positions: {idx.size(1)} more exceed the context length "
                                 f"{self.config.context_length}")
        x = self.dropout(self.token_embedding(idx) + self._positions(idx.size(1), past))  # (B, T, d_model)
        maps = []
        for i, block in enumerate(self.blocks):
            layer_cache = None if cache is None else cache.layers[i]
            if need_weights:
                x, weights = block(x, is_token, need_weights=True, cache=layer_cache)
                maps.append(weights)
            else:
                x = block(x, is_token, cache=layer_cache)
        return self.norm(x), maps

    def hidden(self, idx: torch.Tensor, is_token: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """The final normalised hidden states ``(B, T, d_model)``: the features a head reads."""
        return self._run(idx, is_token, need_weights=False, cache=cache)[0]

    def forward(self, idx: torch.Tensor, is_token: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """idx: ``(B, T)`` token ids; is_token: optional ``(B, T)`` bool, False at padding.
        Returns logits ``(B, T, vocab_size)``.

        ``cache`` (a GPT only; from ``new_cache()``): the keys and values of the ``P`` positions run
        before; ``idx`` is then positions ``P..P+T-1``, and the cache is extended with them. The logits
        equal those of running all ``P + T`` positions at once (up to float rounding).
        """
        return self.head(self.hidden(idx, is_token, cache))

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor, is_token: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights of every layer and head: ``(n_layer, B, n_head, T, T)``."""
        return torch.stack(self._run(idx, is_token, need_weights=True)[1])
