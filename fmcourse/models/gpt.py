"""GPT: a decoder-only Transformer trained to predict the next token.

    config = GPTConfig(vocab_size=50, context_length=64, n_layer=4, n_head=4, d_model=128)
    model = GPT(config)
    logits = model(idx)                                   # (B, T, vocab_size): logits[:, t] predicts idx[:, t + 1]
    more = model.generate(idx, max_new_tokens=20, top_k=10)

Pre-LayerNorm blocks, learned absolute positions, GELU (tanh) MLPs of width 4 d_model, biases on the
linear layers, a final LayerNorm and an output head tied to the token embedding, as GPT-2.
"""

from __future__ import annotations

import torch

from fmcourse.models.transformer import TransformerConfig, TransformerLM


class GPTConfig(TransformerConfig):
    """Sizes of a GPT: ``vocab_size``, ``context_length``, ``n_layer``, ``n_head``, ``d_model``,
    ``dropout``, ``positional`` (``"learned"`` as GPT-2, ``"sinusoidal"`` or ``"rotary"``)."""


class GPT(TransformerLM):
    """Decoder-only Transformer: causal attention, so position t is predicted from positions 0..t-1 only."""

    causal = True

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Continue ``idx`` ``(B, T)`` by ``max_new_tokens`` sampled tokens: returns ``(B, T + max_new_tokens)``.

        Each new token is drawn from ``softmax(logits / temperature)``, restricted to the ``top_k``
        most likely tokens when given; ``temperature=0`` takes the most likely token (greedy). The
        model sees at most the last ``context_length`` tokens. ``generator`` (on the model's device)
        makes the sampling repeatable.
        """
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be non-negative, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be non-negative (0 = greedy), got {temperature}")
        if top_k is not None and not 1 <= top_k <= self.config.vocab_size:
            raise ValueError(f"top_k must be between 1 and vocab_size={self.config.vocab_size}, got {top_k}")
        was_training = self.training
        self.eval()
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.config.context_length:])[:, -1]  # (B, vocab_size)
            if temperature == 0:
                next_token = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = logits.topk(top_k, dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                next_token = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)
            idx = torch.cat([idx, next_token], dim=1)
        self.train(was_training)
        return idx
