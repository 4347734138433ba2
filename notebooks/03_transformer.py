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

# %% [markdown]
# # 03 · The Transformer, from attention to a GPT
#
# **Seed sections 3.1 算法原理概述 (overview of the algorithm: the model architecture) and 4.3
# 案例分析与讲解 (case study: GPT, a Transformer language model trained to maximise the probability
# of the next token).**
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
# - build the pre-LayerNorm block, a GPT and an encoder, and check that the GPT cannot see the future;
# - train a tiny GPT to reverse digit sequences (over 99% of tokens right, in seconds) and read its
#   attention maps, with a widget to explore them;
# - count parameters and FLOPs per component, and measure how the cost grows with the context length.
#
# **Time on a laptop CPU:** 15 s for the whole notebook.

# %%
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

from fmcourse import viz, widgets
from fmcourse.models import GPT, Encoder, EncoderConfig, GPTConfig, forward_flops, parameter_counts
from fmcourse.nn import Block, MultiHeadAttention, Rotary, attention, attention_weights, causal_mask, \
    padding_mask, set_fast_attention, sinusoidal_positions
from fmcourse.train import fit, supervised

env.print_report()
device = env.get_device()

# %% [markdown]
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

fig, ax = plt.subplots(figsize=(5, 2.4))
ax.imshow(X.detach(), cmap="coolwarm")
ax.set_yticks(range(len(tokens)), [vocab[t] for t in tokens])
ax.set_xlabel("embedding dimension")
ax.set_title("each token is a learned vector (the same for both 1s)")
plt.show()
assert torch.allclose(X, one_hot @ embedding.weight), "a lookup is a one-hot matrix product"

# %% [markdown]
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
fig, ax = plt.subplots(figsize=(3.6, 3.2))
ax.imshow(A.detach(), cmap="Blues", vmin=0, vmax=1)
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

# %% [markdown]
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

# %% [markdown]
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
for ax, (image, title) in zip(axes, panels):
    ax.imshow(image.float(), cmap="Blues", vmin=0, vmax=1)
    ax.set(title=title, xlabel="key", ylabel="query")
fig.tight_layout()
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

# %% [markdown]
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

# %% [markdown]
# Each head needs an equal share of the width, so $d_{\text{model}}$ must be divisible by $h$. The
# package says so, with the numbers, rather than failing somewhere inside a reshape:

# %%
try:
    MultiHeadAttention(d_model=100, n_head=12)
except ValueError as error:
    print("ValueError:", error)
else:
    raise AssertionError("d_model = 100 with 12 heads was accepted")

# %% [markdown]
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

# %% [markdown]
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
axes[0].imshow(table.T, cmap="coolwarm", aspect="auto")
axes[0].set(xlabel="position p", ylabel="dimension", title="sinusoidal positions")
axes[1].imshow(rotated_scores, cmap="coolwarm")
axes[1].set(xlabel="key position n", ylabel="query position m", title="rotary: score of the same q, k")
fig.tight_layout()
plt.show()

assert torch.allclose(table[:, 0::2] ** 2 + table[:, 1::2] ** 2, torch.ones(64, 16)), "sine/cosine pairs"
assert torch.allclose(rotated_scores[1:, 1:], rotated_scores[:-1, :-1], atol=1e-5), "rotary scores depend on m - n only"
assert torch.allclose(rotated_scores.diagonal(), (q @ k).expand(32), atol=1e-5), "offset 0: no rotation at all"

# %% [markdown]
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

# %% [markdown]
# ## 8. A GPT and an encoder
#
# Stack the pieces: token embedding + positions → $n_{\text{layer}}$ blocks → a final LayerNorm → a
# linear **head** that scores every vocabulary entry at every position. The head reuses the token
# embedding matrix (*weight tying*): the vector that reads a token in is the one that scores it out.
#
# - A **GPT** (decoder-only) uses causal attention and learns $p(x_{t+1} \mid x_0, \dots, x_t)$ at
#   every position at once; trained on text, it is a language model (seed section 4.3).
# - An **encoder** (BERT-style) lets every position see the whole sequence, except padding; it is
#   trained by hiding tokens and predicting them from both sides (chapter 04).
#
# Same blocks, different mask. Before training, a GPT should be *uniformly unsure*: its loss on
# random tokens should be close to $\ln V$, the cross-entropy of a uniform guess over $V$ tokens.

