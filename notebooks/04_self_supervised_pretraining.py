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
# # 04 · Self-supervised pretraining
#
# **Seed sections 3.1 算法原理概述 · 自监督学习 (self-supervised learning) and 3.2 算法步骤详解,
# steps 1–3: 数据预处理 (data preprocessing), 模型初始化 (model initialization), 预训练 (pretraining).**
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmcourse_unpublished/fmcourse/blob/v0.1.0/notebooks/04_self_supervised_pretraining.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/fmcourse_unpublished/fmcourse/v0.1.0?urlpath=lab/tree/notebooks/04_self_supervised_pretraining.ipynb)
#
# A foundation model learns from raw data that nobody labelled. The trick is to make the data label
# itself: hide part of a text and ask the model to fill it in. Predicting the next word (GPT) or a
# masked word (BERT) needs grammar, facts and style, so a model that gets good at it has learned
# much that later tasks can use. This chapter runs the whole pipeline on real English, Python's own
# documentation, with models small enough to train on a laptop CPU in seconds, and shows how to
# judge a language model against the best it could possibly do.
#
# **In this notebook you will**
# - prepare raw text: clean it, split it without leakage, and tokenize it by characters and by
#   byte-pair encoding (BPE), watching BPE learn its merges step by step;
# - measure two baselines a language model must beat: the uniform and the unigram cross-entropy;
# - initialize a small GPT, check its loss at the start, and pretrain it, reading samples before
#   and during training;
# - train on a synthetic source whose entropy rate is known, and watch the validation loss approach
#   the floor that no model can beat;
# - mask text as BERT does, see a BERT-style encoder fill in blanks, and measure why looking both
#   ways helps, while a GPT looks only back;
# - compare character and BPE tokens fairly (nats per character), and control sampling with the
#   temperature;
# - pretrain on a text of your own from the command line, and export a GPT to Hugging Face.
#
# **Time on a laptop CPU:** 30 s for the whole notebook.

# %% slideshow={"slide_type": "skip"}
# Setup: on Colab (or any fresh kernel) install what this chapter needs, once; elsewhere this does nothing.
import importlib.util
import subprocess
import sys

COURSE = "fmcourse[hf] @ git+https://github.com/fmcourse_unpublished/fmcourse@v0.1.0"
if any(importlib.util.find_spec(module) is None for module in ("fmcourse", "transformers")):
    print(f"Installing {COURSE}: a minute or two, pip's progress follows", flush=True)
    subprocess.check_call([sys.executable, "-m", "pip", "install", COURSE])

from fmcourse import env
import math
import tempfile
from pathlib import Path

import ipywidgets
import matplotlib.pyplot as plt
import torch

from fmcourse import checkpoints, pretrain, widgets
from fmcourse.data import (
    IGNORE_INDEX,
    MarkovChain,
    causal_lm_batches,
    causal_lm_eval_batches,
    clean_text,
    mask_tokens,
    masked_lm_eval_batches,
    pydoc_text,
    train_val_split,
)
from fmcourse.models import GPT, Encoder, GPTConfig
from fmcourse.nn import causal_mask
from fmcourse.tokenizers import BPETokenizer, CharTokenizer
from fmcourse.train import evaluate, fit

env.print_report()
device = env.get_device()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Labels for free: two self-supervised tasks
#
# A language model gives a probability to every possible next token. For a text
# $x_1, \dots, x_T$, the **causal language-modelling** loss (GPT) is the average surprise of each
# token given the ones before it,
#
# $$\mathcal{L}_{\text{causal}} = -\frac{1}{T} \sum_{t=1}^{T} \log p_\theta(x_t \mid x_1, \dots, x_{t-1}),$$
#
# measured in *nats* (natural logarithms; divide by $\ln 2$ for bits). The **masked
# language-modelling** loss (BERT) hides a random set $M$ of positions and scores the model on
# those only, with the rest of the text visible on *both* sides:
#
# $$\mathcal{L}_{\text{masked}} = -\frac{1}{|M|} \sum_{t \in M} \log p_\theta(x_t \mid \tilde{x}),
# \qquad \tilde{x} = x \text{ with the positions in } M \text{ hidden}.$$
#
# Either way the targets are the text itself: no labels are needed, so any amount of raw text can be
# used. The **perplexity** $e^{\mathcal{L}}$ reads the loss as a number of choices: a model with
# perplexity 5 is as unsure as if it picked among 5 equally likely tokens.

# %%
demo_text = "a model learns from its own text"
demo_tok = CharTokenizer.train(demo_text, specials=["<mask>"])
ids = torch.tensor(demo_tok.encode(demo_text))
inputs, targets = ids[:-1], ids[1:]  # causal: the target at t is the input at t + 1
masked_inputs, masked_targets = mask_tokens(ids[None], vocab_size=demo_tok.vocab_size,
                                            mask_id=demo_tok.specials["<mask>"], probability=0.25,
                                            generator=torch.Generator().manual_seed(3))
shown_targets = "".join("·" if t == IGNORE_INDEX else demo_tok.decode([t]) for t in masked_targets[0].tolist())
print("causal  input: ", demo_tok.decode(inputs))
print("        target:", demo_tok.decode(targets))
print("masked  input: ", demo_tok.decode(masked_inputs[0]).replace("<mask>", "█"))
print("        target:", shown_targets, " (· = not scored)")
assert torch.equal(inputs[1:], targets[:-1]), "each causal target is the next input"
scored = masked_targets[0] != IGNORE_INDEX
assert torch.equal(masked_targets[0][scored], ids[scored]), "masked targets are the original tokens"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Step 1 · Data preprocessing (数据预处理)
#
# ### Cleaning
#
# Text from the wild comes with Windows line endings, invisible control characters, byte-order
# marks, trailing spaces and characters that have two Unicode spellings (`é` as one code point, or
# `e` plus a combining accent). Left in, the same word becomes different tokens. `clean_text`
# brings text into one canonical form. Our corpus is Python's built-in documentation
# (`pydoc_data.topics`), real English that needs no download.

# %%
messy = "Cafe\u0301 menu  \r\n\r\n\r\n\r\nsoup\t \r\n\x07bread\ufeff"
print(repr(messy), "→", repr(clean_text(messy)))
raw = pydoc_text()
text = clean_text(raw)
print(f"Python's documentation: {len(raw):,} characters, {len(text):,} after cleaning")
print(text[20_000:20_400])
assert clean_text(messy) == "Café menu\n\nsoup\nbread"

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Splitting without leakage
#
# The validation text must be text the model never trained on, or the validation loss measures
# memory instead of language. Real corpora repeat themselves: the documentation repeats whole
# paragraphs (a warning, a grammar rule, a table header). `train_val_split` splits by whole
# paragraphs and keeps each distinct paragraph once, so a repeated paragraph cannot land on both
# sides. First, how much of the text is repetition?

