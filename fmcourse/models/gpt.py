"""GPT: a decoder-only Transformer trained to predict the next token.

    config = GPTConfig(vocab_size=50, context_length=64, n_layer=4, n_head=4, d_model=128)
    model = GPT(config)
    logits = model(idx)                                   # (B, T, vocab_size): logits[:, t] predicts idx[:, t + 1]
    more = model.generate(idx, max_new_tokens=20, top_k=10)   # with a key/value cache
    scores = model.log_likelihood(idx)                    # (B,): log p(idx[:, 1:] | idx[:, :1]), in nats
    logits = model(idx[:, -1:], cache=cache)              # one new position after those in cache = model.new_cache()

Pre-LayerNorm blocks, learned absolute positions, GELU (tanh) MLPs of width 4 d_model, biases on the
linear layers, a final LayerNorm and an output head tied to the token embedding, as GPT-2.
"""

from __future__ import annotations

import torch

from fmcourse.decoding import sample
from fmcourse.models.transformer import TransformerConfig, TransformerLM


class GPTConfig(TransformerConfig):
    """Sizes of a GPT: ``vocab_size``, ``context_length``, ``n_layer``, ``n_head``, ``d_model``,
    ``dropout``, ``positional`` (``"learned"`` as GPT-2, ``"sinusoidal"`` or ``"rotary"``)."""


class GPT(TransformerLM):
    """Decoder-only Transformer: causal attention, so position t is predicted from positions 0..t-1 only."""

    causal = True

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None, *,
                 top_p: float | None = None, use_cache: bool = True) -> torch.Tensor:
        """Continue ``idx`` ``(B, T)`` by ``max_new_tokens`` sampled tokens: returns ``(B, T + max_new_tokens)``.

        Each new token is drawn from ``softmax(logits / temperature)``, restricted to the ``top_k``
        most likely tokens and to the ``top_p`` nucleus when given; ``temperature=0`` takes the most
        likely token (greedy). The model sees at most the last ``context_length`` tokens.
        ``generator`` (on the model's device) makes the sampling repeatable. ``use_cache`` keeps the
        keys and values of earlier positions (same tokens, less work). See ``fmcourse.decoding.sample``.
        """
        return sample(self, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                      use_cache=use_cache, seed=None, generator=generator, truncate=True)

    @torch.no_grad()
    def log_likelihood(self, idx: torch.Tensor) -> torch.Tensor:
        """How likely the model finds each sequence: ``(B, T)`` ids -> ``(B,)`` sums of
        ``log p(idx[:, t] | idx[:, :t])`` over ``t = 1 .. T-1``, in nats (the first token is given, not
        scored). Comparing two texts of the same length by it needs no training at all (zero-shot)."""
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.size(1) < 2:
            described = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(f"log_likelihood needs ids of shape (batch, length >= 2), got {described}")
        log_probs = self(idx[:, :-1]).float().log_softmax(dim=-1)                  # (B, T-1, V)
        return log_probs.gather(2, idx[:, 1:, None]).squeeze(2).sum(dim=1)
