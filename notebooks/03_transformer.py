# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 03 · The Transformer, from attention to a GPT
#
# **Seed sections 1.2 模型架构设计 (model architecture design) and 4.3 案例分析与讲解 (case study: GPT,
# a Transformer language model trained to maximise the probability of the next token).**
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmcourse_unpublished/fmcourse/blob/v0.1.0/notebooks/03_transformer.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/fmcourse_unpublished/fmcourse/v0.1.0?urlpath=lab/tree/notebooks/03_transformer.ipynb)
#
# Almost every foundation model of the last years, GPT, BERT, T5, CLIP's text and image towers, is a
# Transformer: a stack of identical blocks in which *attention* lets every position of a sequence
# gather information from the others. This chapter builds attention from its formula, one tensor
# shape at a time, grows it into a multi-head Transformer block, assembles a GPT and a BERT-style
# encoder, and trains a GPT on a task whose right answer we know, so that we can see in its attention
# maps that it learned it.
#
# **In this notebook you will**
# - turn tokens into vectors, and write scaled dot-product attention from scratch, with every shape;
# - see why the scores are divided by $\sqrt{d}$, and how padding and causal masks work;
# - split attention into heads and check your version against `torch.nn.MultiheadAttention`;
# - give attention a sense of order: sinusoidal, learned and rotary positions;
# - build the pre-LayerNorm block, assemble a GPT yourself (checked against the package's) and an
#   encoder, and check that the GPT cannot see the future;
# - train a tiny GPT to reverse digit sequences (over 99% of tokens right, in seconds) and read its
#   attention maps, with a widget to explore them;
# - count parameters and FLOPs per component, and measure how the cost grows with the context length;
# - add cross-attention and assemble an encoder–decoder, the architecture of translation (chapter 07).
#
# **Time on a laptop CPU:** 14 s for the whole notebook.

# %% slideshow={"slide_type": "skip"}
# Setup: on Colab (or any fresh kernel) install what this chapter needs, once; elsewhere this does nothing.
import importlib.util
import subprocess
import sys

COURSE = "fmcourse @ git+https://github.com/fmcourse_unpublished/fmcourse@v0.1.0"
if any(importlib.util.find_spec(module) is None for module in ("fmcourse",)):
    print(f"Installing {COURSE}: a minute or two, pip's progress follows", flush=True)
    subprocess.check_call([sys.executable, "-m", "pip", "install", COURSE])

from fmcourse import env
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from fmcourse import data, viz, widgets
from fmcourse.models import GPT, Encoder, EncoderConfig, GPTConfig, forward_flops, parameter_counts
from fmcourse.nn import Block, MultiHeadAttention, Rotary, attention, attention_weights, causal_mask, \
    padding_mask, set_fast_attention, sinusoidal_positions
from fmcourse.train import fit, supervised

env.print_report()
device = env.get_device()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Tokens become vectors
#
# A model reads *tokens*, integers from a vocabulary of size $V$. The first layer, the **embedding**,
# is a table $E$ of shape $(V, d_{\text{model}})$: token $t$ becomes row $E_t$, a vector the model
# learns. Looking up a row is the same as multiplying a one-hot vector by $E$, which is why the table
# is trained by gradient descent like any other weight matrix.
#
# Our vocabulary in this chapter: the ten digits and a separator `|`.

# %%
env.seed_everything(0)
vocab = [str(digit) for digit in range(10)] + ["|"]
SEP = vocab.index("|")
tokens = torch.tensor([3, 1, 4, 1, 5, SEP])                 # (T,) = (6,)
embedding = nn.Embedding(len(vocab), 8)                     # E: (V, d_model) = (11, 8)
X = embedding(tokens)                                       # (T, d_model) = (6, 8)
one_hot = F.one_hot(tokens, len(vocab)).float()             # (6, 11)
print("tokens", tuple(tokens.shape), "→ one-hot", tuple(one_hot.shape), "→ vectors", tuple(X.shape))

fig, ax = plt.subplots(figsize=(5.6, 2.4))
image = ax.imshow(X.detach(), cmap="coolwarm", vmin=-3, vmax=3)
fig.colorbar(image, ax=ax, label="value")
ax.set_yticks(range(len(tokens)), [vocab[t] for t in tokens])
ax.set_xlabel("embedding dimension")
ax.set_title("each token is a learned vector (the same for both 1s)")
plt.show()
assert torch.allclose(X, one_hot @ embedding.weight), "a lookup is a one-hot matrix product"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Scaled dot-product attention, from scratch
#
# Each position asks a question, offers a key, and carries a value: three linear maps of its vector,
# $Q = XW_Q$, $K = XW_K$, $V = XW_V$. Position $i$ scores every position $j$ by how well its query
# matches $j$'s key, turns the scores into weights that sum to one, and takes the weighted average of
# the values:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V,
# \qquad A_{ij} = \frac{e^{q_i \cdot k_j / \sqrt{d_k}}}{\sum_{j'} e^{q_i \cdot k_{j'} / \sqrt{d_k}}}.$$
#
# Follow the shapes: $X$ is $(T, d_{\text{model}})$; $Q, K, V$ are $(T, d_k)$; the scores and the
# weights $A$ are $(T, T)$, row $i$ = where position $i$ looks; the output is $(T, d_k)$, a new vector
# per position that mixes in information from the others.

# %%
d_k = 4
W_q, W_k, W_v = (torch.randn(8, d_k) for _ in range(3))    # (d_model, d_k) each
Q, K, V = X @ W_q, X @ W_k, X @ W_v                          # (T, d_k) = (6, 4) each
scores = Q @ K.T / math.sqrt(d_k)                            # (T, T): query i against key j
A = scores.softmax(dim=-1)                                   # (T, T): each row sums to 1
out = A @ V                                                  # (T, d_k): weighted average of values
for name, tensor in [("Q", Q), ("K", K), ("V", V), ("scores", scores), ("A", A), ("out", out)]:
    print(f"{name:>6} {tuple(tensor.shape)}")

labels = [vocab[t] for t in tokens]
fig, ax = plt.subplots(figsize=(4.4, 3.2))
image = ax.imshow(A.detach(), cmap="Blues", vmin=0, vmax=1)
fig.colorbar(image, ax=ax, label="weight")
ax.set_xticks(range(6), labels)
ax.set_yticks(range(6), labels)
ax.set_xlabel("key (looked at)")
ax.set_ylabel("query (looking)")
ax.set_title("attention weights A")
plt.show()

assert torch.allclose(A.sum(dim=-1), torch.ones(6)), "each query's weights sum to one"
for fast in (False, True):  # the package's teaching path (the formula) and fast path (a fused kernel)
    assert torch.allclose(attention(Q, K, V, fast=fast), out, atol=1e-5)
assert torch.allclose(F.scaled_dot_product_attention(Q, K, V), out, atol=1e-5)