# %%
train_text, val_text = train_val_split(text, val_fraction=0.1, seed=0)
paragraphs = text.split("\n\n")
distinct = list(dict.fromkeys(paragraphs))
duplicate_share = 1 - sum(map(len, distinct)) / sum(map(len, paragraphs))
train_paragraphs, val_paragraphs = set(train_text.split("\n\n")), set(val_text.split("\n\n"))
print(f"{len(paragraphs):,} paragraphs, {len(distinct):,} distinct: "
      f"{duplicate_share:.1%} of the characters are in repeated copies and are dropped")
print(f"training: {len(train_text):,} characters in {len(train_paragraphs):,} paragraphs; "
      f"validation: {len(val_text):,} characters in {len(val_paragraphs):,} paragraphs")
assert not train_paragraphs & val_paragraphs, "no paragraph may be in both parts"
assert len(train_text) + len(val_text) == sum(map(len, distinct)) + 2 * (len(distinct) - 2), \
    "the two parts together hold every distinct paragraph exactly once (joined by blank lines)"

# %% [markdown] slideshow={"slide_type": "subslide"}
# What would a careless split do? Cut the text into pieces of 1,000 characters and send a random
# tenth of them to validation. We measure leakage two ways, for both splits: the share of the
# validation characters that sit in a paragraph which also occurs, whole, in the training part; and
# the share of 200 random 64-character windows of the validation text (one context of our GPT) that
# occur word for word somewhere in the training text.

# %%
def random_cut(text: str, val_fraction: float = 0.1, piece: int = 1000, seed: int = 0) -> tuple[str, str]:
    """The careless split: pieces of ``piece`` characters, a random ``val_fraction`` of them to validation."""
    pieces = [text[i:i + piece] for i in range(0, len(text), piece)]
    chosen = set(torch.randperm(len(pieces), generator=torch.Generator().manual_seed(seed))
                 [:round(val_fraction * len(pieces))].tolist())
    return ("".join(p for i, p in enumerate(pieces) if i not in chosen),
            "".join(p for i, p in enumerate(pieces) if i in chosen))


def leakage(train: str, val: str, windows: int = 200, width: int = 64) -> tuple[float, float]:
    """(share of validation characters in paragraphs also in training, share of windows found in training)."""
    in_train = set(train.split("\n\n"))
    val_parts = [p for p in val.split("\n\n") if p]
    paragraph_share = sum(len(p) for p in val_parts if p in in_train) / sum(map(len, val_parts))
    starts = torch.randint(len(val) - width, (windows,), generator=torch.Generator().manual_seed(0)).tolist()
    return paragraph_share, sum(val[s:s + width] in train for s in starts) / windows


splits = {"random cut": leakage(*random_cut(text)), "by paragraphs": leakage(train_text, val_text)}
fig, ax = plt.subplots(figsize=(7, 2.6))
for i, (label, color) in enumerate((("validation characters in a paragraph also in training", "C3"),
                                    ("64-character windows found in training", "C1"))):
    ax.barh([y + 0.4 * i for y in range(2)], [splits[name][i] for name in splits], height=0.4, color=color,
            label=label)
ax.set_yticks([0.2, 1.2], list(splits))
ax.set_xlim(0, 1)
ax.set_xlabel("share of the validation text")
ax.legend(loc="lower right", fontsize=8)
plt.show()
for name, (paragraph_share, window_share) in splits.items():
    print(f"{name:>13}: {paragraph_share:.1%} of validation characters in a training paragraph, "
          f"{window_share:.1%} of windows found in training")
assert splits["by paragraphs"][0] == 0, "the paragraph split shares no paragraph"
assert splits["random cut"][0] > 0.1 and splits["random cut"][1] > splits["by paragraphs"][1] + 0.2

# %% [markdown] slideshow={"slide_type": "subslide"}
# The random cut puts about a fifth of the validation text in paragraphs that the training part
# also holds, whole. The paragraph split shares no paragraph, but still a few windows: lines that
# recur inside paragraphs that differ elsewhere (a sentence of boilerplate, a row of a table).
# Exact deduplication cannot catch these *near-duplicates*; large corpora remove them with fuzzy
# matching (MinHash over n-grams, for example).

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Tokenizing: characters, then byte-pair encoding
#
# A tokenizer turns text into integer ids. The simplest gives each character its own id. It is
# trained on the training text only; a character it never saw is either an error or, as here,
# becomes `<unk>` (a policy the tokenizer records, so it is never silent).

# %%
char_tok = CharTokenizer.train(train_text, unknown="replace")
print(f"{char_tok.vocab_size} tokens: <unk> and", repr("".join(char_tok.chars)))
sentence = "The for statement iterates over the elements of a sequence."
print(char_tok.encode(sentence)[:12], "…")
print("unseen characters:", char_tok.decode(char_tok.encode("naïve café ☕")))
assert char_tok.decode(char_tok.encode(sentence)) == sentence, "the round trip is exact"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Byte-pair encoding** (BPE, as in GPT-2) starts from the 256 byte values, so every string has an
# encoding and nothing is unknown. Then it repeats one step: find the most frequent pair of adjacent
# tokens in the training text and make it a new token. Frequent pieces (` the`, `ing`, ` return`)
# become single tokens; rare words stay split into smaller pieces. Merges never cross the start of
# a word, so a token is a word, a piece of one, or punctuation, with its leading space.
# Here is a sentence after the first $k$ merges:

# %%
bpe_tok = BPETokenizer.train(train_text, vocab_size=512)
for k in (0, 3, 10, 50, 256):
    print(f"{k:>3} merges:", "·".join(bpe_tok.segment(sentence, k)))
print("first merges:", [bpe_tok.token_str(256 + i) for i in range(12)])
assert bpe_tok.decode(bpe_tok.encode("naïve café ☕")) == "naïve café ☕", "bytes cover every character"
assert len(bpe_tok.segment(sentence)) < len(bpe_tok.segment(sentence, 0)) / 2

# %% [markdown] slideshow={"slide_type": "subslide"}
# The two tokenizers make different sequences of the same text. BPE needs fewer tokens, so a
# context of 64 tokens covers more text; the price is a larger vocabulary (a bigger embedding
# table and output layer) and more to learn about each token.

# %%
char_val = torch.tensor(char_tok.encode(val_text))
bpe_val = torch.tensor(bpe_tok.encode(val_text))
chars_per_bpe_token = len(val_text) / len(bpe_val)
fig, axes = plt.subplots(1, 3, figsize=(11, 3))
for ax, values, title in zip(axes, ([char_tok.vocab_size, bpe_tok.vocab_size], [len(char_val), len(bpe_val)],
                                    [64, 64 * chars_per_bpe_token]),
                             ("vocabulary size", "tokens in the validation text", "characters in 64 tokens")):
    ax.bar(["characters", "BPE"], values, color=["C0", "C2"])
    ax.set_title(title)
