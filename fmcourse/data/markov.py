"""A synthetic language with a known entropy rate: the best loss any model can reach on it.

A Markov chain of order k over V symbols picks each token from a table ``P[context, next]`` of
shape ``(V**k, V)``, where the context is the previous k tokens. Started from its stationary
distribution ``pi`` over contexts, the chain emits tokens whose entropy rate is exactly

    H = sum_c pi(c) * ( -sum_x P[c, x] log P[c, x] )   nats per token,

so a language model's cross-entropy on it can approach H and never go below it.
"""

from __future__ import annotations

from bisect import bisect_right

import torch

MAX_CONTEXTS = 1024  # V**order: the stationary distribution solves a dense linear system this big


class MarkovChain:
    """A source of token sequences of known entropy rate.

    ``transition``: ``(V**order, V)``, non-negative, rows summing to 1. The row index of a context
    ``(x_1, ..., x_k)`` (oldest first) is ``x_1 V^(k-1) + ... + x_k``. Every context must be able to
    reach every other one (irreducible), so the long-run behaviour does not depend on the start.
    """

    def __init__(self, transition: torch.Tensor, order: int = 1):
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be a positive int, got {order!r}")
        if not isinstance(transition, torch.Tensor) or transition.dim() != 2:
            raise ValueError(f"transition must be a 2-D tensor (V**order, V), got {_describe(transition)}")
        contexts, vocab_size = transition.shape
        if vocab_size < 2 or contexts != vocab_size**order:
            raise ValueError(
                f"transition of shape {tuple(transition.shape)} does not fit order {order}: expected "
                f"(V**{order}, V) with V >= 2, e.g. ({vocab_size**order}, {vocab_size})"
            )
        if contexts > MAX_CONTEXTS:
            raise ValueError(f"V**order = {contexts} contexts is more than {MAX_CONTEXTS}; use a smaller V or order")
        p = transition.detach().to(torch.float64).cpu()
        if not torch.isfinite(p).all() or (p < 0).any():
            raise ValueError("transition probabilities must be finite and non-negative")
        sums = p.sum(dim=1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-6):
            worst = (sums - 1).abs().argmax().item()
            raise ValueError(f"every row of transition must sum to 1; row {worst} sums to {sums[worst].item():.6f}")
        self.transition = p / sums[:, None]
        self.order = order
        self.vocab_size = vocab_size
        if not self._irreducible():
            raise ValueError(
                "the chain is not irreducible: some contexts can never reach others, so its long-run "
                "statistics depend on where it starts and its entropy rate is not one number"
            )
        self._stationary = self._solve_stationary()

    @classmethod
    def random(cls, vocab_size: int = 8, order: int = 1, sharpness: float = 2.0,
               generator: torch.Generator | None = None) -> MarkovChain:
        """A chain with rows ``softmax(sharpness * z)``, ``z`` standard normal: larger ``sharpness``
        makes each next token more predictable (lower entropy rate). Every entry is positive."""
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(f"vocab_size must be an int of at least 2, got {vocab_size!r}")
        if not isinstance(order, int) or order < 1 or vocab_size**order > MAX_CONTEXTS:
            raise ValueError(f"order must be a positive int with vocab_size**order <= {MAX_CONTEXTS}, got {order!r}")
        z = torch.randn(vocab_size**order, vocab_size, generator=generator, dtype=torch.float64)
        return cls(torch.softmax(sharpness * z, dim=1), order)

    def _next_context(self, context: torch.Tensor | int, token: torch.Tensor | int):
        """The context after ``token`` follows ``context``: drop the oldest token, append the new one."""
        return (context * self.vocab_size + token) % self.transition.shape[0]

    def _irreducible(self) -> bool:
        """Whether every context can reach every other one: context 0 reaches all of them going
        along the transitions, and going against them."""
        contexts = self.transition.shape[0]
        successors = [[] for _ in range(contexts)]
        predecessors = [[] for _ in range(contexts)]
        for context, token in self.transition.nonzero().tolist():
            following = self._next_context(context, token)
            successors[context].append(following)
            predecessors[following].append(context)
        return all(_reaches_all(graph) for graph in (successors, predecessors))

    def _solve_stationary(self) -> torch.Tensor:
        contexts = self.transition.shape[0]
        q = torch.zeros(contexts, contexts, dtype=torch.float64)  # context -> next context
        rows = torch.arange(contexts)[:, None].expand(contexts, self.vocab_size)
        q[rows, self._next_context(rows, torch.arange(self.vocab_size))] = self.transition
        # pi (Q - I) = 0 has a one-dimensional solution space; replace one equation by sum(pi) = 1.
        system = (q - torch.eye(contexts, dtype=q.dtype)).T
        system[-1] = 1.0
        rhs = torch.zeros(contexts, dtype=q.dtype)
        rhs[-1] = 1.0
        return torch.linalg.solve(system, rhs).clamp_min(0.0)

    def stationary(self) -> torch.Tensor:
        """``(V**order,)`` float64: the long-run probability ``pi`` of each context; started from it,
        the chain keeps it."""
        return self._stationary.clone()

    def entropy_rate(self) -> float:
        """Nats per token: the lowest cross-entropy a model of this source can have (``/ log 2`` for bits)."""
        p = self.transition
        row_entropy = -torch.special.xlogy(p, p).sum(dim=1)
        return float(self.stationary() @ row_entropy)

    def conditional_entropy(self, context_length: int) -> float:
        """Nats per token of the best model that sees only the previous ``context_length`` tokens:
        ``H(X_t | X_{t-k}, ..., X_{t-1})`` in the long run, for ``0 <= k <= order``.

        ``k = 0`` is the entropy of the token frequencies (the unigram level), ``k = 1`` the bigram
        level ``H(X_t | X_{t-1})``, and ``k = order`` the entropy rate. Seeing more never hurts, so
        the values fall (or stay) as ``k`` grows. Computed from the stationary joint distribution of
        ``(context, next token)``, summed over the older context tokens a shorter model cannot see.
        """
        if not isinstance(context_length, int) or isinstance(context_length, bool) \
                or not 0 <= context_length <= self.order:
            raise ValueError(f"context_length must be an int from 0 to order={self.order}, got {context_length!r}")
        v = self.vocab_size
        joint = self.stationary()[:, None] * self.transition  # (V**order, V): p(context, next)
        # Keep only the newest context_length tokens of each context: sum over the older ones.
        joint = joint.reshape(v ** (self.order - context_length), v**context_length * v).sum(dim=0)
        joint = joint.reshape(v**context_length, v)
        seen = joint.sum(dim=1, keepdim=True)  # p(newest context_length tokens)
        return float(-torch.special.xlogy(joint, joint / seen.clamp_min(1e-300)).sum())

    def sample(self, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(length,)`` int64 tokens of one chain started from its stationary distribution."""
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive int, got {length!r}")
        v = self.vocab_size
        context = int(torch.multinomial(self.stationary(), 1, generator=generator))
        tokens = [context // v ** (self.order - 1 - i) % v for i in range(self.order)]
        cumulative = self.transition.cumsum(dim=1).tolist()
        uniforms = torch.rand(max(0, length - self.order), generator=generator, dtype=torch.float64).tolist()
        for u in uniforms:
            token = min(bisect_right(cumulative[context], u), v - 1)
            tokens.append(token)
            context = self._next_context(context, token)
        return torch.tensor(tokens[:length], dtype=torch.long)

    def __repr__(self) -> str:
        return (f"MarkovChain(vocab_size={self.vocab_size}, order={self.order}, "
                f"entropy_rate={self.entropy_rate():.4f} nats/token)")


def _reaches_all(neighbours: list[list[int]]) -> bool:
    """Whether a search from node 0 of a graph (given as lists of neighbours) finds every node."""
    seen, stack = {0}, [0]
    while stack:
        for node in neighbours[stack.pop()]:
            if node not in seen:
                seen.add(node)
                stack.append(node)
    return len(seen) == len(neighbours)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__