# %% [markdown] slideshow={"slide_type": "subslide"}
# From here on the package's `attention(q, k, v, mask, fast=...)` does this. `fast=False` is the
# formula above (the *teaching path*: it builds the $(T, T)$ matrix, so we can plot it);
# `fast=True`, the default, calls `F.scaled_dot_product_attention`, which on a GPU runs a fused
# kernel (FlashAttention) that never stores the $(T, T)$ weights. The tests check that both paths
# agree, values and gradients.
#
# ## 3. Why divide by $\sqrt{d_k}$?
#
# If the entries of $q$ and $k$ are independent with mean 0 and variance 1, then
# $q \cdot k = \sum_{m=1}^{d_k} q_m k_m$ is a sum of $d_k$ terms of variance 1: its variance is $d_k$,
# its spread $\sqrt{d_k}$. Wide heads would produce huge scores, and the softmax of huge scores is
# nearly one-hot: the *saturated* softmax looks at one position only, and its gradient,
# $\partial A_i / \partial s_i = \mathrm{diag}(A_i) - A_i A_i^\top$, is nearly zero, so learning
# stalls. Dividing by $\sqrt{d_k}$ keeps the scores' spread at 1 whatever the width.

# %%
widths = [4, 16, 64, 256, 1024]
n_keys = 16
spread, top_weight, gradient = {False: [], True: []}, {False: [], True: []}, {False: [], True: []}
g = torch.Generator().manual_seed(0)
for d in widths:
    q, k = torch.randn(2000, 1, d, generator=g), torch.randn(2000, n_keys, d, generator=g)
    raw = (q @ k.transpose(1, 2)).squeeze(1)                  # (2000, n_keys) unscaled scores
    for scaled in (False, True):
        s = (raw / math.sqrt(d) if scaled else raw).requires_grad_()
        weights = s.softmax(dim=-1)
        # how much the weights respond to the scores: the softmax Jacobian, via a random direction
        (grad,) = torch.autograd.grad(weights, s, torch.randn(weights.shape, generator=g))
        spread[scaled].append(s.std().item())
        top_weight[scaled].append(weights.max(dim=-1).values.mean().item())
        gradient[scaled].append(grad.norm(dim=-1).mean().item())

fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
for scaled, style in ((False, "o-"), (True, "s-")):
    name = "$q\\cdot k/\\sqrt{d_k}$" if scaled else "$q\\cdot k$"
    axes[0].plot(widths, spread[scaled], style, label=name)
    axes[1].plot(widths, top_weight[scaled], style, label=name)
    axes[2].plot(widths, gradient[scaled], style, label=name)
axes[0].plot(widths, [math.sqrt(d) for d in widths], "k:", label="$\\sqrt{d_k}$")
axes[0].set(yscale="log", ylabel="spread of the scores")
axes[1].axhline(1 / n_keys, color="grey", lw=0.8)
axes[1].set(ylabel=f"largest weight (of {n_keys} keys)")
axes[2].set(yscale="log", ylabel="gradient reaching the scores")
for ax in axes:
    ax.set(xscale="log", xlabel="$d_k$")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
print(f"d_k = {widths[-1]}: largest weight {top_weight[False][-1]:.3f} unscaled, {top_weight[True][-1]:.3f} scaled")

assert abs(spread[False][-1] / math.sqrt(widths[-1]) - 1) < 0.1, "unscaled scores spread like sqrt(d_k)"
assert top_weight[False][-1] > 0.9 > 0.5 > top_weight[True][-1], "unscaled softmax saturates, scaled does not"
assert gradient[False][-1] < gradient[True][-1] / 5, "a saturated softmax passes little gradient back"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Masks: padding and the future
#
# Two kinds of positions must be hidden from a query, by setting their scores to $-\infty$ before the
# softmax (their weight becomes exactly 0):
#
# - **padding**: sequences of different lengths are padded to one length to form a batch; no one
#   should look at the padding. A *key padding mask* hides those keys, the same for every query.
# - **the future**: a language model predicts token $t+1$ from tokens $0..t$; if position $t$ could
#   look at position $t+1$ it would copy the answer. The *causal mask* lets query $i$ see keys
#   $j \le i$ only: a lower triangle.
#
# Masks in `fmcourse` are boolean and say where attention is *allowed* (True), as in
# `F.scaled_dot_product_attention`. (`nn.MultiheadAttention` uses the opposite convention: True =
# blocked.)

# %%
T = 6
my_causal = torch.tril(torch.ones(T, T, dtype=torch.bool))           # (T, T): query i sees keys 0..i
is_token = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])      # (B, T): the 2nd sequence is padded
combined = padding_mask(is_token) & causal_mask(T)                   # (B, 1, T, T) by broadcasting
q, k = torch.randn(2, 1, T, d_k), torch.randn(2, 1, T, d_k)         # (B, heads, T, d_k)
weights = attention_weights(q, k, combined)                          # (B, heads, T, T)

fig, axes = plt.subplots(1, 4, figsize=(12, 3))
panels = [(padding_mask(is_token)[1, 0].expand(T, T), "padding mask (sequence 2)"), (my_causal, "causal mask"),
          (combined[1, 0], "both"), (weights[1, 0], "weights with both")]
for ax, (panel, title) in zip(axes, panels):
    image = ax.imshow(panel.float(), cmap="Blues", vmin=0, vmax=1)
    ax.set(title=title, xlabel="key", ylabel="query")
fig.tight_layout()
fig.colorbar(image, ax=axes, fraction=0.02, label="allowed (masks) / weight")
plt.show()

assert torch.equal(my_causal, causal_mask(T))
assert (weights[~combined.expand_as(weights)] == 0).all(), "masked positions get weight exactly 0"
assert torch.allclose(weights.sum(-1), torch.ones(2, 1, T)), "the visible weights still sum to one"

# a mask that does not fit the scores is refused, with both shapes
try:
    attention_weights(q, k, torch.ones(T, T + 1, dtype=torch.bool))
except ValueError as error:
    print("ValueError:", error)
else:
    raise AssertionError("a mask of the wrong shape was accepted")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Multi-head attention
#
# One attention computes one kind of weighted average. **Multi-head attention** runs $h$ of them side
# by side, each on its own slice of width $d_{\text{model}} / h$, so one head can follow, say, the
# previous token while another follows a matching digit:
#
# $$\mathrm{MultiHead}(X) = [\mathrm{head}_1, \dots, \mathrm{head}_h]\, W_O, \qquad
# \mathrm{head}_i = \mathrm{Attention}(XW_Q^{(i)}, XW_K^{(i)}, XW_V^{(i)}).$$
#
# In code, one matrix computes all queries, keys and values at once, and a reshape splits them into
# heads: $(B, T, d) \to (B, T, 3d) \to$ three $(B, h, T, d/h)$. The cost is that of one wide
# attention; the heads come for free. Below, our own version is checked against the package's
# `MultiHeadAttention` (both paths) and against PyTorch's `nn.MultiheadAttention` given the same
# weights.