plt.tight_layout()
plt.show()
print(f"BPE: {chars_per_bpe_token:.2f} characters per token on the validation text")
assert chars_per_bpe_token > 1.8, "BPE tokens should stand for about two characters of English or more"

# %% [markdown] slideshow={"slide_type": "subslide"}
# `pretrain.prepare` does the three steps above in one call (clean, split, train a character or BPE
# tokenizer on the training part, encode both parts); it gives the same tokens:

# %%
corpus = pretrain.prepare(raw)
tok = corpus.tokenizer
assert tok.to_dict() == char_tok.to_dict() and torch.equal(corpus.val, char_val)
print(f"{len(corpus.train):,} training and {len(corpus.val):,} validation tokens")

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Two baselines
#
# Before training anything, what loss would a model *without* context get? A model that knows
# nothing spreads its probability evenly: $\ln V$ nats per token. A **unigram** model knows how often
# each token occurs in the training text and ignores the context:
#
# $$\mathcal{L}_{\text{unigram}} = -\frac{1}{N} \sum_{t=1}^{N} \log \hat{p}(x_t), \qquad
# \hat{p}(x) = \frac{\text{count}_{\text{train}}(x) + 1}{N_{\text{train}} + V},$$
#
# computed on the validation tokens from the *training* counts (the $+1$ keeps a token unseen in
# training possible). Everything a language model does better than this comes from the context.

# %%
uniform_loss = math.log(tok.vocab_size)
unigram = pretrain.unigram_loss(corpus.train, corpus.val, tok.vocab_size)
print(f"uniform: {uniform_loss:.3f} nats/char (perplexity {tok.vocab_size}); "
      f"unigram: {unigram:.3f} nats/char (perplexity {math.exp(unigram):.1f})")
assert unigram < uniform_loss - 1.0, "letter frequencies alone are worth more than a nat"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Batches: random windows of the text
#
# For causal language modelling, a batch is a set of windows cut at random places of the token
# stream. Each window of $T + 1$ tokens gives $T$ predictions at once: the inputs are its first $T$
# tokens, the targets the same tokens shifted by one. Validation uses fixed windows spread evenly
# over the validation text, so every evaluation sees the same tokens.

# %%
settings = pretrain.Settings()  # the sizes and training settings tuned for a CPU (bench/pretrain_tuning.py)
B, T = settings.batch_size, settings.context_length
train_batches = causal_lm_batches(corpus.train, B, T, generator=torch.Generator().manual_seed(0))
val_batches = causal_lm_eval_batches(corpus.val, B, T, max_batches=settings.eval_batches)
x, y = train_batches()
print(f"inputs {tuple(x.shape)}, targets {tuple(y.shape)}; {len(val_batches)} validation batches")
print("input: ", repr(tok.decode(x[0, :40])))
print("target:", repr(tok.decode(y[0, :40])))
assert torch.equal(x[:, 1:], y[:, :-1]), "targets are the inputs shifted by one"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Step 2 · Model initialization (模型初始化)
#
# The seed names two ways to start: from random weights, or from a model that was already
# pretrained (chapter 06 starts from the one we pretrain here). We start from random weights: a
# GPT as chapter 03 built it, with small normal weights. Such a model knows nothing, so its
# predictions are close to uniform and its loss should be close to $\ln V$. A first loss far from
# $\ln V$ points to a bug in the initialization or the loss.

# %%
env.seed_everything(0)
model = pretrain.build_model(settings, tok.vocab_size).to(device)
n_parameters = sum(p.numel() for p in model.parameters())
initial_loss = evaluate(model, val_batches)
print(f"GPT: {settings.n_layer} layers, width {settings.d_model}, context {T}: {n_parameters:,} parameters")
print(f"loss at initialization {initial_loss:.3f}, ln V = {uniform_loss:.3f}")
print("a sample before training:", repr(pretrain.sample(model, tok, "The ", 100)))
assert abs(initial_loss - uniform_loss) < 0.1, "an untrained model should be about uniform"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Step 3 · Pretraining (预训练)
#
# We train in three stages and read samples in between. To make the stages one continuous run, the
# learning rate follows a *warm-up, stable, decay* schedule: it warms up through the first stage,
# stays constant through the second, and decays only in the last (with `min_lr_ratio=1.0`, `fit` keeps
# the rate constant after the warm-up). The optimizer is created once, so its running averages
# carry over from one stage to the next.

# %%
optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr)
stages = []


