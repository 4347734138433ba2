"""A BERT-style encoder: bidirectional attention over the whole sequence, padding masked out.

    config = EncoderConfig(vocab_size=50, context_length=64, n_layer=4, n_head=4, d_model=128)
    model = Encoder(config)
    logits = model(idx, is_token)        # (B, T, vocab_size): at a masked position, the token that was there
    features = model.hidden(idx, is_token)   # (B, T, d_model) for downstream heads

Pretrained with masked-language modelling (chapter 04): hide some tokens, predict them from both
sides. The blocks are the GPT's (pre-LayerNorm); the output head is tied to the token embedding.
"""

from __future__ import annotations

from fmcourse.models.transformer import TransformerConfig, TransformerLM


class EncoderConfig(TransformerConfig):
    """Sizes of an encoder: ``vocab_size``, ``context_length``, ``n_layer``, ``n_head``, ``d_model``,
    ``dropout``, ``positional`` (``"learned"``, ``"sinusoidal"`` or ``"rotary"``)."""


class Encoder(TransformerLM):
    """Encoder-only Transformer: every token sees every other real token (``is_token`` marks padding)."""

    causal = False