# %%
def my_multi_head_attention(x, W_qkv, b_qkv, W_o, b_o, n_head, mask=None):
    B, T, D = x.shape
    q, k, v = (x @ W_qkv.T + b_qkv).split(D, dim=-1)                     # (B, T, D) each
    heads = lambda t: t.view(B, T, n_head, D // n_head).transpose(1, 2)  # (B, h, T, D/h)
    q, k, v = heads(q), heads(k), heads(v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(D // n_head)           # (B, h, T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    y = scores.softmax(dim=-1) @ v                                        # (B, h, T, D/h)
    return y.transpose(1, 2).reshape(B, T, D) @ W_o.T + b_o              # heads side by side, mixed


d_model, n_head = 16, 4
mha = MultiHeadAttention(d_model, n_head, causal=True)
x = torch.randn(2, 7, d_model)
ours = my_multi_head_attention(x, mha.qkv.weight, mha.qkv.bias, mha.out.weight, mha.out.bias, n_head,
                               mask=causal_mask(7))

torch_mha = nn.MultiheadAttention(d_model, n_head, batch_first=True)
with torch.no_grad():
    torch_mha.in_proj_weight.copy_(mha.qkv.weight)   # (3 d_model, d_model): q, k, v stacked
    torch_mha.in_proj_bias.copy_(mha.qkv.bias)
    torch_mha.out_proj.weight.copy_(mha.out.weight)
    torch_mha.out_proj.bias.copy_(mha.out.bias)
reference, _ = torch_mha(x, x, x, attn_mask=~causal_mask(7))  # its mask: True = blocked

for fast in (True, False):
    mha.fast = fast
    print(f"package ({'fast' if fast else 'teaching'} path) vs ours: "
          f"{(mha(x) - ours).abs().max():.1e}, vs nn.MultiheadAttention: {(mha(x) - reference).abs().max():.1e}")
    assert torch.allclose(mha(x), ours, atol=1e-5) and torch.allclose(mha(x), reference, atol=1e-5)

# %% [markdown] slideshow={"slide_type": "subslide"}
# Each head needs an equal share of the width, so $d_{\text{model}}$ must be divisible by $h$. The
# package says so, with the numbers, rather than failing somewhere inside a reshape:

# %%
try:
    MultiHeadAttention(d_model=100, n_head=12)
except ValueError as error:
    print("ValueError:", error)
else:
    raise AssertionError("d_model = 100 with 12 heads was accepted")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Where is each token? Positional information
#
# Attention treats its input as a *set*: permute the positions and the outputs are permuted the same
# way, nothing else changes. "dog bites man" and "man bites dog" would look alike. Let us check this
# with an attention that has no mask:

# %%
mha_set = MultiHeadAttention(d_model, n_head)
perm = torch.randperm(7)
assert torch.allclose(mha_set(x)[:, perm], mha_set(x[:, perm]), atol=1e-6), "attention is permutation-equivariant"
print("permuting the input only permutes the output: attention alone does not know the order")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Three ways to add order:
#
# - **sinusoidal** positions (the original Transformer): add to token $p$ the fixed vector
#   $\mathrm{PE}_{p,2i} = \sin(p\,\omega_i)$, $\mathrm{PE}_{p,2i+1} = \cos(p\,\omega_i)$, with
#   frequencies $\omega_i = 10000^{-2i/d}$ from fast to slow, like the hands of a clock;
# - **learned** positions (GPT-2, BERT): a second embedding table, one row per position, trained with
#   the rest; simple, but it knows no position beyond the context length it was trained with;
# - **rotary** positions (RoPE, used by LLaMA and many recent models): instead of adding anything, rotate
#   each pair of query and key features by the angle $p\,\omega_i$. A rotation by $m\omega$ then one
#   by $-n\omega$ is a rotation by $(m-n)\omega$, so the score $q_m \cdot k_n$ depends on the
#   **offset** $m - n$ only, not on where the pair sits.

# %%
table = sinusoidal_positions(64, 32)                 # (positions, d_model)
rotary = Rotary(head_dim=8, context_length=32)
q, k = torch.randn(8), torch.randn(8)
rotated_scores = rotary(q.expand(32, 8)) @ rotary(k.expand(32, 8)).T   # the same q and k at every position

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
image = axes[0].imshow(table.T, cmap="coolwarm", aspect="auto", vmin=-1, vmax=1)
fig.colorbar(image, ax=axes[0], label="value")
axes[0].set(xlabel="position p", ylabel="dimension", title="sinusoidal positions")
image = axes[1].imshow(rotated_scores, cmap="coolwarm")
fig.colorbar(image, ax=axes[1], label="score $q_m \\cdot k_n$")
axes[1].set(xlabel="key position n", ylabel="query position m", title="rotary: score of the same q, k")
fig.tight_layout()
plt.show()

assert torch.allclose(table[:, 0::2] ** 2 + table[:, 1::2] ** 2, torch.ones(64, 16)), "sine/cosine pairs"
assert torch.allclose(rotated_scores[1:, 1:], rotated_scores[:-1, :-1], atol=1e-5), "rotary scores depend on m - n only"
assert torch.allclose(rotated_scores.diagonal(), (q @ k).expand(32), atol=1e-5), "offset 0: no rotation at all"

# %% [markdown] slideshow={"slide_type": "subslide"}
# The stripes on the right are the point: along every diagonal (one offset) the score is the same.
# `GPTConfig(positional=...)` chooses `"learned"` (the default, as GPT-2), `"sinusoidal"` or
# `"rotary"`.
#
# ## 7. The Transformer block
#
# A block has two sub-layers, each wrapped in a **residual connection**:
#
# $$x \leftarrow x + \mathrm{MultiHead}(\mathrm{LN}(x)), \qquad x \leftarrow x + \mathrm{MLP}(\mathrm{LN}(x)),$$
#
# - attention moves information *between* positions; the **MLP** ($d \to 4d \to d$ with a GELU)
#   processes each position on its own;
# - the residual additions keep a "stream" that each sub-layer only adds to, so gradients reach early
#   blocks undiminished through the sums;
# - **LayerNorm** (LN) rescales each position's vector to mean 0 and variance 1 (then a learned scale
#   and shift). GPT-2 puts it *before* each sub-layer ("pre-LN"), which trains stably without a long
#   warm-up; the original Transformer put it after;
# - **dropout** randomly zeroes a fraction of activations during training (attention weights and
#   sub-layer outputs), a regulariser; it is off in evaluation.
#
# The package's `Block` is exactly these two lines:

# %%
block = Block(d_model, n_head, dropout=0.1, causal=True)
block.eval()
by_hand = x + block.attn(block.norm1(x))
by_hand = by_hand + block.mlp(block.norm2(by_hand))
print("block:", tuple(x.shape), "→", tuple(block(x).shape), "(a block keeps the shape, so blocks stack)")
assert torch.allclose(block(x), by_hand, atol=1e-6), "Block = two residual sub-layers, pre-LayerNorm"

block.train()
assert not torch.allclose(block(x), block(x)), "in training, dropout makes each pass different"
block.eval()
assert torch.equal(block(x), block(x)), "in evaluation, dropout is off"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Assemble a GPT
#
# Stack the pieces. For token ids $x_0, \dots, x_{T-1}$:
#
# $$h^{(0)}_t = E_{x_t} + P_t, \qquad h^{(\ell)} = \mathrm{Block}_\ell\big(h^{(\ell-1)}\big)\;(\ell = 1..n_{\text{layer}}),
# \qquad \text{logits}_t = \mathrm{LN}\big(h^{(n_{\text{layer}})}_t\big)\,E^\top .$$
#
# - the **token embedding** $E$ $(V, d)$ and a learned **position embedding** $P$ $(C, d)$ for a
#   context of $C$ positions, added;
# - $n_{\text{layer}}$ **blocks** with causal attention;
# - a **final LayerNorm**, because in a pre-LN stack nothing normalises the last block's output;
# - a linear **head** that scores every vocabulary entry at every position. It reuses the token
#   embedding matrix (*weight tying*): the vector that reads a token in is the one that scores it out,
#   and $V d$ parameters are saved.
#
# The whole model is a dozen lines on top of `Block`. We write it, load into it the weights of the
# package's `fmcourse.models.GPT` (same parameter names, so `load_state_dict` must accept them all),
# and check that both give the same logits.

# %%
class MyGPT(nn.Module):
    """Token ids (B, T) -> next-token logits (B, T, V)."""

    def __init__(self, config):
        super().__init__()
        V, C, d = config.vocab_size, config.context_length, config.d_model
        self.token_embedding = nn.Embedding(V, d)                              # E: (V, d)
        self.position_embedding = nn.Embedding(C, d)                           # P: (C, d)
        self.blocks = nn.ModuleList(Block(d, config.n_head, causal=True) for _ in range(config.n_layer))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, V, bias=False)                                # weight (V, d)
        self.head.weight = self.token_embedding.weight                         # tied: one matrix, two uses

    def forward(self, idx):
        B, T = idx.shape
        x = self.token_embedding(idx) + self.position_embedding(torch.arange(T, device=idx.device))  # (B, T, d)
        for block in self.blocks:
            x = block(x)                                                       # (B, T, d)
        return self.head(self.norm(x))                                         # (B, T, V)


env.seed_everything(0)
config = GPTConfig(vocab_size=len(vocab), context_length=16, n_layer=2, n_head=4, d_model=64)
gpt = GPT(config).eval()
mine = MyGPT(config).eval()
mine.load_state_dict(gpt.state_dict())          # strict: every name and shape must match

idx = torch.randint(0, len(vocab), (32, 16))    # (B, T) token ids
logits = gpt(idx)                               # (B, T, V)
print(config)
print(f"{sum(p.numel() for p in mine.parameters()):,} parameters (tied head counted once); "
      f"largest logit difference, ours vs fmcourse.models.GPT: {(mine(idx) - logits).abs().max():.1e}")
assert mine.head.weight is mine.token_embedding.weight, "the head is the embedding matrix"
assert sum(p.numel() for p in mine.parameters()) == sum(p.numel() for p in gpt.parameters())
assert torch.allclose(mine(idx), logits, atol=1e-5), "our GPT is the package's GPT"

# %% [markdown] slideshow={"slide_type": "subslide"}
# From here on we use the package's `GPT`: the same model, plus input checks, dropout, other
# positional encodings (`GPTConfig(positional=...)`), attention maps and `generate`.
#
# ### What a GPT is trained to predict: the next-token shift
#
# A GPT learns $p(x_{t+1} \mid x_0, \dots, x_t)$ at every position at once. The targets are the
# inputs shifted by one: from a sequence of $T + 1$ tokens, the inputs are tokens $0..T-1$ and the
# targets tokens $1..T$. Output $t$ has seen inputs $0..t$ (the causal mask guarantees it) and is
# scored on token $t + 1$, which it has not seen. One sequence gives $T$ training examples.

# %%
sequence = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
inputs, targets = sequence[:-1], sequence[1:]          # (T,) each, T = 7
print(f"{'position t':>12} | {'sees inputs 0..t':<16} | target (token t+1)")
for t in range(len(inputs)):
    print(f"{t:>12} | {' '.join(vocab[i] for i in inputs[:t + 1]):<16} | {vocab[targets[t]]}")
with torch.no_grad():
    shift_logits = gpt(inputs[None])                    # (1, T, V): one prediction per position
shift_loss = F.cross_entropy(shift_logits[0], targets)  # T predictions scored at once
print(f"{len(targets)} next-token predictions from one sequence; loss of the untrained GPT {shift_loss:.3f}")
assert torch.equal(targets[:-1], inputs[1:]), "the targets are the inputs moved one step left"
assert shift_logits.shape[1] == len(targets)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The same blocks without the mask: an encoder
#
# - A **GPT** (decoder-only) uses causal attention; trained on text, it is a language model (seed
#   section 4.3).
# - An **encoder** (BERT-style) lets every position see the whole sequence, except padding; it is
#   trained by hiding tokens and predicting them from both sides (chapter 04).
#
# Same blocks, different mask. Before training, a GPT should be *uniformly unsure*: its loss on
# random tokens should be close to $\ln V$, the cross-entropy of a uniform guess over $V$ tokens.

# %%
loss_at_init = F.cross_entropy(logits.flatten(0, 1), torch.randint(0, len(vocab), (32 * 16,))).item()
print(f"logits {tuple(logits.shape)}; loss at initialisation {loss_at_init:.3f}, ln V = {math.log(len(vocab)):.3f}")
assert logits.shape == (32, 16, len(vocab))
assert abs(loss_at_init - math.log(len(vocab))) < 0.15, "an untrained model should guess uniformly"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Can the GPT see the future?** Change the token at position 9 and compare the outputs: positions
# 0–8 must not move at all, positions 9 onwards should. The encoder, which sees both sides, must
# change everywhere.

# %%
encoder = Encoder(EncoderConfig(vocab_size=len(vocab), context_length=16, n_layer=2, n_head=4, d_model=64))
changed = idx.clone()
changed[:, 9] = (changed[:, 9] + 1) % len(vocab)
for name, model in (("GPT", gpt), ("encoder", encoder)):
    difference = (model(changed) - model(idx)).abs().amax(dim=(0, 2))   # (T,) largest change per position
    print(f"{name:>8}: change before position 9: {difference[:9].max():.1e}, from 9 on: {difference[9:].max():.1e}")
gpt_difference = (gpt(changed) - gpt(idx)).abs()
assert gpt_difference[:, :9].max() < 1e-6 and gpt_difference[:, 9:].max() > 1e-3, "the GPT is causal"
assert (encoder(changed) - encoder(idx))[:, :9].abs().max() > 1e-3, "the encoder sees the whole sequence"

# the fast and teaching paths compute the same model
teaching = set_fast_attention(GPT(config), False)
teaching.load_state_dict(gpt.state_dict())
assert torch.allclose(teaching(idx), gpt(idx), atol=1e-5)

# %% [markdown] slideshow={"slide_type": "subslide"}
# Wrong inputs are refused with the numbers involved, instead of an index error deep inside torch:

# %%
for bad in (torch.zeros(1, 20, dtype=torch.long), torch.tensor([[3, 11, 2]])):
    try:
        gpt(bad)
    except ValueError as error:
        print("ValueError:", error)
    else:
        raise AssertionError("bad input was accepted")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. A first training run: reversing digits
#
# A task with a known answer: given 8 random digits and a separator, write them reversed,
#
# `3 1 4 1 5 9 2 6 | 6 2 9 5 1 4 1 3`
#
# With $10^8$ possible inputs the model cannot memorise; it must learn the rule. We train the GPT to
# predict the next token everywhere, but score (and train) only the answer half: the first half is
# random, so no model can predict it. `F.cross_entropy` skips targets equal to $-100$, the value we
# give the question positions. The course's training loop `fit` draws a fresh batch at every step
# and shows the loss as it trains.

# %%
N_DIGITS = 8


def reversal_batch(size, generator=None):
    """Inputs and targets (size, 2 N_DIGITS): digits, '|', reversed digits, shifted by one."""
    digits = torch.randint(0, 10, (size, N_DIGITS), generator=generator)
    sequence = torch.cat([digits, torch.full((size, 1), SEP), digits.flip(1)], dim=1)   # (size, 17)
    inputs, targets = sequence[:, :-1], sequence[:, 1:].clone()
    targets[:, :N_DIGITS] = -100                   # no loss on the random question, nor on predicting '|'
    return inputs, targets


# The same task is the package's `fmcourse.data.reversal_batch`, which chapter 12 uses again.
same = zip(reversal_batch(4, torch.Generator().manual_seed(9)),
           data.reversal_batch(4, N_DIGITS, generator=torch.Generator().manual_seed(9)))
assert all(torch.equal(mine, package) for mine, package in same), "this task and fmcourse.data.reversal_batch agree"

env.seed_everything(0)
train_generator = torch.Generator().manual_seed(0)
gpt = GPT(config)
history = fit(gpt, lambda: reversal_batch(64, train_generator), supervised(F.cross_entropy), steps=300,
              lr=3e-3, warmup_steps=20, val_data=[reversal_batch(500, torch.Generator().manual_seed(1))])

# %% [markdown] slideshow={"slide_type": "subslide"}
# Accuracy on 2,000 sequences the model has never seen, predicting each answer token from the correct
# previous ones ("teacher forcing"), and then generating whole answers with `generate`, token by token
# from the model's own previous outputs:

# %%
test_inputs, test_targets = reversal_batch(2000, torch.Generator().manual_seed(2))
gpt.eval()
with torch.no_grad():
    predictions = gpt(test_inputs.to(device)).argmax(dim=-1).cpu()
answer = test_targets != -100
token_accuracy = (predictions[answer] == test_targets[answer]).float().mean().item()

prompts = test_inputs[:500, : N_DIGITS + 1].to(device)                   # digits and '|'
generated = gpt.generate(prompts, max_new_tokens=N_DIGITS, temperature=0).cpu()   # greedy
sequence_accuracy = (generated[:, N_DIGITS + 1:] == prompts[:, :N_DIGITS].flip(1).cpu()).all(dim=1).float().mean().item()
for row in generated[:3]:
    print(" ".join(vocab[t] for t in row))
print(f"token accuracy {token_accuracy:.2%} (chance 10%); whole answers right when generating: {sequence_accuracy:.1%}")
assert token_accuracy >= 0.99, "the GPT should reverse digits almost perfectly"
assert sequence_accuracy >= 0.95

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 10. What the model looks at
#
# We know how reversal must work: to write answer digit $j$, the model must find input digit
# $7 - j$. The position that *predicts* answer digit $j$ is $8 + j$ (the separator predicts the
# first), so in some head the query at $8 + j$ should look at key $7 - j$: an anti-diagonal. The
# attention maps of every layer and head for one test sequence:

# %%
example = test_inputs[0]
maps = gpt.attention_maps(example[None].to(device)).cpu()      # (n_layer, B, n_head, T, T)
grid = viz.attention_grid(maps[:, 0], [vocab[t] for t in example])
grid.colorbar(grid.axes[0].images[0], ax=grid.axes, fraction=0.02, label="attention weight")
plt.show()

# For every head: the average weight that answer queries put on the mirrored input digit.
all_maps = gpt.attention_maps(test_inputs[:500].to(device)).cpu()
queries = torch.arange(N_DIGITS, 2 * N_DIGITS)                  # positions predicting the answer
mirror = torch.arange(N_DIGITS - 1, -1, -1)                     # the input digit each one needs
on_mirror = all_maps[:, :, :, queries, mirror].mean(dim=(1, 3))  # (n_layer, n_head)
uniform = (1 / (queries + 1).float()).mean().item()              # query q sees q + 1 keys
fig, ax = plt.subplots(figsize=(6, 2.8))
for layer in range(config.n_layer):
    ax.bar(torch.arange(config.n_head) + 0.4 * layer, on_mirror[layer], width=0.4, label=f"layer {layer}")
ax.axhline(uniform, color="grey", ls="--", label=f"uniform attention ({uniform:.2f})")
ax.set(xticks=torch.arange(config.n_head) + 0.2, xticklabels=[f"head {h}" for h in range(config.n_head)],
       ylabel="weight on the mirrored digit", ylim=(0, 1))
ax.legend(fontsize=8)
plt.show()
assert on_mirror.max() > 0.5 > uniform, "some head has learned to look at the digit it must copy"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Explore: choose an input, a layer and a head, and find the head that draws the anti-diagonal in
# the grid above. (Run headless, the explorer draws its first setting once.)

# %%
examples = {" ".join(vocab[t] for t in test_inputs[i, :N_DIGITS]): test_inputs[i] for i in range(6)}
examples["1 2 3 4 5 6 7 8"] = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, SEP, 8, 7, 6, 5, 4, 3, 2])
check_fig, check_ax = plt.subplots()
assert torch.allclose(widgets.draw_attention(gpt, example, layer=0, head=0, vocab=vocab, ax=check_ax), maps[0, 0, 0])
plt.close(check_fig)  # the explorer draws the model's own weights
widgets.attention_explorer(gpt, examples, vocab)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 11. Cross-attention and the encoder–decoder
#
# The original Transformer, T5 and most translation and speech-recognition models have **two**
# stacks. The **encoder** reads the source (a sentence to translate, a spectrogram) with
# bidirectional attention and returns a *memory* $M$, one vector per source position, shape
# $(S, d)$. The **decoder** writes the target one token at a time, like a GPT, with causal
# self-attention; between its self-attention and its MLP each decoder block has a third sub-layer,
# **cross-attention**, in which the target positions ask and the source positions answer:
#
# $$\mathrm{CrossAttention}(X, M) = \mathrm{softmax}\!\left(\frac{(XW_Q)(MW_K)^\top}{\sqrt{d_k}}\right) MW_V,
# \qquad X: (T, d),\; M: (S, d),\; \text{weights}: (T, S).$$
#
# The formula is attention's, with queries from one sequence and keys and values from another, so the
# weight matrix is rectangular. It needs no causal mask (the whole source is known before the first
# target token), only a padding mask for the source. A decoder block is then
#
# $$x \leftarrow x + \mathrm{MaskedSelfAttn}(\mathrm{LN}(x)),\quad
# x \leftarrow x + \mathrm{CrossAttn}(\mathrm{LN}(x), M),\quad x \leftarrow x + \mathrm{MLP}(\mathrm{LN}(x)).$$