def train_stage(steps: int, last: bool = False) -> None:
    """Continue training for ``steps`` steps; keep the history and show a sample."""
    history = fit(model, train_batches, optimizer=optimizer, steps=steps,
                  warmup_steps=steps if not stages else 0, min_lr_ratio=0.1 if last else 1.0,
                  val_data=val_batches, eval_every=max(1, steps // 4), device=device)
    stages.append(history)
    done = sum(len(h.steps) for h in stages)
    print(f"after {done} steps, validation loss {history.val_loss[-1]:.3f}:\n{pretrain.sample(model, tok, 'The ', 160)}")


train_stage(100)

# %% [markdown] slideshow={"slide_type": "subslide"}
# After a hundred steps (the warm-up) the model has learned which characters are common and that words are
# separated by spaces: its samples have the texture of English without its words. Next, words.

# %%
train_stage(150)

# %% [markdown] slideshow={"slide_type": "subslide"}
# Common short words and the layout of the documentation (indentation, punctuation) appear. The
# last stage decays the learning rate, which lets the weights settle into the minimum they have
# been circling.

# %%
train_stage(230, last=True)

# %% [markdown] slideshow={"slide_type": "subslide"}
# Putting the stages together: the validation loss against the step, with the two baselines, and
# below it the learning rate that `fit` set at each step: the warm-up, stable, decay schedule.

# %%
offsets = [sum(len(h.steps) for h in stages[:i]) for i in range(len(stages))]
val_steps = [o + s + 1 for o, h in zip(offsets, stages) for s in h.val_steps]
val_losses = [loss for h in stages for loss in h.val_loss]
raw_train_losses = [loss for h in stages for loss in h.train_loss]
train_losses = [loss for h in stages for loss in h.smoothed_train_loss()]
learning_rates = [rate for h in stages for rate in h.lr]
final_loss = val_losses[-1]
fig, (ax, lr_ax) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, height_ratios=(3, 1.3))
steps_axis = range(1, len(train_losses) + 1)
ax.plot(steps_axis, raw_train_losses, color="C0", alpha=0.2, lw=0.8, label="training, each step")
ax.plot(steps_axis, train_losses, color="C0", label="training (smoothed)")
ax.plot(val_steps, val_losses, "o-", color="C1", label="validation")
ax.axhline(uniform_loss, color="grey", ls=":", label=f"uniform, ln V = {uniform_loss:.2f}")
ax.axhline(unigram, color="grey", ls="--", label=f"unigram = {unigram:.2f}")
ax.set_ylabel("nats per character")
ax.legend(fontsize=8)
lr_ax.plot(steps_axis, learning_rates, color="C2")
lr_ax.set_ylabel("learning rate")
lr_ax.set_xlabel("step")
for a in (ax, lr_ax):
    for o in offsets[1:]:
        a.axvline(o, color="black", lw=0.5)
plt.show()
print(f"validation loss {final_loss:.3f} nats/char, perplexity {math.exp(final_loss):.2f} "
      f"(unigram: {unigram:.3f}, perplexity {math.exp(unigram):.1f})")
peak_from = next(i for i, rate in enumerate(learning_rates) if math.isclose(rate, settings.lr))
print(f"learning rate: {learning_rates[0]:.1e} at the first step, {settings.lr:.1e} from step {peak_from + 1} "
      f"to {offsets[2] + 1}, {learning_rates[-1]:.1e} at the end")
assert final_loss < unigram - 0.8, "the GPT must use the context: well below the unigram baseline"
assert peak_from == offsets[1] - 1 and max(learning_rates) <= settings.lr * (1 + 1e-9), "warm-up to the peak"
assert all(math.isclose(rate, settings.lr) for rate in learning_rates[offsets[1]:offsets[2]]), "stable in the middle"
assert math.isclose(learning_rates[-1], 0.1 * settings.lr, rel_tol=0.01), "decayed to a tenth at the end"

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Evaluate: a longer run
#
# The same model, trained for longer, ships with the course in `fmcourse/shipped/` (made by one command, see
# `fmcourse/shipped/README.md`). It has the same tokenizer, because it was prepared from the same text with the
# same split, so we can score it on exactly the same validation windows:

# %%
gpt, gpt_tok = pretrain.load_shipped("gpt_pydoc_char", device)
gpt_steps = checkpoints.read_manifest(pretrain.shipped_folder("gpt_pydoc_char"))["metadata"]["settings"]["steps"]
assert gpt_tok.to_dict() == tok.to_dict(), "same text, same split, same tokenizer"
shipped_loss = evaluate(gpt, val_batches)
losses = {"uniform": uniform_loss, "unigram": unigram, f"GPT, {val_steps[-1]} steps": final_loss,
          f"GPT, {gpt_steps} steps": shipped_loss}
fig, ax = plt.subplots(figsize=(7, 2.8))
ax.barh(list(losses), list(losses.values()), color=["grey", "grey", "C1", "C3"])
for i, loss in enumerate(losses.values()):
    ax.text(loss + 0.03, i, f"{loss:.2f} nats, perplexity {math.exp(loss):.1f}", va="center")
ax.set_xlim(0, uniform_loss * 1.5)
ax.set_xlabel("validation loss (nats per character)")
ax.invert_yaxis()
plt.show()
print(pretrain.sample(gpt, gpt_tok, "The ", 300))
assert shipped_loss < final_loss, "more training, lower validation loss"

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Memorisation: text it trained on against new text
#
# A model scores better on text it has read than on new text: part of what it learned is the
# training text itself. We score the shipped GPT on windows of its *training* text, cut the same way
# as the validation windows. The gap is what a leaky split would hide: under the random cut above,
# a sizeable share of the "validation" text was training text, and the model would be scored
# partly on what it memorised.

# %%
train_windows = causal_lm_eval_batches(corpus.train, B, T, max_batches=settings.eval_batches)
memorised_loss = evaluate(gpt, train_windows)
memorisation_gap = shipped_loss - memorised_loss
leaked = splits["random cut"][0]
print(f"shipped GPT: {memorised_loss:.3f} nats/char on training windows, {shipped_loss:.3f} on validation windows "
      f"(a gap of {memorisation_gap:.2f} nats, perplexity {math.exp(memorised_loss):.2f} against {math.exp(shipped_loss):.2f})")
print(f"under the random cut, {leaked:.0%} of the validation text is training text: if it scored like training "
      f"text, the validation loss would come out about {leaked * memorisation_gap:.2f} nats too low")
assert memorisation_gap > 0.1, "the model knows its training text better than new text"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Sampling and the temperature
#
# To write text, the model picks a next token from its distribution, appends it, and repeats. The
# **temperature** $\tau$ reshapes the distribution before the pick:
#
# $$p_i(\tau) = \frac{e^{z_i / \tau}}{\sum_j e^{z_j / \tau}}.$$
#
# At $\tau = 1$ we sample the model's own distribution; $\tau < 1$ sharpens it towards the most
# likely token ($\tau \to 0$ always picks it: *greedy* decoding); $\tau > 1$ flattens it towards
# uniform. The slider (in a live kernel) shows the distribution of the next character after a prompt.

# %%
prompt = "The return statement lea"
with torch.no_grad():
    next_logits = gpt(torch.tensor([gpt_tok.encode(prompt)], device=device))[0, -1].float().cpu()


def draw_next_token(temperature: float = 1.0, ax=None) -> torch.Tensor:
    """The 12 most likely next characters after ``prompt`` at ``temperature``; returns all probabilities."""
    probs = torch.softmax(next_logits / temperature, dim=-1)
    top = probs.topk(12)
    ax = ax or plt.subplots(figsize=(7, 2.8))[1]
    ax.bar([repr(gpt_tok.decode([i]))[1:-1] for i in top.indices.tolist()], top.values.numpy())
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum().item()
    ax.set_title(f"next character after {prompt!r}: temperature {temperature:.2f}, entropy {entropy:.2f} nats")
    ax.set_ylim(0, 1)
    return probs


widgets.explorer(draw_next_token, temperature=ipywidgets.FloatLogSlider(
    value=1.0, base=10, min=-1.3, max=0.7, step=0.05, description="temperature", continuous_update=False))

# %%
temperatures = [0.0, 0.5, 0.8, 1.0, 1.5]
for temperature in temperatures:
    print(f"— temperature {temperature} —")
    print(pretrain.sample(gpt, gpt_tok, "The ", 160, temperature=temperature), "\n")
entropies = [-(p * p.clamp_min(1e-12).log()).sum().item()
             for p in (torch.softmax(next_logits / t, dim=-1) for t in (0.25, 0.5, 1.0, 2.0, 4.0))]
print("entropy of the next-character distribution at temperatures 0.25 … 4:", [round(h, 2) for h in entropies])
assert all(a < b for a, b in zip(entropies, entropies[1:])), "a higher temperature means a flatter distribution"
assert pretrain.sample(gpt, gpt_tok, "The ", 50, temperature=0, seed=1) == \
    pretrain.sample(gpt, gpt_tok, "The ", 50, temperature=0, seed=2), "greedy decoding involves no chance"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Low temperatures give safe, repetitive text (greedy decoding soon loops); high temperatures give
# variety and, above 1, misspellings. Around 0.7–0.9 is a common compromise.
#
# ## 7. A source with a known floor
#
# How good *could* a model be? For real English nobody knows. For a synthetic source we can compute
# it. A Markov chain of order 2 picks each token from a table $P[(x_{t-2}, x_{t-1}), x_t]$; in the
# long run the context $c$ occurs with probability $\pi(c)$, and the chain's **entropy rate**
#
# $$H = -\sum_c \pi(c) \sum_x P[c, x] \log P[c, x]$$
#
# is the lowest cross-entropy any model can have on its text: no model can predict the chain better
# than the chain's own table. A model that sees less context has a higher floor of its own. One that
# sees only the previous token can at best reach the **bigram entropy**
#
# $$H(X_t \mid X_{t-1}) = -\sum_{a, x} p(a, x) \log \frac{p(a, x)}{p(a)},$$
#
# where $p(a, x)$ is the long-run probability that token $a$ is followed by $x$ (from $\pi$ and $P$,
# summing over the token before $a$); one that sees no context at all, the entropy of the token
# frequencies $H(X_t)$ (the unigram level). `MarkovChain.conditional_entropy(k)` computes the
# floor for $k$ tokens of context: $k = 0, 1$, and $k = 2$ is the entropy rate. We train a GPT on
# text from such a chain and compare its validation loss with these levels. The first position of each validation window has only one token of context, less
# than the chain uses, so it is left out of the score (its target becomes `IGNORE_INDEX`).

# %%
g = env.seed_everything(0)
chain = MarkovChain.random(vocab_size=6, order=2, sharpness=2.0, generator=g)
floor = chain.entropy_rate()
markov_train, markov_val = chain.sample(200_000, generator=g), chain.sample(40_000, generator=g)
markov_batches = causal_lm_eval_batches(markov_val, 64, 32, max_batches=8)
markov_batches = [(x, y.clone().index_fill_(1, torch.tensor([0]), IGNORE_INDEX)) for x, y in markov_batches]

# The chain's own table on the same validation targets: the loss of the perfect model on this sample.
true_losses = torch.cat([-chain.transition.log()[x[:, :-1] * 6 + x[:, 1:], y[:, 1:]].flatten()
                         for x, y in markov_batches])
table_loss, noise = true_losses.mean().item(), true_losses.std().item() / math.sqrt(len(true_losses))
markov_unigram = pretrain.unigram_loss(markov_train, markov_val, 6)
unigram_level, bigram_level = chain.conditional_entropy(0), chain.conditional_entropy(1)
# The same bigram level counted from the training text: the loss of a count-based bigram model on validation.
pair_counts = torch.zeros(6, 6).index_put_((markov_train[:-1], markov_train[1:]), torch.tensor(1.0), accumulate=True)
counted_bigram = -(pair_counts + 1).div((pair_counts + 1).sum(1, keepdim=True)).log()[markov_val[:-1], markov_val[1:]].mean()
print(chain)
print(f"entropy rate {floor:.4f}; the table's loss on the validation sample {table_loss:.4f} ± {noise:.4f}")
print(f"bigram level H(X_t | X_t-1) = {bigram_level:.4f} (a bigram model counted from the training text scores "
      f"{counted_bigram:.4f}); unigram level H(X_t) = {unigram_level:.4f} (counted: {markov_unigram:.4f}); "
      f"uniform ln 6 = {math.log(6):.3f}")
assert abs(counted_bigram - bigram_level) < 0.01 and abs(markov_unigram - unigram_level) < 0.01
assert floor < bigram_level < unigram_level, "each token of context lowers the floor"

# %%
env.seed_everything(0)
markov_gpt = GPT(GPTConfig(vocab_size=6, context_length=32, n_layer=1, n_head=4, d_model=48))
markov_start = evaluate(markov_gpt, markov_batches, device=device)  # before any training
markov_history = fit(markov_gpt, causal_lm_batches(markov_train, 32, 32, generator=torch.Generator().manual_seed(0)),
                     steps=300, lr=1e-2, warmup_steps=20, val_data=markov_batches, eval_every=10, device=device,
                     plot=False)

MARGIN = 0.05  # nats: how close to the floor the model must come in 300 steps
fig, ax = plt.subplots(figsize=(10, 3.5))
ax.plot([0] + [s + 1 for s in markov_history.val_steps], [markov_start] + markov_history.val_loss, "o-", color="C1",
        label="GPT, validation")
ax.axhline(math.log(6), color="grey", ls=":", label=f"uniform, ln 6 = {math.log(6):.2f}")
ax.axhline(unigram_level, color="grey", ls="--", label=f"unigram level H(X_t) = {unigram_level:.3f}")
ax.axhline(bigram_level, color="C0", ls="--", label=f"bigram level H(X_t | X_t-1) = {bigram_level:.3f}")
ax.axhline(floor, color="black", label=f"entropy rate H = {floor:.3f} (the floor)")
ax.axhspan(floor, floor + MARGIN, color="C2", alpha=0.2, label=f"within {MARGIN} nats of the floor")
ax.set_xlabel("step")
ax.set_ylabel("nats per token")
ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
fig.tight_layout()
plt.show()
gap = markov_history.val_loss[-1] - floor
early = [loss for step, loss in zip(markov_history.val_steps, markov_history.val_loss) if 10 <= step + 1 <= 60]
shoulder = sorted(early)[len(early) // 2]  # the median validation loss of steps 10 to 60
print(f"steps 10-60: median validation loss {shoulder:.3f} ({shoulder - bigram_level:+.3f} from the bigram level, "
      f"{shoulder - unigram_level:+.3f} from the unigram level)")
print(f"final validation loss {markov_history.val_loss[-1]:.4f}: {gap:+.4f} nats from the floor")
assert abs(shoulder - bigram_level) < abs(shoulder - unigram_level) / 2, "the first shoulder is the bigram level"
assert gap < MARGIN, f"the GPT should come within {MARGIN} nats of the entropy rate"
assert min(markov_history.val_loss) > table_loss - 3 * noise, "no model beats the source, up to sampling noise"

# %% [markdown] slideshow={"slide_type": "subslide"}
# The loss falls within a few steps straight past the unigram level to the bigram level: the
# prediction at position $t$ is made from the token at $t$ itself, which the residual stream carries
# without any attention, so "what follows this token" is learned first. Then the loss creeps down
# for some tens of steps, while attention learns to fetch the token *before* it, the second token
# of context the chain uses; once it does, the loss drops again and settles just above the floor. Two details
# make the comparison honest. The validation sample is finite, so its loss is a noisy estimate:
# even the perfect table scores slightly above or below $H$ on it (the ± above is one standard
# error). And a model can come *near* $H$ but not meaningfully below it; a validation loss far
# below the floor would mean that validation text leaked into training.
#
# ## 8. Masked language modelling: a BERT-style encoder
#
# ### Both sides against the past only
#
# A GPT and a BERT-style encoder are the same stack of Transformer blocks; only the attention mask
# differs. A GPT's position $i$ may look at positions $0..i$ (the *causal* mask), because it is
# trained to predict what comes next and must not see it. An encoder sees the whole sequence,
# because its targets are hidden in the input itself (masked), not ahead of it.

# %%
word = list("pretrain")
n = len(word)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
for ax, mask, title in ((axes[0], causal_mask(n), "GPT: causal, the past only"),
                        (axes[1], torch.ones(n, n, dtype=torch.bool), "BERT: both sides")):
    image = ax.imshow(mask.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), word)
    ax.set_yticks(range(n), word)
    ax.set_xlabel("key (may be looked at)")
    ax.set_title(title)
axes[0].set_ylabel("query (looking)")
colorbar = fig.colorbar(image, ax=axes, ticks=[0, 1], shrink=0.8)
colorbar.ax.set_yticklabels(["hidden", "visible"])
plt.show()
assert torch.equal(causal_mask(n), torch.ones(n, n, dtype=torch.bool).tril())

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### BERT's masking: 15%, then 80/10/10
#
# BERT selects 15% of the positions as targets. Of those, 80% are replaced by `<mask>`, 10% by a
# random token and 10% are left unchanged. If every target were a `<mask>`, the model would only
# learn to predict at `<mask>` tokens, which never occur when the model is used later; the random
# and unchanged 20% force it to keep a good representation of every token it sees.

# %%
enc, enc_tok = pretrain.load_shipped("encoder_pydoc_char", device)
mask_id = enc_tok.specials[pretrain.MASK]
enc_val = torch.tensor(enc_tok.encode(val_text))
special_ids = list(enc_tok.specials.values())
enc_batches = masked_lm_eval_batches(enc_val, 32, enc.config.context_length, vocab_size=enc_tok.vocab_size,
                                     mask_id=mask_id, special_ids=special_ids, max_batches=8)
originals = torch.cat([torch.where(t == IGNORE_INDEX, i, t) for i, t in enc_batches])  # the unmasked text
inputs_m = torch.cat([i for i, _ in enc_batches])
selected = torch.cat([t for _, t in enc_batches]) != IGNORE_INDEX
shares = {"selected": selected.float().mean().item(),
          "→ <mask>": (inputs_m[selected] == mask_id).float().mean().item(),
          "→ random": ((inputs_m[selected] != mask_id) & (inputs_m[selected] != originals[selected])).float().mean().item(),
          "unchanged": (inputs_m[selected] == originals[selected]).float().mean().item()}
expected = {"selected": 0.15, "→ <mask>": 0.8, "→ random": 0.1, "unchanged": 0.1}
fig, ax = plt.subplots(figsize=(7, 2.8))
ax.bar(list(shares), list(shares.values()), color="C0", label="measured")
ax.scatter(list(expected), list(expected.values()), color="C3", zorder=3, label="BERT")
ax.set_ylabel("fraction")
ax.legend()
plt.show()
print({k: round(v, 3) for k, v in shares.items()}, f"of {selected.numel():,} positions")
for key in shares:  # (a random replacement now and then draws the original token back)
    assert abs(shares[key] - expected[key]) < 0.03, key

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Fill in the blanks
#
# The encoder shipped in `fmcourse/shipped/` was pretrained with this masking on the same text (by one command,
# in `fmcourse/shipped/README.md`). Give it a sentence with blanks, and it predicts each blank from both sides:

# %%
for blanked in ("A _ist of all the argumen_s passed to the f_nction.",
                "If the _ondition is true, the bod_ of the loop is e_ecuted.",
                "Return a _opy of the list, sor_ed in _scending order."):
    filled, candidates = pretrain.fill_in(enc, enc_tok, blanked)
    print(blanked, "→", filled)
    print("   candidates:", " | ".join(", ".join(f"{c!r} {p:.0%}" for c, p in blank) for blank in candidates))

# %% [markdown] slideshow={"slide_type": "subslide"}
# How much does seeing the right side help? We score both shipped models on the same characters of
# the validation text: the encoder at positions replaced by `<mask>` (it sees both sides, minus the
# other masked characters), the GPT at the same positions from everything before them.

# %%
with torch.no_grad():
    enc_predictions = torch.cat([enc(i.to(device)).argmax(-1).cpu() for i, _ in enc_batches])
    # The same windows in the GPT's ids (its tokenizer has no <mask>, so the ids differ): decode, re-encode.
    gpt_windows = torch.tensor([gpt_tok.encode(enc_tok.decode(w)) for w in originals.tolist()])
    gpt_predictions = gpt(gpt_windows.to(device)).argmax(-1).cpu()  # position t predicts t + 1
hidden = (inputs_m == mask_id)
hidden[:, 0] = False  # the GPT has nothing before position 0 to predict it from
encoder_accuracy = (enc_predictions == originals)[hidden].float().mean().item()
gpt_accuracy = (gpt_predictions[:, :-1] == gpt_windows[:, 1:])[hidden[:, 1:]].float().mean().item()
print(f"{hidden.sum().item():,} hidden characters: encoder (both sides) {encoder_accuracy:.1%} right, "
      f"GPT (left side only) {gpt_accuracy:.1%} right")
assert encoder_accuracy > gpt_accuracy + 0.05, "seeing both sides should make filling in easier"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Filling in is easier than continuing. That is why BERT-style encoders became the standard for
# understanding tasks (classification, search), where the whole input is known, and GPT-style
# decoders for generation, where the future is not. Chapter 06 fine-tunes both.
#
# ## 9. Characters or BPE? Comparing fairly
#
# A loss *per token* is not comparable across tokenizers: a BPE token carries about two characters
# of text, so it is naturally harder to predict than one character.
# The fair unit is the total surprise of the text, divided by its length in characters:
#
# $$\text{nats per character} = \frac{\text{loss per token} \times \text{number of tokens}}{\text{number of characters}}.$$
#
# We train the same GPT on each tokenization for the same 150 steps with `pretrain.pretrain`, which
# runs the whole pipeline of this chapter (prepare, initialize, pretrain) in one call. Each run
# gets the whole schedule: 30 steps of warm-up, then the cosine decay to a tenth of the peak rate
# (the default warm-up of 300 steps is meant for longer runs; 150 steps would end inside it, and the
# comparison would be between two half-started models). Both use the learning rate tuned for
# characters (`bench/pretrain_tuning.py`); BPE gets no tuning of its own, which if anything favours
# characters. Each model is also compared with the unigram baseline of its own tokens, in nats per
# character.

# %%
short_run = dict(steps=150, warmup_steps=30, evaluations=3)
runs = {"char": pretrain.pretrain(raw, tokenizer="char", **short_run)}

# %%
runs["bpe"] = pretrain.pretrain(raw, tokenizer="bpe", **short_run)

# %%
per_token = {kind: run.val_loss for kind, run in runs.items()}
per_char = {kind: run.summary()["nats_per_char"] for kind, run in runs.items()}
unigram_per_char = {kind: run.unigram / run.corpus.chars_per_token for kind, run in runs.items()}
seconds = {kind: run.history.seconds for kind, run in runs.items()}
fig, axes = plt.subplots(1, 3, figsize=(12, 3))
for ax, values, title in ((axes[0], per_token, "validation: nats per token"),
                          (axes[1], per_char, "validation: nats per character")):
    ax.bar(list(values), list(values.values()), color=["C0", "C2"])
    ax.set_title(title)
axes[1].scatter(list(unigram_per_char), list(unigram_per_char.values()), color="black", marker="_", s=900,
                label="unigram baseline")
axes[1].legend(loc="upper right", fontsize=8)
axes[1].set_ylim(0, 1.25 * max(unigram_per_char.values()))
for kind, run in runs.items():
    axes[2].plot(run.history.lr, color="C0" if kind == "char" else "C2", ls="-" if kind == "char" else "--", label=kind)
axes[2].set(title="learning rate of both runs", xlabel="step")
axes[2].legend()
plt.tight_layout()
plt.show()
for kind, run in runs.items():
    print(f"{kind:>4}: {run.tokenizer.vocab_size} tokens, {run.corpus.chars_per_token:.2f} characters per token, "
          f"{per_token[kind]:.3f} nats/token = {per_char[kind]:.3f} nats/char (unigram {unigram_per_char[kind]:.3f}), "
          f"{seconds[kind]:.1f} s")
for run in runs.values():
    assert math.isclose(max(run.history.lr), settings.lr) and math.isclose(run.history.lr[-1], 0.1 * settings.lr,
                                                                           rel_tol=0.01), "warm-up and decay done"
assert per_token["bpe"] > per_token["char"], "per token, the BPE model looks worse"
assert per_char["bpe"] < per_char["char"], "per character, the BPE model is better: per token misleads"
assert all(per_char[kind] < unigram_per_char[kind] for kind in runs), "both use the context"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Per token, the character model looks better; per character, which is what matters, the BPE model
# is better. Part of its lead is there before any training: its unigram baseline is lower per
# character, because a BPE token such as ` the` already carries the frequent combinations of
# letters. And in the same number of steps it read about twice as much text, because its 64-token
# windows hold about twice as many characters. This is one short run per tokenizer, one seed; the
# gap between them is many times what a change of seed moves a loss (a few hundredths of a nat,
# `bench/pretrain_tuning.md`). Its costs: a larger output layer (512 scores per
# position instead of 104, so a step takes a little longer) and a table of 512 embeddings to learn.
# With a long context there is a second gain: attention compares every pair of positions, so its
# cost grows with the square of the sequence length, and BPE halves that length. These are the two
# reasons large language models read subword tokens rather than characters.
#
# ## 10. Pretrain on your own text
#
# Everything in this chapter works on any UTF-8 text. From a terminal:
#
# ```bash
# python -m fmcourse.pretrain --text my_notes.txt --steps 1000 --out runs/notes
# python -m fmcourse.pretrain --help        # every setting: --tokenizer bpe, --objective masked, sizes, ...
# ```
#
# It prints its progress, writes a checkpoint (`model.safetensors` and `checkpoint.json`, which
# `fmcourse.checkpoints.load` reads) and a few samples. The default warm-up is 300 steps, so give a
# run of fewer than about 3,000 steps a shorter one (`--warmup-steps`, about a tenth of `--steps`);
# the command says so when the warm-up fills more than half of the run. Here it trains a one-layer
# GPT for 300 steps, a few seconds, on 30,000 characters:

# %%
workdir = Path(tempfile.mkdtemp())
(workdir / "notes.txt").write_text(val_text[:30_000], encoding="utf-8")
pretrain.main(["--text", str(workdir / "notes.txt"), "--out", str(workdir / "run"), "--steps", "300",
               "--warmup-steps", "30", "--n-layer", "1", "--evaluations", "3", "--samples", "1",
               "--sample-length", "120", "--prompt", "The "])
print(sorted(p.name for p in (workdir / "run").iterdir()))
demo = checkpoints.read_manifest(workdir / "run")["metadata"]
print(f"validation loss {demo['val_loss']:.2f} nats/char against the unigram baseline {demo['unigram_loss']:.2f} "
      f"on this text; the GPT of section 5 after {offsets[2]} steps: {stages[1].val_loss[-1]:.2f}; "
      f"the shipped GPT: {shipped_loss:.2f}")
assert demo["val_loss"] < demo["unigram_loss"] - 0.5, "even a few seconds of training beat the unigram baseline"

# %% [markdown] slideshow={"slide_type": "subslide"}
# The loss ends well below the unigram baseline, but the sample is not English yet: after 300 steps
# on 30,000 characters a one-layer model has learned which letters follow which, where spaces go,
# and a few short words, not spelling; the samples of section 5 read the same way at a similar
# loss. Text that reads like the documentation needs the shipped model's thousands of steps on the
# whole corpus (its sample is in section 5), or more.
#
# The command refuses two files that are not text, with a message (on the error stream) instead of
# a traceback:

# %%
(workdir / "empty.txt").write_text("")
(workdir / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
for bad in ("empty.txt", "image.png"):
    try:
        pretrain.main(["--text", str(workdir / bad), "--out", str(workdir / "bad"), "--steps", "10"])
    except SystemExit as stop:
        print(f"{bad}: exit status {stop.code}")
assert (workdir / "run" / "model.safetensors").is_file() and not (workdir / "bad").exists()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Two more mistakes that get a clear message: a prompt with characters the model never saw in
# training, and a checkpoint loaded as the wrong kind of model.

# %%
refused = []
for mistake, attempt in {"unseen characters": lambda: pretrain.sample(gpt, gpt_tok, "☕ café"),
                         "wrong architecture": lambda: checkpoints.load(workdir / "run", Encoder)}.items():
    try:
        attempt()
    except ValueError as error:
        refused.append(mistake)
        print(f"{mistake}: ValueError: {error}")
assert len(refused) == 2, "both mistakes must be refused with a ValueError"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 11. Taking the model elsewhere
#
# Our GPT has GPT-2's architecture, so `fmcourse.export.to_huggingface` converts it into a Hugging
# Face `transformers` `GPT2LMHeadModel` (renaming the weights and transposing the linear layers,
# which GPT-2 stores the other way round) and can save it with `save_pretrained`. The converted
# model computes the same logits:

# %%
from fmcourse.export import to_huggingface

hf_model = to_huggingface(gpt, workdir / "gpt-hf", tokenizer=gpt_tok)
window = val_batches[0][0][:4]
with torch.no_grad():
    difference = (hf_model(window).logits - gpt(window.to(device)).float().cpu()).abs().max().item()
print(sorted(p.name for p in (workdir / "gpt-hf").iterdir()))
print(f"largest difference between the logits: {difference:.1e}")
assert difference < 1e-3, "the exported model must compute what ours computes"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - Self-supervised pretraining makes labels from the data: the next token (causal LM, GPT) or
#   masked tokens (masked LM, BERT). Any raw text will do.
# - Step 1, data preprocessing: clean to one canonical form; drop repeated paragraphs (a fifth of
#   this corpus) and split by whole paragraphs so no text is on both sides (a random cut leaks, and
#   the model scores better on text it trained on than on new text); tokenize (characters: simple, long sequences; BPE: shorter sequences, a larger
#   vocabulary, no unknown characters).
# - Step 2, initialization: a random model starts at a loss of about $\ln V$; check it.
# - Step 3, pretraining: the GPT ended well below the unigram baseline, and its samples went from
#   noise to the look of the documentation. On a source of known entropy rate, a GPT passed the
#   unigram level, paused near the bigram level $H(X_t \mid X_{t-1})$, and came within a few
#   hundredths of a nat of the floor that no model can beat.
# - A BERT-style encoder sees both sides of a blank: it filled in hidden characters more often
#   right than a GPT of the same size, which sees only what comes before.
# - Compare models in nats per character across tokenizers, each trained through its whole
#   learning-rate schedule; report perplexity $e^{\mathcal{L}}$ to
#   make a loss readable; set the temperature to trade variety against safety.
# - `python -m fmcourse.pretrain` pretrains on your own text; `fmcourse.export` takes a GPT to
#   Hugging Face.
#
# Next, chapter 05 pretrains without predicting tokens at all: contrastive learning. Chapter 06
# starts from the GPT pretrained here and fine-tunes it.
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
from fmcourse.exercises import pretraining as exercises

# 1. The trigram baseline: section 5 counted a bigram model; now give the counts two tokens of
#    context. From the (two before, one before, next) triples of the training ids, with add-one
#    smoothing, return the cross-entropy (nats per token) of the validation ids' triples. Ids are 1-D
#    int64 tensors with values < vocab_size.
def my_trigram(train, val, vocab_size):
    ...  # your code here


exercises.trigram_baseline.check(my_trigram)

# %%
# 2. A number. A BPE model reports a validation perplexity of 20 per token, and its tokens hold 3.6
#    characters on average. What is its perplexity per character?
my_perplexity_per_character = ...

exercises.per_character_perplexity.check(my_perplexity_per_character)

# %%
# 3. Top-k sampling: return the probabilities, shape like `logits` (..., V), with which a token is drawn
#    when only the k most likely tokens may be drawn, at `temperature`.
def my_top_k_probabilities(logits, k, temperature):
    ...  # your code here


exercises.top_k_probabilities.check(my_top_k_probabilities)

# %%
# 4. An experiment. What is context worth? For three random order-2 chains over 6 tokens, the cell
#    prints the unigram loss minus the entropy rate: how much a model gains by using the context.
#    Predict first: if the chains are made sharper (sharpness 4 instead of 2: each next token more
#    predictable), does the mean gap "grow" or "shrink"? Then set sharpness = 4.0, run, and record.
from fmcourse.data import MarkovChain

sharpness = 2.0  # change me
gaps = []
for seed in (0, 1, 2):
    g = torch.Generator().manual_seed(seed)
    example_chain = MarkovChain.random(vocab_size=6, order=2, sharpness=sharpness, generator=g)
    example_train, example_val = example_chain.sample(20_000, generator=g), example_chain.sample(5_000, generator=g)
    gaps.append(pretrain.unigram_loss(example_train, example_val, 6) - example_chain.entropy_rate())
print(f"sharpness {sharpness:g}: gap per chain {[round(gap, 3) for gap in gaps]}, mean {sum(gaps) / 3:.4f} nats/token")

my_prediction = ...  # "grows" or "shrinks", written down BEFORE running at sharpness 4
my_measurement = ...  # the mean gap printed at sharpness 4
exercises.markov_context_experiment.check(my_prediction, my_measurement)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button: click it only when you want to see them (or run
# `exercises.<name>.show_solution()` for one exercise).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.trigram_baseline, exercises.per_character_perplexity, exercises.top_k_probabilities,
                      exercises.markov_context_experiment)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Further reading
#
# - A. Radford, K. Narasimhan, T. Salimans, I. Sutskever, "Improving language understanding by
#   generative pre-training" (OpenAI, 2018): GPT, causal pretraining then fine-tuning.
# - A. Radford et al., "Language models are unsupervised multitask learners" (OpenAI, 2019): GPT-2,
#   its byte-level BPE, and the architecture our GPT follows.
# - J. Devlin, M.-W. Chang, K. Lee, K. Toutanova, "BERT: Pre-training of deep bidirectional
#   Transformers for language understanding" (NAACL 2019), one of the papers the seed's section
#   7.3 recommends: masked language modelling and the 80/10/10 rule.
# - R. Sennrich, B. Haddow, A. Birch, "Neural machine translation of rare words with subword units"
#   (ACL 2016): byte-pair encoding for text.
# - C. Shannon, "Prediction and entropy of printed English", *Bell System Technical Journal* 30
#   (1951): how predictable English is, measured with people as the language model.
# - T. Cover, J. Thomas, *Elements of Information Theory* (2nd ed., Wiley, 2006), chapter 4:
#   entropy rates of Markov chains.
# - A. Holtzman, J. Buys, L. Du, M. Forbes, Y. Choi, "The curious case of neural text degeneration"
#   (ICLR 2020): why greedy decoding repeats itself, and sampling beyond temperature.
# - S. Hu et al., "MiniCPM: unveiling the potential of small language models with scalable training
#   strategies" (2024): the warm-up, stable, decay schedule.
