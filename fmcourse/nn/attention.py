"""Scaled dot-product attention and multi-head attention.

Two paths compute the same function:

- the *teaching path* writes it out, ``softmax(Q K^T / sqrt(d) + mask) V``, and can return the
  attention weights (for plots);
- the *fast path* calls ``F.scaled_dot_product_attention``, which picks a fused kernel (flash or
  memory-efficient attention on a GPU) and never stores the ``(T, T)`` weights.

Masks are boolean and say where attention is **allowed** (True = this query may look at this key),
the convention of ``F.scaled_dot_product_attention``. (``nn.MultiheadAttention`` uses the opposite:
True = blocked.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(length, length)`` bool mask, True on and below the diagonal: position i sees 0..i only."""
    if length < 1:
        raise ValueError(f"a causal mask needs a length of at least 1, got {length}")
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def padding_mask(is_token: torch.Tensor) -> torch.Tensor:
    """Key padding mask ``(B, 1, 1, T)`` from ``is_token`` ``(B, T)`` (True = real token, False = padding).

    Broadcasts over heads and queries: every query may look at real tokens only.
    """
    if is_token.dtype != torch.bool or is_token.dim() != 2:
        raise ValueError(f"is_token must be a (batch, length) bool tensor, got {tuple(is_token.shape)} {is_token.dtype}")
    return is_token[:, None, None, :]


def _check_mask(mask: torch.Tensor, scores_shape: torch.Size) -> None:
    if mask.dtype != torch.bool:
        raise TypeError(f"an attention mask must be a bool tensor (True = may attend), got {mask.dtype}")
    try:
        shape = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        shape = None
    if mask.dim() < 2 or shape != scores_shape:
        raise ValueError(
            f"attention mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"{tuple(scores_shape)} (batch, heads, queries, keys); give it at least (queries, keys) dimensions"
        )