# %%
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from fmcourse.models import EncoderDecoder, EncoderDecoderConfig
from fmcourse.nn import CrossAttention


def box(ax, x, y, text, color, width=2.6, height=0.55):
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.05",
                                facecolor=color, edgecolor="black", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=9)


def arrow(ax, start, end, color="black", **kwargs):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=color, lw=1.2, **kwargs))


fig, ax = plt.subplots(figsize=(9, 5.6))
encoder_x, decoder_x = 1.5, 6.0
box(ax, encoder_x, 0.0, "source tokens $x_1..x_S$", "white")
box(ax, encoder_x, 0.9, "embedding + positions", "#f3e6c8")
box(ax, encoder_x, 1.9, "self-attention (all positions)", "#c8dcf3")
box(ax, encoder_x, 2.7, "MLP", "#d9f0d3")
box(ax, encoder_x, 3.7, "LayerNorm → memory $M$ (S, d)", "#f3e6c8")
box(ax, decoder_x, 0.0, "target so far: [start] $y_1..y_{t}$", "white", width=3.0)
box(ax, decoder_x, 0.9, "embedding + positions", "#f3e6c8")
box(ax, decoder_x, 1.9, "causal self-attention", "#c8dcf3")
box(ax, decoder_x, 2.7, "cross-attention: Q from here, K, V from $M$", "#f6c9c9", width=3.6)
box(ax, decoder_x, 3.5, "MLP", "#d9f0d3")
box(ax, decoder_x, 4.4, "LayerNorm → head (tied)", "#f3e6c8")
box(ax, decoder_x, 5.3, "logits: $p(y_{t+1} \\mid y_{\\leq t}, x)$", "white", width=3.0)
for x, levels in ((encoder_x, (0.0, 0.9, 1.9, 2.7, 3.7)), (decoder_x, (0.0, 0.9, 1.9, 2.7, 3.5, 4.4, 5.3))):
    for low, high in zip(levels, levels[1:]):
        arrow(ax, (x, low + 0.3), (x, high - 0.3))