# %%
env.seed_everything(0)
config = GPTConfig(vocab_size=len(vocab), context_length=16, n_layer=2, n_head=4, d_model=64)
gpt = GPT(config)
print(config)
print(f"{sum(p.numel() for p in gpt.parameters()):,} parameters; head tied to the embedding:",
      gpt.head.weight is gpt.token_embedding.weight)

idx = torch.randint(0, len(vocab), (32, 16))                 # (B, T) token ids
logits = gpt(idx)                                             # (B, T, V)
loss_at_init = F.cross_entropy(logits.flatten(0, 1), torch.randint(0, len(vocab), (32 * 16,))).item()
print(f"logits {tuple(logits.shape)}; loss at initialisation {loss_at_init:.3f}, ln V = {math.log(len(vocab)):.3f}")
assert logits.shape == (32, 16, len(vocab))
assert abs(loss_at_init - math.log(len(vocab))) < 0.15, "an untrained model should guess uniformly"

# %% [markdown]
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

# %% [markdown]
# Wrong inputs are refused with the numbers involved, instead of an index error deep inside torch:

# %%
for bad in (torch.zeros(1, 20, dtype=torch.long), torch.tensor([[3, 11, 2]])):
    try:
        gpt(bad)
    except ValueError as error:
        print("ValueError:", error)
    else:
        raise AssertionError("bad input was accepted")

# %% [markdown]
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


env.seed_everything(0)
train_generator = torch.Generator().manual_seed(0)
gpt = GPT(config)
history = fit(gpt, lambda: reversal_batch(64, train_generator), supervised(F.cross_entropy), steps=300,
              lr=3e-3, warmup_steps=20, val_data=[reversal_batch(500, torch.Generator().manual_seed(1))])

# %% [markdown]
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

# %% [markdown]
# ## 10. What the model looks at
#
# We know how reversal must work: to write answer digit $j$, the model must find input digit
# $7 - j$. The position that *predicts* answer digit $j$ is $8 + j$ (the separator predicts the
# first), so in some head the query at $8 + j$ should look at key $7 - j$: an anti-diagonal. The
# attention maps of every layer and head for one test sequence:

# %%
example = test_inputs[0]
maps = gpt.attention_maps(example[None].to(device)).cpu()      # (n_layer, B, n_head, T, T)
viz.attention_grid(maps[:, 0], [vocab[t] for t in example])
plt.show()

# For every head: the average weight that answer queries put on the mirrored input digit.
all_maps = gpt.attention_maps(test_inputs[:500].to(device)).cpu()
queries = torch.arange(N_DIGITS, 2 * N_DIGITS)                  # positions predicting the answer
mirror = torch.arange(N_DIGITS - 1, -1, -1)                     # the input digit each one needs
on_mirror = all_maps[:, :, :, queries, mirror].mean(dim=(1, 3))  # (n_layer, n_head)
print("weight on the mirrored digit, per layer (rows) and head (columns):\n", on_mirror.numpy().round(2))
assert on_mirror.max() > 0.5, "some head has learned to look at the digit it must copy"

# %% [markdown]
# Explore: choose an input, a layer and a head. (The cell below draws the default once; the
# explorer after it redraws as you move the controls.)

# %%
examples = {" ".join(vocab[t] for t in test_inputs[i, :N_DIGITS]): test_inputs[i] for i in range(6)}
examples["1 2 3 4 5 6 7 8"] = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, SEP, 8, 7, 6, 5, 4, 3, 2])
shown = widgets.draw_attention(gpt, example, layer=0, head=0, vocab=vocab)
plt.show()
assert torch.allclose(shown, maps[0, 0, 0])

# %%
widgets.attention_explorer(gpt, examples, vocab)

# %% [markdown]
# ## 11. What a Transformer costs
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

# %% [markdown]
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

# %% [markdown]
# **Cost against context length.** A bigger model with a long context, one forward pass at growing
# lengths, on both attention paths. At short lengths the linear terms dominate; past $T = 6d$ (see
# exercise 4) the $T^2$ attention term takes over, and the teaching path also stores a $(T, T)$ matrix
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

# %% [markdown]
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
#   **GPT** stacks blocks with a causal mask and a tied head; an **encoder** uses the same blocks
#   without it. At initialisation the loss is $\approx \ln V$.
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

# %% [markdown]
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button: click it only when you want to see them (or run
# `exercises.<name>.show_solution()` for one exercise).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.sliding_window_mask, exercises.alibi_bias, exercises.kv_cache_bytes,
                      exercises.attention_scale_experiment)

# %% [markdown]
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