def _with_causal(mask: torch.Tensor | None, causal: bool, Tq: int, Tk: int, device) -> torch.Tensor | None:
    """``mask`` and, when ``causal``, the causal mask too (which needs as many queries as keys)."""
    if not causal:
        return mask
    if Tq != Tk:
        raise ValueError(f"causal attention needs as many queries as keys, got {Tq} queries and {Tk} keys; "
                         f"pass an explicit mask instead")
    return causal_mask(Tq, device) if mask is None else mask & causal_mask(Tq, device)


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None,
                      causal: bool = False) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d) + mask)``: how much each query looks at each key.

    q: ``(..., Tq, d)``, k: ``(..., Tk, d)``, mask: bool, broadcastable to ``(..., Tq, Tk)``;
    ``causal`` also hides later keys from each query. Returns ``(..., Tq, Tk)``; each row sums to one
    over the keys it may see (a row that may see no key at all is zero, as in
    ``F.scaled_dot_product_attention``).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., Tq, Tk)
    if mask is not None:
        _check_mask(mask, scores.shape)
    mask = _with_causal(mask, causal, q.size(-2), k.size(-2), q.device)
    if mask is None:
        return scores.softmax(dim=-1)
    weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # softmax of all -inf is NaN


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    causal: bool = False,
    dropout: float = 0.0,
    fast: bool = True,
) -> torch.Tensor:
    """Scaled dot-product attention: ``softmax(q k^T / sqrt(d) + mask) v``.

    q: ``(..., Tq, d)``, k: ``(..., Tk, d)``, v: ``(..., Tk, dv)``; mask: bool, broadcastable to
    ``(..., Tq, Tk)``, True where a query may look at a key; ``causal`` also hides later keys.
    Returns ``(..., Tq, dv)``. ``dropout`` drops attention weights (pass 0 in evaluation).
    ``fast`` picks ``F.scaled_dot_product_attention`` (a fused kernel; with ``causal`` and no other
    mask, FlashAttention on a GPU); ``fast=False`` the explicit formula.
    """
    if q.size(-1) != k.size(-1) or k.size(-2) != v.size(-2):
        raise ValueError(
            f"attention needs q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv); "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if not fast:
        return F.dropout(attention_weights(q, k, mask, causal), dropout) @ v
    if mask is None and causal:
        _with_causal(None, causal, q.size(-2), k.size(-2), q.device)  # only checks the sizes
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
    if mask is not None:
        _check_mask(mask, q.shape[:-1] + k.shape[-2:-1])
    mask = _with_causal(mask, causal, q.size(-2), k.size(-2), q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


def _attend(layer: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
            causal: bool, need_weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The attention step a self- or cross-attention ``layer`` shares: ``(B, h, Tq, hd)`` outputs, and the
    ``(B, h, Tq, Tk)`` weights when asked for (the teaching path), else None (the layer's chosen path)."""
    dropout = layer.weight_dropout if layer.training else 0.0
    if need_weights:
        weights = attention_weights(q, k, mask, causal)
        return F.dropout(weights, dropout) @ v, weights
    return attention(q, k, v, mask, causal=causal, dropout=dropout, fast=layer.fast), None


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention: ``n_head`` attentions of width ``d_model / n_head`` side by side.

    ``qkv`` projects ``(B, T, d_model)`` to queries, keys and values at once (weight ``(3 d_model,
    d_model)``, stacked q, k, v as in ``nn.MultiheadAttention.in_proj_weight``); ``out`` mixes the
    heads back. ``causal`` lets position i see positions 0..i only. ``rotary`` (optional) rotates
    queries and keys by position. Set ``fast = False`` for the teaching path.
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0, causal: bool = False,
                 rotary: nn.Module | None = None, bias: bool = True):
        super().__init__()
        if d_model % n_head != 0:
            raise ValueError(
                f"d_model={d_model} is not divisible by n_head={n_head}: each head needs an equal share "
                f"(d_model % n_head = {d_model % n_head})"
            )
        self.n_head, self.head_dim, self.causal = n_head, d_model // n_head, causal
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)
        self.weight_dropout = dropout  # on the attention weights, in training only
        self.out_dropout = nn.Dropout(dropout)
        self.rotary = rotary
        self.fast = True

    def forward(self, x: torch.Tensor, is_token: torch.Tensor | None = None,
                need_weights: bool = False, cache: LayerKV | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x: ``(B, T, d_model)``; is_token: optional ``(B, T)`` bool, False at padding.

        Returns ``(B, T, d_model)``, and with ``need_weights`` also the weights ``(B, n_head, T, T)``
        (computed by the teaching path). ``cache`` (causal attention only): the keys and values of the
        ``P`` positions before ``x``, extended in place with ``x``'s; ``x`` is then positions ``P..P+T-1``
        and the weights are ``(B, n_head, T, P + T)``.
        """
        if x.dim() != 3 or x.size(-1) != self.qkv.in_features:
            raise ValueError(f"expected x of shape (batch, length, {self.qkv.in_features}), got {tuple(x.shape)}")
        B, T, D = x.shape
        # (B, T, 3D) -> three (B, n_head, T, head_dim)
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        past = 0 if cache is None else len(cache)
        if self.rotary is not None:
            q, k = self.rotary(q, offset=past), self.rotary(k, offset=past)
        causal, mask = self.causal, None
        if cache is not None:
            if not self.causal:
                raise ValueError("a key/value cache needs causal attention (an earlier position must not see later ones)")
            if is_token is not None:
                raise ValueError("a key/value cache works on unpadded sequences: pass is_token=None")
            k, v = cache.extend(k, v)  # (B, n_head, past + T, head_dim)
            if past > 0:  # new position past + i sees keys 0..past + i
                causal = False
                mask = None if T == 1 else torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
        if is_token is not None:
            if is_token.shape != (B, T):
                raise ValueError(f"is_token must have the shape of the input tokens (batch, length) = {(B, T)}, "
                                 f"got {tuple(is_token.shape)}")
            mask = padding_mask(is_token)  # (B, 1, 1, T)
        y, weights = _attend(self, q, k, v, mask, causal, need_weights)
        y = self.out_dropout(self.out(y.transpose(1, 2).reshape(B, T, D)))  # heads side by side again
        return (y, weights) if need_weights else y


class CrossAttention(nn.Module):
    """Multi-head cross-attention: queries from one sequence, keys and values from another.

    The decoder of an encoder–decoder (the original Transformer, T5) reads the encoder's output, the
    *memory*, this way: ``x`` ``(B, Tq, d_model)`` asks, ``memory`` ``(B, Tk, d_model)`` answers, and
    the two lengths may differ. ``q`` projects the queries, ``kv`` the keys and values at once
    (weight ``(2 d_model, d_model)``, stacked k, v; with ``q`` on top this is
    ``nn.MultiheadAttention.in_proj_weight``); ``out`` mixes the heads back. No causal mask: every
    query may look at every real memory position. Set ``fast = False`` for the teaching path.
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_head != 0:
            raise ValueError(
                f"d_model={d_model} is not divisible by n_head={n_head}: each head needs an equal share "
                f"(d_model % n_head = {d_model % n_head})"
            )
        self.n_head, self.head_dim = n_head, d_model // n_head
        self.q = nn.Linear(d_model, d_model, bias=bias)
        self.kv = nn.Linear(d_model, 2 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)
        self.weight_dropout = dropout
        self.out_dropout = nn.Dropout(dropout)
        self.fast = True

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_is_token: torch.Tensor | None = None,
                need_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x: ``(B, Tq, d_model)``; memory: ``(B, Tk, d_model)``; memory_is_token: optional ``(B, Tk)``
        bool, False at the memory's padding.

        Returns ``(B, Tq, d_model)``, and with ``need_weights`` also the weights ``(B, n_head, Tq, Tk)``.
        """
        D = self.q.in_features
        if x.dim() != 3 or x.size(-1) != D:
            raise ValueError(f"expected x of shape (batch, length, {D}), got {tuple(x.shape)}")
        if memory.dim() != 3 or memory.size(-1) != D or memory.size(0) != x.size(0):
            raise ValueError(f"expected memory of shape ({x.size(0)}, memory length, {D}) to match x "
                             f"{tuple(x.shape)}, got {tuple(memory.shape)}")
        B, Tq, _ = x.shape
        Tk = memory.size(1)
        q = self.q(x).view(B, Tq, self.n_head, self.head_dim).transpose(1, 2)                 # (B, h, Tq, hd)
        k, v = self.kv(memory).view(B, Tk, 2, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, h, Tk, hd)
        mask = None
        if memory_is_token is not None:
            if memory_is_token.shape != (B, Tk):
                raise ValueError(f"memory_is_token must have the shape (batch, memory length) = {(B, Tk)}, "
                                 f"got {tuple(memory_is_token.shape)}")
            mask = padding_mask(memory_is_token)  # (B, 1, 1, Tk)
        y, weights = _attend(self, q, k, v, mask, False, need_weights)
        y = self.out_dropout(self.out(y.transpose(1, 2).reshape(B, Tq, D)))
        return (y, weights) if need_weights else y


class LayerKV:
    """The keys and values one self-attention layer has computed so far, ``(B, n_head, T_past, head_dim)``
    each (None before the first call). ``extend`` appends the new positions' and returns all of them."""

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.size(-2)

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``k``, ``v`` ``(B, n_head, T_new, head_dim)``; return the keys and values of every position."""
        if self.k is not None:
            if k.shape[:2] != self.k.shape[:2]:
                raise ValueError(f"the cache holds a batch of {self.k.size(0)} sequences with {self.k.size(1)} heads, "
                                 f"got keys of shape {tuple(k.shape)}")
            k, v = torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)
        self.k, self.v = k, v
        return k, v


class KVCache:
    """A key/value cache for generation with a causal model: one ``LayerKV`` per layer.

    Without a cache, generating token t runs the model on all t positions again; with it, each step runs
    on the one new position and attends to the keys and values stored from earlier steps (they do not
    change, since a causal position never sees later ones). ``len(cache)`` is the number of positions
    stored.
    """

    def __init__(self, n_layer: int):
        if not isinstance(n_layer, int) or n_layer < 1:
            raise ValueError(f"a cache needs a positive number of layers, got {n_layer!r}")
        self.layers = [LayerKV() for _ in range(n_layer)]

    def __len__(self) -> int:
        return len(self.layers[0])


def set_fast_attention(model: nn.Module, fast: bool = True) -> nn.Module:
    """Switch every ``MultiHeadAttention`` and ``CrossAttention`` inside ``model`` to the fast (True)
    or teaching path."""
    for module in model.modules():
        if isinstance(module, (MultiHeadAttention, CrossAttention)):
            module.fast = fast
    return model