arrow(ax, (encoder_x + 1.35, 3.7), (decoder_x - 1.85, 2.75), color="C3", connectionstyle="arc3,rad=-0.2")
ax.text(3.45, 4.35, "memory, read by\nevery decoder block", color="C3", fontsize=8, ha="center")
for x, name, top in ((encoder_x, "× $n_{\\text{layer}}$ encoder blocks", 3.05), (decoder_x, "× $n_{\\text{layer}}$ decoder blocks", 3.85)):
    ax.add_patch(plt.Rectangle((x - 2.0, 1.45), 4.0, top - 1.45, fill=False, ls="--", color="grey"))
    ax.text(x - 1.95, top + 0.05, name, fontsize=8, color="grey", va="bottom")
ax.set(xlim=(-0.5, 8.3), ylim=(-0.5, 5.8), title="the encoder–decoder Transformer")
ax.axis("off")
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Cross-attention from scratch, with every shape, checked against the package's `CrossAttention`
# (its `q` projects the queries, `kv` the keys and values) and against PyTorch's
# `nn.MultiheadAttention` called with `query=x, key=memory, value=memory`. The second source is
# padded: its last three positions must get no weight.

# %%
def my_cross_attention(x, memory, W_q, b_q, W_kv, b_kv, W_o, b_o, n_head, memory_is_token=None):
    B, T, D = x.shape
    S = memory.size(1)
    q = (x @ W_q.T + b_q).view(B, T, n_head, D // n_head).transpose(1, 2)        # (B, h, T, D/h)
    k, v = (memory @ W_kv.T + b_kv).split(D, dim=-1)                              # (B, S, D) each
    k, v = (t.view(B, S, n_head, D // n_head).transpose(1, 2) for t in (k, v))   # (B, h, S, D/h)
    scores = q @ k.transpose(-2, -1) / math.sqrt(D // n_head)                     # (B, h, T, S): rectangular
    if memory_is_token is not None:
        scores = scores.masked_fill(~memory_is_token[:, None, None, :], float("-inf"))
    weights = scores.softmax(dim=-1)
    return (weights @ v).transpose(1, 2).reshape(B, T, D) @ W_o.T + b_o, weights


env.seed_everything(0)
cross = CrossAttention(d_model, n_head)
target_x, memory = torch.randn(2, 5, d_model), torch.randn(2, 9, d_model)   # T = 5 targets, S = 9 sources
memory_is_token = torch.tensor([[True] * 9, [True] * 6 + [False] * 3])
ours, cross_weights = my_cross_attention(target_x, memory, cross.q.weight, cross.q.bias, cross.kv.weight,
                                         cross.kv.bias, cross.out.weight, cross.out.bias, n_head, memory_is_token)

torch_cross = nn.MultiheadAttention(d_model, n_head, batch_first=True)
with torch.no_grad():
    torch_cross.in_proj_weight.copy_(torch.cat([cross.q.weight, cross.kv.weight]))   # q, k, v stacked
    torch_cross.in_proj_bias.copy_(torch.cat([cross.q.bias, cross.kv.bias]))
    torch_cross.out_proj.weight.copy_(cross.out.weight)
    torch_cross.out_proj.bias.copy_(cross.out.bias)
reference, _ = torch_cross(target_x, memory, memory, key_padding_mask=~memory_is_token)  # True = blocked

print(f"weights {tuple(cross_weights.shape)} (batch, heads, targets, sources); output {tuple(ours.shape)}")
for fast in (True, False):
    cross.fast = fast
    print(f"package ({'fast' if fast else 'teaching'} path) vs ours: {(cross(target_x, memory, memory_is_token) - ours).abs().max():.1e}, "
          f"vs nn.MultiheadAttention: {(cross(target_x, memory, memory_is_token) - reference).abs().max():.1e}")
    assert torch.allclose(cross(target_x, memory, memory_is_token), ours, atol=1e-5)
    assert torch.allclose(cross(target_x, memory, memory_is_token), reference, atol=1e-5)
assert (cross_weights[1, :, :, 6:] == 0).all(), "padded source positions get no weight"

# the decoder block: Block(cross=True) is the three residual sub-layers above
decoder_block = Block(d_model, n_head, causal=True, cross=True).eval()
by_hand = target_x + decoder_block.attn(decoder_block.norm1(target_x))
by_hand = by_hand + decoder_block.cross_attn(decoder_block.norm_cross(by_hand), memory, memory_is_token)
by_hand = by_hand + decoder_block.mlp(decoder_block.norm2(by_hand))
assert torch.allclose(decoder_block(target_x, memory=memory, memory_is_token=memory_is_token), by_hand, atol=1e-6)

# %% [markdown] slideshow={"slide_type": "subslide"}
# The package's `EncoderDecoder` stacks these blocks as in the diagram (one vocabulary and one tied
# embedding for both sides, as T5). We train one on the same reversal task as the GPT, now phrased as
# a translation: the source is the 8 digits, the target is the separator (the *start* token) followed
# by the reversed digits, and the decoder input is the target shifted right by one, the next-token
# shift of section 8. One layer is enough here, because cross-attention can look up a source digit
# directly. Chapter 07 trains this model to translate.

# %%
def reversal_pair(size, generator=None):
    """(source, decoder input, decoder target): digits, '|' + reversed digits shifted right, reversed digits."""
    digits = torch.randint(0, 10, (size, N_DIGITS), generator=generator)
    target = torch.cat([torch.full((size, 1), SEP), digits.flip(1)], dim=1)   # start token, then the answer
    return digits, target[:, :-1], target[:, 1:]


env.seed_everything(0)
pair_generator = torch.Generator().manual_seed(0)
seq2seq = EncoderDecoder(EncoderDecoderConfig(vocab_size=len(vocab), context_length=N_DIGITS + 1, n_layer=1,
                                              n_head=4, d_model=64))
seq2seq_history = fit(seq2seq, lambda: reversal_pair(64, pair_generator), supervised(F.cross_entropy), steps=200,
                      lr=3e-3, warmup_steps=20, val_data=[reversal_pair(500, torch.Generator().manual_seed(1))])

test_source, test_decoder_input, test_answer = reversal_pair(500, torch.Generator().manual_seed(2))
written = seq2seq.generate(test_source.to(device), start_token=SEP, max_new_tokens=N_DIGITS).cpu()[:, 1:]
seq2seq_accuracy = (written == test_answer).all(dim=1).float().mean().item()
print(f"whole answers right, greedy decoding: {seq2seq_accuracy:.1%} of 500 unseen sequences")

cross_maps = seq2seq.cross_attention_maps(test_source.to(device), test_decoder_input.to(device)).cpu()  # (1, B, h, T, S)
on_source_mirror = cross_maps[0][:, :, torch.arange(N_DIGITS), torch.arange(N_DIGITS - 1, -1, -1)].mean(dim=(0, 2))
best_head = on_source_mirror.argmax().item()
fig, ax = plt.subplots(figsize=(4.6, 3.8))
image = ax.imshow(cross_maps[0, 0, best_head], cmap="Blues", vmin=0, vmax=1)
fig.colorbar(image, ax=ax, label="cross-attention weight")
ax.set_xticks(range(N_DIGITS), [vocab[t] for t in test_source[0]])
ax.set_yticks(range(N_DIGITS), [vocab[t] for t in test_decoder_input[0]])
ax.set(xlabel="source position (key)", ylabel="decoder input (query)",
       title=f"head {best_head}: where each answer digit is read")
plt.show()
print("average weight on the mirrored source digit, per head:", on_source_mirror.numpy().round(2),
      f"(uniform: {1 / N_DIGITS:.3f})")
assert seq2seq_accuracy >= 0.95, "the encoder–decoder reverses digits"
assert on_source_mirror.max() > 0.5 > 1 / N_DIGITS, "a cross-attention head reads the source digit it must copy"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 12. What a Transformer costs
#
# **Parameters.** With $d = d_{\text{model}}$, per block: attention has four $d \times d$ matrices
# ($W_Q, W_K, W_V, W_O$) and their biases, $4d^2 + 4d$; the MLP has $d \times 4d$ and $4d \times d$
# with biases, $8d^2 + 5d$; two LayerNorms, $4d$. Around the blocks: the token embedding $Vd$ (shared
# with the head), learned positions $Cd$ for a context of $C$, a final LayerNorm $2d$. So
# $N \approx 12\,n_{\text{layer}}\,d^2$ plus the embeddings. The formula, component by component,
# against the parameters actually in the model:

# %%
def component(name):
    for key, part in (("token_embedding", "token embedding (tied head)"), ("position_embedding", "position embedding"),
                      ("attn", "attention"), ("mlp", "MLP"), ("norm", "LayerNorm")):
        if key in name:
            return part


counted = dict.fromkeys(parameter_counts(gpt.config), 0)
for name, parameter in gpt.named_parameters():
    counted[component(name)] += parameter.numel()
formula = parameter_counts(gpt.config)
for part in formula:
    print(f"{part:>28}: formula {formula[part]:>7,}   in the model {counted[part]:>7,}")
total = sum(p.numel() for p in gpt.parameters())
print(f"{'total':>28}: formula {sum(formula.values()):>7,}   sum(p.numel()) {total:>7,}")
assert formula == counted and sum(formula.values()) == total

gpt2_small = GPTConfig(vocab_size=50257, context_length=1024, n_layer=12, n_head=12, d_model=768)
print(f"GPT-2 small by the same formula: {sum(parameter_counts(gpt2_small).values()):,} parameters")
assert sum(parameter_counts(gpt2_small).values()) == 124_439_808, "the published size of GPT-2 small"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **FLOPs.** A matrix product $(m \times k)(k \times n)$ costs $2mkn$ floating-point operations. Per
# block and sequence of $T$ tokens: the four projections $8Td^2$, the MLP $16Td^2$, and attention's own
# products $QK^\top$ and $AV$, $4T^2d$; then the head, $2TdV$. Everything is linear in $T$ except the
# attention term, quadratic. We compare the formula with PyTorch's FLOP counter (on the teaching
# path, whose products it sees one by one) and time a forward pass:

# %%
from torch.utils.flop_counter import FlopCounterMode


def forward_milliseconds(model, tokens, repeats=3):
    """Average time of one forward pass (after a warm-up pass), in milliseconds."""
    with torch.no_grad():
        model(tokens)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            model(tokens)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1e3


batch = test_inputs[:256].to(device)
flops = {part: 256 * value for part, value in forward_flops(gpt.config, 16).items()}
set_fast_attention(gpt, False)
with FlopCounterMode(display=False) as counter, torch.no_grad():
    gpt(batch)
set_fast_attention(gpt, True)
seconds = forward_milliseconds(gpt, batch, repeats=10) / 1e3

fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(list(flops), [v / 1e6 for v in flops.values()])
ax.set(xlabel="MFLOPs", title=f"one forward pass, batch 256 × 16 tokens: {seconds * 1e3:.1f} ms")
plt.show()
print(f"formula {sum(flops.values()) / 1e6:.1f} MFLOPs, torch's counter {counter.get_total_flops() / 1e6:.1f} MFLOPs, "
      f"{sum(flops.values()) / seconds / 1e9:.1f} GFLOP/s achieved")
assert counter.get_total_flops() == sum(flops.values())

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Cost against context length.** A bigger model with a long context, one forward pass at growing
# lengths, on both attention paths. At short lengths the linear terms dominate; past about $T = 6d$
# the $T^2$ attention term takes over, and the teaching path also stores a $(T, T)$ matrix
# per head, which the fused kernel avoids.

# %%
env.seed_everything(0)
long_config = GPTConfig(vocab_size=len(vocab), context_length=1024, n_layer=2, n_head=4, d_model=64)
long_gpt = GPT(long_config).to(device).eval()
lengths = [64, 128, 256, 512, 1024]
timings = {True: [], False: []}
for length in lengths:
    long_tokens = torch.randint(0, len(vocab), (4, length), device=device)
    for fast in (True, False):
        timings[fast].append(forward_milliseconds(set_fast_attention(long_gpt, fast), long_tokens))
with torch.no_grad():
    teaching_logits = long_gpt(long_tokens)                 # the teaching path is still switched on
    fast_logits = set_fast_attention(long_gpt, True)(long_tokens)

share = [forward_flops(long_config, t)["attention scores and mixing"] / sum(forward_flops(long_config, t).values())
         for t in lengths]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
axes[0].plot(lengths, timings[True], "o-", label="fast path")
axes[0].plot(lengths, timings[False], "s-", label="teaching path")
predicted = [sum(forward_flops(long_config, t).values()) for t in lengths]
axes[0].plot(lengths, [timings[True][0] * p / predicted[0] for p in predicted], "k:", label="∝ FLOPs formula")
axes[0].set(xscale="log", yscale="log", xlabel="context length T", ylabel="forward time (ms), batch 4")
axes[0].legend()
axes[1].plot(lengths, share, "o-")
axes[1].axvline(6 * long_config.d_model, color="grey", ls=":", label="T = 6d")
axes[1].set(xscale="log", xlabel="context length T", ylabel="share of FLOPs in $QK^T$, $AV$")
axes[1].legend()
fig.tight_layout()
plt.show()
print(f"T = {lengths[-1]}: fast path {timings[True][-1]:.1f} ms, teaching path {timings[False][-1]:.1f} ms; "
      f"attention's share of the FLOPs {share[0]:.0%} at T = {lengths[0]}, {share[-1]:.0%} at T = {lengths[-1]}")

assert torch.allclose(fast_logits, teaching_logits, atol=1e-4), "both paths agree at T = 1024 too"
assert share[-1] > 0.5 > share[0], "the quadratic attention term takes over at long context"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - **Attention** is $\mathrm{softmax}(QK^\top/\sqrt{d_k})V$: each position takes a weighted average of
#   the values, weighted by how its query matches the keys. The $\sqrt{d_k}$ keeps the softmax from
#   saturating (and its gradient from vanishing) as heads get wider.
# - **Masks** set hidden scores to $-\infty$: padding masks hide padded keys; the causal mask hides the
#   future, which makes a GPT a next-token predictor whose outputs at $t$ do not depend on tokens
#   after $t$.
# - **Multi-head** attention runs $h$ attentions on slices of width $d/h$ for the price of one; ours
#   equals `nn.MultiheadAttention` with the same weights.
# - Attention alone ignores order: **positions** are added (sinusoidal, learned) or rotated into queries
#   and keys (rotary, which makes scores depend on offsets only).
# - A **block** is $x + \mathrm{MHA}(\mathrm{LN}(x))$, then $x + \mathrm{MLP}(\mathrm{LN}(x))$. A
#   **GPT** is token embedding + positions, causal blocks, a final LayerNorm and a head tied to the
#   embedding: a dozen lines, equal to `fmcourse.models.GPT` given the same weights. It is trained on
#   the next-token shift (targets = inputs moved one step left); an **encoder** uses the same blocks
#   without the causal mask. At initialisation the loss is $\approx \ln V$.
# - **Cross-attention** takes queries from one sequence and keys and values from another (weights
#   $T \times S$); in an **encoder–decoder** every decoder block reads the encoder's memory through
#   it. A one-layer encoder–decoder learned reversal too, one head reading the mirrored source digit.
# - A 2-layer GPT learned to reverse digit sequences in seconds, and its attention maps show the head
#   that looks at the digit to copy.
# - Parameters grow like $12\,n_{\text{layer}} d^2$ (plus embeddings); forward FLOPs per token like
#   $2N$ plus the attention term $4\,n_{\text{layer}} T d$, which dominates once $T > 6d$.
#
# Next, chapter 04 pretrains this GPT on real text (and the encoder with masked tokens) and measures
# how close it gets to the best possible loss.
#
# ## Exercises
#
# Each exercise has an automatic check: replace the `...` with your answer and run the cell. The
# check prints ✓, or what is wrong (the likely mistake, when it can tell) and a hint. A number may be
# a Python float, a NumPy value or a 0-d tensor, rounded to three significant figures if you like.
# The experiment asks you to predict first, then change something, run it and record what you
# measured: the check runs the experiment too, verifies your measurement and tells you whether your
# prediction was right.

# %%
from fmcourse.exercises import transformer as exercises

# 1. A sliding-window causal mask, as in models that attend only to recent tokens: a (length, length)
#    bool tensor, True where query i may look at key j: itself and at most window - 1 keys before it.
def my_sliding_window_mask(length, window):
    ...  # your code here


exercises.sliding_window_mask.check(my_sliding_window_mask)

# %%
# 2. ALiBi (Press et al., 2022) replaces position embeddings by a penalty on distance: head h adds
#    -m_h · (i - j) to the score of query i and key j <= i, with slopes m_h = 2^(-8 (h+1) / n_head),
#    and the causal mask adds -inf for j > i. Return these biases, shape (n_head, T, T), to be added
#    to the scores before the softmax.
def my_alibi_bias(n_head, length):
    ...  # your code here


exercises.alibi_bias.check(my_alibi_bias)

# %%
# 3. A formula. To generate text fast, a GPT keeps the keys and values of the tokens it has seen (a
#    KV cache) instead of recomputing them at every step. How many bytes does the cache hold after
#    `length` tokens of each of `batch` sequences, as a function of the config (n_layer, n_head,
#    d_model), batch, length and the bytes per number (4 for float32, 2 for bfloat16)?
def my_kv_cache_bytes(config, batch, length, bytes_per_number):
    ...  # your code here


exercises.kv_cache_bytes.check(my_kv_cache_bytes)

# %%
# 4. An experiment. The cell computes attention weights for 32 random queries and keys of dimension
#    d = 64 and prints the mean entropy of a row (ln 32 would be uniform attention). Predict first:
#    without the 1/sqrt(d) scale, is the entropy "lower" or "higher"? Then set scale = 1.0, run, and
#    record the entropy it prints.
g = torch.Generator().manual_seed(0)
q, k = torch.randn(32, 64, generator=g), torch.randn(32, 64, generator=g)  # (T, d) each
scale = math.sqrt(64)  # change me
weights = (q @ k.T / scale).softmax(dim=-1)  # (T, T)
entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1).mean().item()
print(f"scale {scale:g}: mean entropy of an attention row {entropy:.4f} nats (uniform: ln 32 = {math.log(32):.3f})")

my_prediction = ...  # "lower" or "higher", written down BEFORE removing the scale
my_measurement = ...  # the entropy printed with scale = 1.0
exercises.attention_scale_experiment.check(my_prediction, my_measurement)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button: click it only when you want to see them (or run
# `exercises.<name>.show_solution()` for one exercise).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.sliding_window_mask, exercises.alibi_bias, exercises.kv_cache_bytes,
                      exercises.attention_scale_experiment)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Further reading
#
# - A. Vaswani et al., "Attention is all you need", NeurIPS 2017: the Transformer, scaled dot-product
#   and multi-head attention, sinusoidal positions.
# - A. Radford et al., "Improving language understanding by generative pre-training" (2018) and
#   "Language models are unsupervised multitask learners" (2019): GPT and GPT-2, the models of seed
#   section 4.3.
# - J. Devlin et al., "BERT: pre-training of deep bidirectional Transformers for language
#   understanding", NAACL 2019: the encoder and masked-language modelling.
# - R. Xiong et al., "On layer normalization in the Transformer architecture", ICML 2020: why pre-LN
#   trains without a long warm-up.
# - J. Su et al., "RoFormer: enhanced Transformer with rotary position embedding" (2021).
# - O. Press, L. Wolf, "Using the output embedding to improve language models", EACL 2017: weight tying.
# - T. Dao et al., "FlashAttention: fast and memory-efficient exact attention with IO-awareness",
#   NeurIPS 2022: what the fast path runs on a GPU.
# - J. Kaplan et al., "Scaling laws for neural language models" (2020), section 2.1: the parameter and
#   FLOP counts of this chapter, used to plan training compute.
# - PyTorch documentation: `torch.nn.functional.scaled_dot_product_attention`,
#   `torch.nn.MultiheadAttention`, `torch.utils.flop_counter`.
