"""An encoder–decoder Transformer (the original Transformer's shape, as in T5 or a translation model).

    config = EncoderDecoderConfig(vocab_size=50, context_length=32, n_layer=2, n_head=4, d_model=64)
    model = EncoderDecoder(config)
    logits = model(source, target_in, source_is_token)   # (B, T, vocab_size): logits[:, t] predicts target_in[:, t + 1]
    out = model.generate(source, start_token=1, max_new_tokens=10)   # greedy

    source (B, S) -> embedding + positions -> n_layer encoder blocks -> LayerNorm = memory (B, S, d_model)
    target (B, T) -> embedding + positions -> n_decoder_layer blocks (causal self-attention,
                     cross-attention to the memory, MLP) -> LayerNorm -> head -> logits (B, T, V)

The encoder sees the whole source (except padding); the decoder sees the target so far (causal) and,
through cross-attention, every real source position. One vocabulary for both sides, one token
embedding shared by the encoder, the decoder and the output head (as T5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from fmcourse.models.transformer import TransformerConfig, TransformerLM, check_token_ids
from fmcourse.nn import Block, KVCache, sinusoidal_positions


@dataclass
class EncoderDecoderConfig(TransformerConfig):
    """Sizes of an encoder–decoder: ``vocab_size`` (shared by source and target), ``context_length``
    (the longest source and the longest target), ``n_layer`` encoder blocks, ``n_decoder_layer``
    decoder blocks (default: ``n_layer``), ``n_head``, ``d_model``, ``dropout``, ``positional``
    (``"learned"`` or ``"sinusoidal"``)."""

    n_decoder_layer: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.n_decoder_layer is None:
            self.n_decoder_layer = self.n_layer
        if not isinstance(self.n_decoder_layer, int) or self.n_decoder_layer < 1:
            raise ValueError(f"n_decoder_layer must be a positive int, got {self.n_decoder_layer!r}")
        if self.positional == "rotary":
            raise ValueError("the encoder–decoder takes positional='learned' or 'sinusoidal' (rotary positions "
                             "do not say how a target position relates to a source position)")


class EncoderDecoder(nn.Module):
    """Source ids ``(B, S)`` and target ids ``(B, T)`` to next-target-token logits ``(B, T, vocab_size)``."""

    def __init__(self, config: EncoderDecoderConfig):
        super().__init__()
        if not isinstance(config, EncoderDecoderConfig):
            raise TypeError(f"EncoderDecoder needs an EncoderDecoderConfig, got {type(config).__name__}")
        self.config = c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        if c.positional == "learned":
            self.source_positions = nn.Embedding(c.context_length, c.d_model)
            self.target_positions = nn.Embedding(c.context_length, c.d_model)
        else:
            self.register_buffer("position_table", sinusoidal_positions(c.context_length, c.d_model), persistent=False)
        self.dropout = nn.Dropout(c.dropout)
        self.encoder_blocks = nn.ModuleList(Block(c.d_model, c.n_head, c.dropout) for _ in range(c.n_layer))
        self.encoder_norm = nn.LayerNorm(c.d_model)
        self.decoder_blocks = nn.ModuleList(
            Block(c.d_model, c.n_head, c.dropout, causal=True, cross=True) for _ in range(c.n_decoder_layer)
        )
        self.decoder_norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # weight tying
        self.apply(TransformerLM._init_weights)
        # scale the layers that write into the residual streams, as in the GPT
        for block in self.encoder_blocks:
            for layer in (block.attn.out, block.mlp.proj):
                nn.init.normal_(layer.weight, std=0.02 / math.sqrt(2 * c.n_layer))
        for block in self.decoder_blocks:
            for layer in (block.attn.out, block.cross_attn.out, block.mlp.proj):
                nn.init.normal_(layer.weight, std=0.02 / math.sqrt(3 * c.n_decoder_layer))

    def _embed(self, idx: torch.Tensor, side: str, offset: int = 0) -> torch.Tensor:
        T = idx.size(1)
        if self.config.positional == "learned":
            table = self.source_positions if side == "source" else self.target_positions
            positions = table.weight[offset:offset + T]
        else:
            positions = self.position_table[offset:offset + T]
        return self.dropout(self.token_embedding(idx) + positions)  # (B, T, d_model)

    def encode(self, source: torch.Tensor, source_is_token: torch.Tensor | None = None) -> torch.Tensor:
        """source: ``(B, S)`` ids, source_is_token: optional ``(B, S)`` bool. Returns the memory ``(B, S, d_model)``."""
        check_token_ids(source, source_is_token, self.config.context_length, self.config.vocab_size, "source")
        x = self._embed(source, "source")
        for block in self.encoder_blocks:
            x = block(x, source_is_token)
        return self.encoder_norm(x)

    def new_cache(self) -> KVCache:
        """An empty key/value cache for the decoder's self-attention (``decode(..., cache=...)``)."""
        return KVCache(self.config.n_decoder_layer)

    def _decode(self, target, memory, source_is_token, target_is_token, need_weights, cache=None):
        check_token_ids(target, target_is_token, self.config.context_length, self.config.vocab_size, "target")
        if memory.dim() != 3 or memory.size(0) != target.size(0) or memory.size(-1) != self.config.d_model:
            raise ValueError(f"memory must be (batch={target.size(0)}, source length, d_model={self.config.d_model}), "
                             f"got {tuple(memory.shape)}")
        past = 0
        if cache is not None:
            if not isinstance(cache, KVCache) or len(cache.layers) != len(self.decoder_blocks):
                raise TypeError(f"cache must be a KVCache with {len(self.decoder_blocks)} layers (model.new_cache()), "
                                f"got {cache!r}")
            past = len(cache)
            if past + target.size(1) > self.config.context_length:
                raise ValueError(f"the cache holds {past} target positions: {target.size(1)} more exceed the context "
                                 f"length {self.config.context_length}")
        x = self._embed(target, "target", past)
        maps = []
        for i, block in enumerate(self.decoder_blocks):
            out = block(x, target_is_token, need_weights, memory=memory, memory_is_token=source_is_token,
                        cache=None if cache is None else cache.layers[i])
            if need_weights:
                out, (_, cross) = out
                maps.append(cross)
            x = out
        return self.decoder_norm(x), maps

    def decode(self, target: torch.Tensor, memory: torch.Tensor, source_is_token: torch.Tensor | None = None,
               target_is_token: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """target: ``(B, T)`` ids so far; memory: ``(B, S, d_model)`` from ``encode``. Returns logits ``(B, T, V)``.

        ``cache`` (from ``new_cache()``): the decoder's self-attention keys and values of the ``P``
        target positions decoded before; ``target`` is then positions ``P..P+T-1`` (the cross-attention
        reads the memory afresh at each call)."""
        return self.head(self._decode(target, memory, source_is_token, target_is_token, False, cache)[0])

    def forward(self, source: torch.Tensor, target: torch.Tensor, source_is_token: torch.Tensor | None = None,
                target_is_token: torch.Tensor | None = None) -> torch.Tensor:
        """source ``(B, S)``, target ``(B, T)`` ids (the target starts with a start token); optional
        ``(B, S)`` / ``(B, T)`` bool masks, False at padding. Returns logits ``(B, T, vocab_size)``:
        position t scores the target token t + 1."""
        return self.decode(target, self.encode(source, source_is_token), source_is_token, target_is_token)

    @torch.no_grad()
    def cross_attention_maps(self, source: torch.Tensor, target: torch.Tensor,
                             source_is_token: torch.Tensor | None = None) -> torch.Tensor:
        """Where each target position looks in the source, every decoder layer and head:
        ``(n_decoder_layer, B, n_head, T, S)``."""
        memory = self.encode(source, source_is_token)
        return torch.stack(self._decode(target, memory, source_is_token, None, True)[1])

    @torch.no_grad()
    def generate(self, source: torch.Tensor, start_token: int, max_new_tokens: int,
                 source_is_token: torch.Tensor | None = None) -> torch.Tensor:
        """Greedy decoding: ``(B, 1 + max_new_tokens)`` target ids, starting with ``start_token``.

        The source is encoded once; each step runs the decoder on the newest target position (the
        earlier ones are in a key/value cache) and appends the most likely next token.
        """
        if not 0 <= start_token < self.config.vocab_size:
            raise ValueError(f"start_token must be in [0, {self.config.vocab_size}), got {start_token}")
        if not 0 <= max_new_tokens < self.config.context_length:
            raise ValueError(f"max_new_tokens must be in [0, {self.config.context_length}) (the target, start "
                             f"token included, must fit the context), got {max_new_tokens}")
        was_training = self.training
        self.eval()
        memory = self.encode(source, source_is_token)
        target = torch.full((source.size(0), 1), start_token, dtype=torch.long, device=source.device)
        cache = self.new_cache()  # each step runs the decoder on the newest position only
        for _ in range(max_new_tokens):
            next_token = self.decode(target[:, -1:], memory, source_is_token, cache=cache)[:, -1].argmax(dim=-1, keepdim=True)
            target = torch.cat([target, next_token], dim=1)
        self.train(was_training)
        return target
