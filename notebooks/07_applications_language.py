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
# # 07 · Applications in language: generation, translation, question answering
#
# **Seed section 6.1 自然语言处理 (natural language processing): 文本生成 (text generation), 机器翻译
# (machine translation) and 问答系统 (question answering).**
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmcourse_unpublished/fmcourse/blob/v0.1.0/notebooks/07_applications_language.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/fmcourse_unpublished/fmcourse/v0.1.0?urlpath=lab/tree/notebooks/07_applications_language.ipynb)
#
# A language model outputs a probability distribution over the next token. Every application in this
# chapter is a way of *using* that distribution: drawing text from it (generation), conditioning it on
# a sentence in another language (translation), or on a question and the facts it is about (question
# answering). Each application is trained and measured here on data with known right answers, small
# enough for a laptop CPU, and offline.
#
# **In this notebook you will**
# - write greedy decoding, temperature, top-k and top-p (nucleus) sampling, see what each does to the
#   next-token distribution of the GPT pretrained in chapter 04, and generate from it with a widget;
# - build the key/value cache that makes generation fast, and time it token by token;
# - train an encoder–decoder Transformer to translate English number words into Chinese numerals,
#   with teacher forcing, decode it greedily and with beam search, score it with exact match and BLEU
#   on numbers it never saw, and look at where its cross-attention looks;
# - train one text-to-text model on three tasks marked by a prefix (the T5 idea), measure it per task
#   and read its failures.
#
# **Time on a laptop CPU:** 42 s for the whole notebook.

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
import statistics
import time

import ipywidgets
import matplotlib.pyplot as plt
import torch

from fmcourse import decoding, metrics, widgets
from fmcourse.pretrain import encode_prompt, load_shipped

env.print_report()
device = env.get_device()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Generation: choosing the next token
#
# A GPT maps the tokens so far, $x_{<t}$, to a vector of **logits** $z \in \mathbb{R}^V$, one per
# token of the vocabulary, and the softmax turns them into the next-token distribution
#
# $$p(x_t = i \mid x_{<t}) = \frac{e^{z_i / \tau}}{\sum_j e^{z_j / \tau}},$$
#
# here with a **temperature** $\tau > 0$. Generating text means choosing a token from $p$, appending
# it, and asking again. How the token is chosen matters as much as the model:
#
# - **greedy**: always the most likely token, $\arg\max_i z_i$ (the limit $\tau \to 0$). Repeatable,
#   but a small model soon falls into a loop, and the most likely *sequence* is not the sequence of
#   most likely tokens;
# - **temperature**: $\tau < 1$ sharpens $p$ towards the likely tokens, $\tau > 1$ flattens it
#   towards uniform (more variety, more nonsense);
# - **top-k**: keep only the $k$ most likely tokens, renormalise, sample. The long tail of unlikely
#   tokens, each rare but together often likely, can no longer derail the text;
# - **top-p** or *nucleus* sampling (Holtzman et al., 2020): keep the smallest set of most likely
#   tokens whose probabilities add up to at least $p$. Where the model is sure, the set has one or
#   two tokens; where many continuations are plausible, it has many. A fixed $k$ cannot adapt so.
#
# Each rule is a few lines on the logits: it sets the logits of the excluded tokens to $-\infty$,
# so that the softmax gives them probability exactly 0. We write them here, then check them against
# `fmcourse.decoding`, which every model of the course uses.

# %%
gpt, tok = load_shipped("gpt_pydoc_char", device)   # chapter 04's character GPT, pretrained on Python's docs
gpt.eval()
print(gpt.config)


def with_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits (..., V) divided by a temperature > 0."""
    return logits / temperature


def keep_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits (..., V) with -inf everywhere but at the k largest."""
    kth_largest = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def keep_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Logits (..., V) with -inf outside the nucleus: the fewest most likely tokens of total mass >= p."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs            # mass of the tokens ranked above each token
    sorted_logits = sorted_logits.masked_fill(mass_before >= p, float("-inf"))   # the set is full already
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


prompt = "The function returns a "
with torch.no_grad():
    logits = gpt(torch.tensor([encode_prompt(tok, prompt)], device=device))[0, -1].float().cpu()   # (V,)

rules = {
    "as trained (τ = 1)": logits,
    "greedy (τ → 0)": keep_top_k(logits, 1),
    "τ = 0.5": with_temperature(logits, 0.5),
    "τ = 1.5": with_temperature(logits, 1.5),
    "top-k, k = 5": keep_top_k(logits, 5),
    "top-p, p = 0.9": keep_top_p(logits, 0.9),
}
shown = logits.topk(16).indices                          # the 16 most likely characters, in this order
fig, axes = plt.subplots(2, 3, figsize=(12, 5.2), sharey=True)
for ax, (name, rule_logits) in zip(axes.flat, rules.items()):
    probs = rule_logits.softmax(dim=-1)
    ax.bar(range(16), probs[shown].numpy(), color=["C0" if q > 0 else "lightgray" for q in probs[shown]])
    ax.set_xticks(range(16), [repr(tok.decode([i]))[1:-1] for i in shown.tolist()], fontsize=8)
    ax.set_title(f"{name}: {int((probs > 0).sum())} tokens allowed", fontsize=10)
axes[0, 0].set_ylabel("probability")
axes[1, 0].set_ylabel("probability")
fig.suptitle(f"the next character after {prompt!r}, under each rule")
fig.tight_layout()
plt.show()

probs = logits.softmax(dim=-1)
nucleus = torch.isfinite(keep_top_p(logits, 0.9))
mass = probs[nucleus].sum().item()
smallest_in = probs[nucleus].min().item()
print(f"the nucleus at p = 0.9 holds {int(nucleus.sum())} characters of mass {mass:.3f}; "
      f"without its least likely member it would hold {mass - smallest_in:.3f}")
assert mass >= 0.9 > mass - smallest_in, "the nucleus is the smallest set of mass >= p"
assert int(torch.isfinite(keep_top_k(logits, 5)).sum()) == 5
assert keep_top_k(logits, 1).softmax(-1).argmax() == logits.argmax()
# the same rules in the package, used by every model of the course
for p in (0.3, 0.7, 0.9, 0.99):
    assert torch.equal(torch.isfinite(decoding.filter_top_p(logits, p)), torch.isfinite(keep_top_p(logits, p)))
for k in (1, 5, 20):
    assert torch.equal(torch.isfinite(decoding.filter_top_k(logits, k)), torch.isfinite(keep_top_k(logits, k)))

# %% [markdown] slideshow={"slide_type": "subslide"}
# Now generate: the loop below asks the GPT for the logits of the next character, applies a rule,
# draws, appends, and asks again (the model sees at most its last `context_length` = 64 characters).
# It also records how likely the model itself finds each chosen character at $\tau = 1$, so that we
# can measure what each rule trades: the **log-likelihood per character** (how "safe" the text is, in
# the model's eyes) against **repetition** (the fraction of 8-character pieces of a sample that
# already occurred earlier in the same sample: a loop).

# %%
@torch.no_grad()
def generate(prompt: str, length: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, seed: int = 0) -> tuple[str, float]:
    """``prompt`` continued by ``length`` characters (temperature 0: greedy); also the mean log-probability
    (nats) the model gives the chosen characters at temperature 1."""
    generator = torch.Generator().manual_seed(seed)
    ids, log_likelihood = encode_prompt(tok, prompt), 0.0
    for _ in range(length):
        z = gpt(torch.tensor([ids[-gpt.config.context_length:]], device=device))[0, -1].float().cpu()   # (V,)
        if temperature == 0:
            next_id = int(z.argmax())
        else:
            rule = with_temperature(z, temperature)
            rule = keep_top_k(rule, top_k) if top_k else rule
            rule = keep_top_p(rule, top_p) if top_p else rule
            next_id = int(torch.multinomial(rule.softmax(-1), 1, generator=generator))
        log_likelihood += z.log_softmax(-1)[next_id].item()
        ids.append(next_id)
    return tok.decode(ids), log_likelihood / length


def repetition(text: str, n: int = 8) -> float:
    """The fraction of the n-character pieces of ``text`` that already occurred earlier in it."""
    seen, repeated = set(), 0
    for i in range(len(text) - n + 1):
        repeated += text[i:i + n] in seen
        seen.add(text[i:i + n])
    return repeated / max(1, len(text) - n + 1)


settings = {"greedy": dict(temperature=0), "τ = 0.5": dict(temperature=0.5), "τ = 1": dict(temperature=1.0),
            "τ = 1.5": dict(temperature=1.5), "top-k = 5": dict(top_k=5), "top-p = 0.9": dict(top_p=0.9)}
length, seeds = 150, range(3)
results = {}
for name, kwargs in settings.items():
    runs = [generate(prompt, length, seed=seed, **kwargs) for seed in (seeds if kwargs.get("temperature") != 0 else [0])]
    results[name] = (statistics.mean(ll for _, ll in runs), statistics.mean(repetition(t[len(prompt):]) for t, _ in runs))
    print(f"— {name} —\n{runs[0][0]!r}\n")

fig, ax = plt.subplots(figsize=(6.5, 4))
for name, (ll, rep) in results.items():
    ax.scatter(ll, rep, s=40)
    ax.annotate(name, (ll, rep), textcoords="offset points", xytext=(6, 4))
ax.set_xlabel("log-likelihood per character under the model (nats; higher = safer)")
ax.set_ylabel("repetition (share of repeated 8-character pieces)")
ax.set_title(f"what each rule trades ({length} characters, mean of {len(seeds)} seeds)")
plt.show()

assert results["greedy"][0] > results["τ = 1"][0] > results["τ = 1.5"][0], "sharper rules pick likelier characters"
assert results["greedy"][1] > results["τ = 1"][1], "greedy decoding repeats itself more than sampling"
# the package's sampler draws the same characters from the same seed (greedy with its key/value cache, below;
# top-p without it, so that not even float rounding differs)
for kwargs in (dict(temperature=0.0), dict(temperature=1.0, top_p=0.9, use_cache=False)):
    ids = torch.tensor([encode_prompt(tok, prompt)], device=device)
    theirs = tok.decode(decoding.sample(gpt, ids, 40, seed=1, **kwargs)[0].tolist())
    kwargs.pop("use_cache", None)
    assert theirs == generate(prompt, 40, seed=1, **kwargs)[0], theirs

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Try it
#
# The widget below generates from the shipped GPT with every setting at once (top-k 0 and top-p 1 mean
# "off"; temperature 0 is greedy). Run headless, as under the tests, it draws its first state once.
# Things to try: greedy on a prompt it knows (`"The list "`), then temperature 1.5; top-k = 1 against
# greedy; a high temperature rescued by a small top-p.

# %%
def draw_generation(prompt: str = "The list ", temperature: float = 0.8, top_k: int = 0, top_p: float = 0.95,
                    length: int = 200, seed: int = 0) -> str:
    """Print a sample of the shipped GPT under the given rule and return it."""
    try:
        ids = torch.tensor([encode_prompt(tok, prompt)], device=device)
    except ValueError as error:                    # an empty prompt or a character the GPT never saw
        print("ValueError:", error)
        return ""
    out = decoding.sample(gpt, ids, length, temperature=temperature, top_k=top_k or None,
                          top_p=top_p if top_p < 1 else None, seed=seed)
    text = tok.decode(out[0].tolist())
    print(text)
    return text


widgets.explorer(
    draw_generation,
    prompt=ipywidgets.Text(value="The list ", description="prompt", continuous_update=False),
    temperature=ipywidgets.FloatSlider(value=0.8, min=0.0, max=2.0, step=0.05, description="temperature",
                                       continuous_update=False),
    top_k=ipywidgets.IntSlider(value=0, min=0, max=tok.vocab_size, description="top-k (0: off)", continuous_update=False),
    top_p=ipywidgets.FloatSlider(value=0.95, min=0.05, max=1.0, step=0.05, description="top-p (1: off)",
                                 continuous_update=False),
    length=ipywidgets.IntSlider(value=200, min=10, max=400, step=10, description="length", continuous_update=False),
    seed=ipywidgets.IntSlider(value=0, min=0, max=20, description="seed", continuous_update=False),
)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The key/value cache
#
# The loop above runs the whole model on the whole text so far for *every* new token. That wastes
# work: in a causal model, position $s$ never sees positions after it, so its keys
# $k_s = W_K h_s$ and values $v_s = W_V h_s$ in every layer are the same at every later step. A
# **key/value cache** stores them. Each step then runs the model on the one new position only: its
# query attends to the stored keys and values and to its own, which are appended to the cache,
#
# $$\text{out}_t = \sum_{s \le t} \operatorname{softmax}_s\!\Big(\frac{q_t \cdot k_s}{\sqrt{d}}\Big)\, v_s .$$
#
# Without the cache, step $t$ costs the work of $t$ positions (every projection and MLP, plus
# attention among all of them, $O(t^2)$); with it, the work of one position plus reading $t$ cached
# keys, $O(t)$. The price is memory: $2 \times n_\text{layer} \times t \times d_\text{model}$ numbers
# per sequence. `gpt.new_cache()` makes an empty cache and `gpt(idx, cache=cache)` runs new
# positions against it. We time every step of generating up to the full context of 64 positions,
# both ways, for a batch of 16 sequences, and take the fastest of a few repeats of each step (the
# least disturbed by other programs).

# %%
@torch.no_grad()
def timed_greedy(prompt_ids: torch.Tensor, new_tokens: int, use_cache: bool) -> tuple[torch.Tensor, list[float]]:
    """Greedy continuation of ``prompt_ids`` (B, T0); returns the ids (B, T0 + new_tokens) and the
    seconds each step took."""
    idx, seconds = prompt_ids, []
    cache = gpt.new_cache() if use_cache else None
    step_input = idx
    for _ in range(new_tokens):
        start = time.perf_counter()
        logits = gpt(step_input, cache=cache) if use_cache else gpt(idx)
        next_id = logits[:, -1].argmax(dim=-1, keepdim=True)                 # (B, 1)
        seconds.append(time.perf_counter() - start)
        idx = torch.cat([idx, next_id], dim=1)
        step_input = next_id                                                 # the cache holds the rest
    return idx, seconds


batch = torch.tensor([encode_prompt(tok, p) for p in ("The ", "A li", "If t", "For ")] * 4, device=device)  # (16, 4)
new_tokens = gpt.config.context_length - batch.size(1)                      # up to the full context
timed_greedy(batch, 8, True), timed_greedy(batch, 8, False)                 # warm up
runs = {use_cache: [timed_greedy(batch, new_tokens, use_cache) for _ in range(3)] for use_cache in (False, True)}
per_step = {use_cache: torch.tensor([s for _, s in r]).min(dim=0).values * 1e3 for use_cache, r in runs.items()}  # ms
positions = torch.arange(batch.size(1), batch.size(1) + new_tokens)

fig, ax = plt.subplots(figsize=(7, 3.6))
ax.plot(positions, per_step[False], label="without cache: the whole text again")
ax.plot(positions, per_step[True], label="with the key/value cache: one new position")
ax.set_xlabel("position of the token generated")
ax.set_ylabel("milliseconds per step (batch of 16)")
ax.set_ylim(bottom=0)
ax.legend()
plt.show()

same = torch.equal(runs[False][0][0], runs[True][0][0])
last = slice(-8, None)                                                       # the last 8 positions
speedup = per_step[False][last].median() / per_step[True][last].median()
print(f"tokens identical both ways: {same}; at positions {positions[-8]}–{positions[-1]} a cached step is "
      f"{speedup:.1f}× faster ({per_step[True][last].median():.2f} ms against {per_step[False][last].median():.2f} ms)")
with torch.no_grad():   # the logits agree too, up to float rounding
    full = gpt(runs[True][0][0][:, :-1])
    cache = gpt.new_cache()
    stepwise = torch.cat([gpt(runs[True][0][0][:, :batch.size(1)], cache=cache)] +
                         [gpt(runs[True][0][0][:, t:t + 1], cache=cache) for t in range(batch.size(1), gpt.config.context_length - 1)], dim=1)
print(f"largest difference of a logit, with and without the cache: {(full - stepwise).abs().max():.2e}")
assert same, "the cache must not change a single token"
assert torch.allclose(full, stepwise, atol=1e-4)
assert speedup > 1, "at the longest position shown, the cached step is faster"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Translation with an encoder–decoder
#
# Machine translation maps a sentence $x$ in one language to a sentence $y$ in another. The
# original Transformer (Vaswani et al., 2017) was built for it, as an **encoder–decoder**: the
# encoder reads the whole source at once (no causal mask) and turns it into a *memory*, one vector
# per source token; the decoder is a GPT over the target, with one more sublayer in every block,
# **cross-attention**, whose queries come from the target and whose keys and values come from the
# memory. It models
#
# $$p_\theta(y \mid x) = \prod_{t=1}^{|y|} p_\theta(y_t \mid y_{<t}, x).$$
#
# To know every right answer, we translate **English number words into Chinese numerals**
# (`fmcourse.data.numbers`). It is a small language pair, but a real one: it needs *reordering*
# and *rules*, not a dictionary. English counts in thousands, Chinese in ten-thousands (万), so
# "twelve thousand" is 一万二千; a run of zeros is read as one 零 (305 三百零五, 1005 一千零五) but
# trailing zeros are silent (3000 三千); a leading 一十 is read 十 (15 十五) but not inside a number
# (115 一百一十五). The numbers are drawn from 0 to 99,999; 3,000 of them are for training, and the
# 500 test numbers never occur in training. Most test numbers are new combinations of
# familiar pieces, which is exactly what a translator must handle.
#
# The simplest baseline is a **word-by-word dictionary**: translate each English word on its own
# (three → 三, hundred → 百, and → 零, twelve → 十二, thousand → 千) and concatenate.

# %%
from fmcourse.data.numbers import ONES, TENS, number_pairs, number_vocab, split_numbers, to_chinese, to_english

split = split_numbers(n_train=3000, n_test=500, high=100_000, seed=0)
train_pairs, test_pairs = number_pairs(split.train), number_pairs(split.test)
vocab = number_vocab()                 # English words in, Chinese characters out, after <pad> <bos> <eos>
print(vocab, "\n")
for n in (10, 15, 115, 305, 1005, 3000, 10500, 12305):
    print(f"{n:>6}  {to_english(n):<42} {to_chinese(n)}")

dictionary = {word: to_chinese(i) for i, word in enumerate(ONES)}
dictionary |= {TENS[k]: to_chinese(10 * k) for k in range(2, 10)} | {"hundred": "百", "thousand": "千", "and": "零"}


def word_by_word(english: str) -> str:
    """The baseline: every English word translated on its own, in the same order."""
    return "".join(dictionary[word] for word in english.split())


test_sources, test_targets = [s for s, _ in test_pairs], [t for _, t in test_pairs]
baseline = [word_by_word(s) for s in test_sources]
baseline_em = metrics.exact_match(baseline, test_targets)
print(f"\nword-by-word: {word_by_word('three hundred and five')} (right), "
      f"{word_by_word('twelve thousand three hundred and five')} (should be {to_chinese(12305)}), "
      f"{word_by_word('one hundred and fifteen')} (should be {to_chinese(115)})")
print(f"word-by-word exact match on the test numbers: {baseline_em:.1%}")
assert not set(split.train) & set(split.test), "no test number occurs in training"
assert word_by_word("three hundred and five") == to_chinese(305)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Teacher forcing.** Training maximises $\log p_\theta(y \mid x) = \sum_t \log p_\theta(y_t \mid y_{<t}, x)$.
# Every factor conditions on the *right* previous target tokens $y_{<t}$, so the decoder reads the
# true target shifted right by one, `<bos> y_1 … y_T`, and predicts `y_1 … y_T <eos>` at all positions
# in one pass (the causal mask keeps position $t$ from seeing $y_t$). This is *teacher forcing*:
# fast and stable, because a mistake early in the target does not spoil the rest of the training
# signal. At test time there is no teacher: the decoder reads its own previous outputs, and one
# wrong token can lead it where training never went (*exposure bias*).
#
# The model is small: 2 encoder and 2 decoder blocks of width 64, one vocabulary and one tied
# embedding for both languages (`fmcourse.models.EncoderDecoder`), trained with the course's `fit`.

# %%
from fmcourse.models import EncoderDecoder, EncoderDecoderConfig
from fmcourse.train import fit

source, source_is_token = vocab.source_batch([s for s, _ in train_pairs])   # (3000, S) ids and mask
target_in, target_out = vocab.target_batch([t for _, t in train_pairs])     # (3000, T + 1) each, shifted by one
print(f"source {tuple(source.shape)}, target in {tuple(target_in.shape)}; the first pair:")
print("  source    ", [vocab.itos[i] for i in source[0].tolist()])
print("  target in ", [vocab.itos[i] for i in target_in[0].tolist()])
print("  target out", [vocab.itos[i] if i >= 0 else "(ignored)" for i in target_out[0].tolist()])


def seq2seq_loss(model: EncoderDecoder, batch) -> torch.Tensor:
    """Teacher-forced cross-entropy: the decoder reads the true target so far and predicts the next token."""
    src, src_is_token, t_in, t_out = batch
    logits = model(src, t_in, src_is_token, t_in != vocab.pad_id)      # (B, T + 1, V)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), t_out.flatten(), ignore_index=-100)


def random_batches(tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int):
    """A function giving a random batch (rows drawn with a seeded generator) of every tensor at each call."""
    generator = torch.Generator().manual_seed(seed)

    def batch():
        rows = torch.randint(0, len(tensors[0]), (batch_size,), generator=generator)
        return tuple(t[rows] for t in tensors)

    return batch


# Seed 1, not 0: with seed 0 this run sat on a plateau (loss about 1.1: the right shape of answer, the
# wrong digits) for the 300-400 steps we tried, while seeds 1 and 2 left it within 150 steps. Small
# seq2seq models often pause on such a plateau; how long depends on the seed.
env.seed_everything(1)
translator = EncoderDecoder(EncoderDecoderConfig(vocab_size=vocab.vocab_size, context_length=16, n_layer=2,
                                                 n_head=4, d_model=64))
history = fit(translator, random_batches((source, source_is_token, target_in, target_out), 128, seed=1),
              seq2seq_loss, steps=250, lr=3e-3, warmup_steps=50, device=device)
print(f"training loss {history.train_loss[0]:.2f} -> {history.train_loss[-1]:.3f} nats per token in "
      f"{history.seconds:.1f} s")
assert history.train_loss[-1] < 0.1 * history.train_loss[0]

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Greedy decoding and beam search
#
# To translate, the decoder starts from `<bos>` and appends one token at a time until it writes
# `<eos>`. **Greedy** decoding appends the most likely token each time. It need not find the most
# likely *translation*: a token that looks best now can force unlikely tokens later. **Beam search**
# keeps the $B$ most likely prefixes instead of one: at each step it extends each of them by every
# token, scores each candidate by its total log-probability $\sum_t \log p(y_t \mid y_{<t}, x)$, and
# keeps the best $B$ of all $B \cdot V$ candidates; a prefix that wrote `<eos>` is finished and keeps
# its score. $B = 1$ is greedy decoding. `fmcourse.decoding.translate` does both (greedy for a whole
# batch at once, with a key/value cache in the decoder; beam search sentence by sentence).
#
# Two scores on the 500 test numbers: **exact match**, the share of translations that are right to
# the character, and **BLEU** (Papineni et al., 2002), the standard score of machine translation. BLEU
# counts the n-grams (here of characters, $n = 1..4$) of the output that occur in the reference,
# each at most as often as there (*clipped* precision $p_n$), takes their geometric mean and
# multiplies it by a *brevity penalty* for outputs shorter than the references:
#
# $$\text{BLEU} = \min\!\big(1, e^{1 - r/c}\big) \cdot \exp\Big(\frac14 \sum_{n=1}^4 \log p_n\Big),$$
#
# with $c$ and $r$ the total lengths of the outputs and of the references. BLEU gives partial credit:
# 一万二千三百零六 for 一万二千三百零五 scores high although the number is wrong, which is why we
# report exact match too. The cell asserts at least 90% exact match on the test numbers, and more
# than 50 points above the dictionary.

# %%
test_source, test_source_is_token = vocab.source_batch(test_sources)
start = time.perf_counter()
greedy_ids = decoding.translate(translator, test_source, source_is_token=test_source_is_token,
                                bos_id=vocab.bos_id, eos_id=vocab.eos_id, max_new_tokens=12)
greedy = [vocab.decode_target(ids) for ids in greedy_ids]
greedy_seconds, start = time.perf_counter() - start, time.perf_counter()
beam = [vocab.decode_target(ids) for ids in decoding.translate(
    translator, test_source, beam_size=4, source_is_token=test_source_is_token, bos_id=vocab.bos_id,
    eos_id=vocab.eos_id, max_new_tokens=12)]
beam_seconds = time.perf_counter() - start

scores = {name: (metrics.exact_match(out, test_targets), metrics.bleu(out, test_targets, split="chars"))
          for name, out in (("word by word", baseline), ("greedy", greedy), ("beam search, B = 4", beam))}
fig, ax = plt.subplots(figsize=(7, 3.4))
for i, (name, (em, bleu)) in enumerate(scores.items()):
    ax.bar([i - 0.2], [em], width=0.4, color="C0", label="exact match" if i == 0 else None)
    ax.bar([i + 0.2], [bleu], width=0.4, color="C1", label="BLEU (characters, n ≤ 4)" if i == 0 else None)
    ax.text(i - 0.2, em + 0.02, f"{em:.0%}", ha="center", fontsize=9)
    ax.text(i + 0.2, bleu + 0.02, f"{bleu:.2f}", ha="center", fontsize=9)
ax.set_xticks(range(len(scores)), list(scores))
ax.set_ylim(0, 1.12)
ax.set_title("500 test numbers, none of them seen in training")
ax.legend(loc="upper left", fontsize=8)
plt.show()
print(f"greedy: {greedy_seconds:.2f} s for 500 (batched); beam search: {beam_seconds:.2f} s (one by one); "
      f"beam search changed {sum(g != b for g, b in zip(greedy, beam))} of 500 translations")
wrong = [(n, s, g, t) for n, s, g, t in zip(split.test, test_sources, greedy, test_targets) if g != t]
print(f"{len(wrong)} wrong greedy translations" + (":" if wrong else ""))
for n, s, g, t in wrong[:8]:
    print(f"  {n:>6} {s:<52} {g:<10} should be {t}")

TRANSLATION_BOUND = 0.9
assert scores["greedy"][0] >= TRANSLATION_BOUND, f"greedy exact match {scores['greedy'][0]:.1%}"
assert scores["greedy"][0] > scores["word by word"][0] + 0.5, "far above the dictionary baseline"
assert scores["greedy"][1] > scores["word by word"][1]

# %% [markdown] slideshow={"slide_type": "subslide"}
# The translator beats the dictionary by a wide margin on numbers it never saw: it has learned the
# reordering into groups of 万 and the 零 and 十 rules, not a table of phrases. Beam search has nothing
# to add when greedy decoding is already right (the line above says how many translations it changed):
# the model is so sure of each character that the greedy path is also the most likely sequence. Beam
# search pays off when the best first token is not obvious, for example with a less trained model
# (try fewer training steps) or with longer, more ambiguous outputs.

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Where the decoder looks
#
# Cross-attention tells which source words the decoder reads while it writes each character. Below,
# for three test numbers, the weights of the last decoder layer, averaged over its 4 heads: one row
# per character being predicted, one column per English word. A translator that has learned the
# reordering should read "thousand" or "hundred" around the unit characters it writes, and the digit
# words while it writes the digits. (The plot labels each Chinese character by its value, 一 as 1 and
# 万 as ×10⁴, as the plotting font may have no Chinese glyphs.)

# %%
VALUE_LABEL = {c: str(i) for i, c in enumerate("零一二三四五六七八九")} | {"十": "×10", "百": "×100", "千": "×1000",
                                                                    "万": "×10⁴"}
examples = [n for n in split.test if n >= 10_000 and "零" in to_chinese(n)][:1] + \
           [n for n in split.test if 10_000 <= n < 20_000][:1] + [n for n in split.test if 100 <= n < 1000][:1]
pairs = number_pairs(examples)
ex_source, ex_is_token = vocab.source_batch([s for s, _ in pairs])
ex_in, ex_out = vocab.target_batch([t for _, t in pairs])
maps = translator.cross_attention_maps(ex_source, ex_in, ex_is_token)   # (layers, B, heads, T, S)
last = maps[-1].mean(dim=1)                                              # (B, T, S): last layer, mean of heads

fig, axes = plt.subplots(1, len(examples), figsize=(4.6 * len(examples), 3.8))
for b, ax in enumerate(axes):
    words = [vocab.itos[i] for i in ex_source[b][ex_is_token[b]].tolist()]
    chars = [VALUE_LABEL.get(vocab.itos[i], vocab.itos[i]) for i in ex_out[b].tolist() if i >= 0]
    image = ax.imshow(last[b, :len(chars), :len(words)], cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(words)), words, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(chars)), chars, fontsize=9)
    ax.set_title(f"{examples[b]}", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
axes[0].set_ylabel("character being predicted")
fig.suptitle("cross-attention of the last decoder layer (mean over heads)")
print("\n".join(f"{n}: {s} -> {t}" for n, (s, t) in zip(examples, pairs)))
fig.tight_layout()
plt.show()
for b in range(len(examples)):   # each query's weights: a distribution over the real source words only
    real = ex_is_token[b]
    assert torch.allclose(maps[:, b].sum(-1), torch.ones(()), atol=1e-5) and maps[:, b][..., ~real].abs().sum() < 1e-6

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Question answering, text-to-text
#
# T5 (Raffel et al., 2020) casts every task as **text in, text out**: one encoder–decoder, one loss
# (the cross-entropy of the target text), and the task named by a prefix of the input. Translation,
# classification, question answering and summarisation then need no task-specific heads: a new task
# is new training text. We train one model, from scratch, on three tasks at once
# (`fmcourse.data.text_tasks`):
#
# | prefix | input | target |
# |---|---|---|
# | `question:` | a question and a *context* of two facts about people | a word of the context |
# | `translate:` | an English number below 1,000 | its Chinese numerals |
# | `count:` | one to nine words | how many |
#
# This is **extractive question answering** in miniature: the answer is in the context, and the
# model must find which fact the question is about. 800 training and 200 test examples per task; no
# test input occurs in training. The source is split into words, the target into characters.

# %%
from fmcourse.data.pairs import PairVocab
from fmcourse.data.text_tasks import CITIES, PETS, TASKS, text_task_split

task_train, task_test = text_task_split(n_train=800, n_test=200, seed=0, translate_high=1000, n_facts=2)
task_vocab = PairVocab.build([(e.input, e.target) for e in task_train + task_test], source="words", target="chars")
for task in TASKS:
    example = next(e for e in task_train if e.task == task)
    print(f"{example.input!r:<100} -> {example.target!r}")
t_source, t_source_is_token = task_vocab.source_batch([e.input for e in task_train])
t_in, t_out = task_vocab.target_batch([e.target for e in task_train])
print(f"\n{len(task_train)} training examples, sources of up to {t_source.size(1)} words, {task_vocab}")
assert not {e.input for e in task_test} & {e.input for e in task_train}

env.seed_everything(1)
multitask = EncoderDecoder(EncoderDecoderConfig(vocab_size=task_vocab.vocab_size, context_length=24, n_layer=2,
                                                n_head=4, d_model=64))
multitask_batches = random_batches((t_source, t_source_is_token, t_in, t_out), 128, seed=1)
optimizer = torch.optim.AdamW(multitask.parameters(), lr=3e-3)     # one optimizer for both halves of training
multitask_history = fit(multitask, multitask_batches, seq2seq_loss, steps=200, optimizer=optimizer, lr=3e-3,
                        warmup_steps=50, min_lr_ratio=1.0, device=device)   # warm-up, then a constant rate

# %% [markdown] slideshow={"slide_type": "subslide"}
# Training continues in two more stages of 200 steps (cells stay short): the same optimizer, first at
# the same rate, then with the rate decaying along a cosine. `fit` continues the loss curve and marks
# where each stage starts.

# %%
multitask_history = fit(multitask, multitask_batches, seq2seq_loss, steps=200, optimizer=optimizer, lr=3e-3,
                        min_lr_ratio=1.0, device=device, history=multitask_history, stage="constant")

# %%
multitask_history = fit(multitask, multitask_batches, seq2seq_loss, steps=200, optimizer=optimizer, lr=3e-3,
                        device=device, history=multitask_history, stage="decay")
print(f"training loss {multitask_history.train_loss[0]:.2f} -> {multitask_history.train_loss[-1]:.3f} "
      f"in {multitask_history.seconds:.1f} s")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Exact match per task on the held-out examples, next to a baseline for each: for `question:`, a
# guess among the words of the context of the kind asked for (a city for "where", a pet for "what
# pet"), which needs no understanding of *who*; for `translate:`, the word-by-word dictionary; for
# `count:`, always answering the most common count of the training set.

# %%
e_source, e_is_token = task_vocab.source_batch([e.input for e in task_test])
answers = [task_vocab.decode_target(ids) for ids in decoding.translate(
    multitask, e_source, source_is_token=e_is_token, bos_id=task_vocab.bos_id, eos_id=task_vocab.eos_id,
    max_new_tokens=10)]


def candidates(example) -> list[str]:
    """The words of the context of the kind the question asks for (cities or pets)."""
    question, context = example.input.split(" context: ")
    kind = CITIES if "live" in question else PETS
    return [w for w in context.replace(".", "").split() if w in kind]


most_common_count = statistics.mode(e.target for e in task_train if e.task == "count")
baselines = {"question": lambda e: 1 / len(candidates(e)),                     # expected score of the guess
             "translate": lambda e: float(word_by_word(e.input.removeprefix("translate: ")) == e.target),
             "count": lambda e: float(e.target == most_common_count)}
per_task, per_task_baseline = {}, {}
for task in TASKS:
    rows = [k for k, e in enumerate(task_test) if e.task == task]
    per_task[task] = metrics.exact_match([answers[k] for k in rows], [task_test[k].target for k in rows])
    per_task_baseline[task] = statistics.mean(baselines[task](task_test[k]) for k in rows)

fig, ax = plt.subplots(figsize=(6.5, 3.4))
ax.bar([i - 0.2 for i in range(3)], [per_task[t] for t in TASKS], width=0.4, label="one text-to-text model")
ax.bar([i + 0.2 for i in range(3)], [per_task_baseline[t] for t in TASKS], width=0.4, color="lightgray",
       label="baseline")
for i, t in enumerate(TASKS):
    ax.text(i - 0.2, per_task[t] + 0.02, f"{per_task[t]:.0%}", ha="center", fontsize=9)
    ax.text(i + 0.2, per_task_baseline[t] + 0.02, f"{per_task_baseline[t]:.0%}", ha="center", fontsize=9)
ax.set_xticks(range(3), [f"{t}:" for t in TASKS])
ax.set_ylabel("exact match, 200 held-out examples")
ax.set_ylim(0, 1.12)
ax.legend(fontsize=8, loc="upper right")
plt.show()

BOUNDS = {"translate": 0.85, "count": 0.9, "question": 0.6}
for task in TASKS:
    print(f"{task + ':':<11} {per_task[task]:.1%}  (baseline {per_task_baseline[task]:.1%}, bound {BOUNDS[task]:.0%})")
    assert per_task[task] >= BOUNDS[task], task
assert per_task["translate"] > per_task_baseline["translate"] + 0.3 and per_task["count"] > per_task_baseline["count"] + 0.5

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Where it fails
#
# Sort the answers to `question:` by what went wrong. An answer can be right; a word of the right
# kind from the context, but about another person (the model found *what* is asked, not *whom* it
# is about); or anything else (a word of the wrong kind, or not in the context at all).

# %%
question_rows = [k for k, e in enumerate(task_test) if e.task == "question"]
kinds = {"right": [], "right kind, wrong person": [], "other": []}
for k in question_rows:
    example, answer = task_test[k], answers[k]
    kind = "right" if answer == example.target else "right kind, wrong person" if answer in candidates(example) else "other"
    kinds[kind].append(k)
for kind, rows in kinds.items():
    print(f"{kind:<25} {len(rows):>3} of {len(question_rows)}")
for k in kinds["right kind, wrong person"][:5]:
    print(f"  {task_test[k].input.removeprefix('question: ')}\n      answered {answers[k]!r}, right: {task_test[k].target!r}")
only_one = [k for k in question_rows if len(candidates(task_test[k])) == 1]
several = [k for k in question_rows if len(candidates(task_test[k])) > 1]
right_one = statistics.mean(answers[k] == task_test[k].target for k in only_one)
right_several = statistics.mean(answers[k] == task_test[k].target for k in several)
print(f"\nexact match when the context has one word of the asked kind: {right_one:.0%} ({len(only_one)} questions); "
      f"when it has several: {right_several:.0%} ({len(several)})")
asked_first = [k for k in several if task_test[k].input.split(" context: ")[1].split()[0]
               == task_test[k].input.split(" does ")[1].split()[0]]                # the asked person's fact comes first
asked_second = [k for k in several if k not in asked_first]
for name, rows in (("first", asked_first), ("second", asked_second)):
    print(f"  of those, the asked person's fact comes {name}: {statistics.mean(answers[k] == task_test[k].target for k in rows):.0%} "
          f"right ({len(rows)} questions)")
assert len(kinds["other"]) <= 0.05 * len(question_rows), "nearly every answer is a word of the right kind from the context"
assert right_one >= 0.9 and right_one > right_several, "one candidate of the right kind: easy; several: hard"

# %% [markdown] slideshow={"slide_type": "subslide"}
# The numbers say what the model learned. It always answers with a word from the context, and of the
# kind asked for: a city for "where", a pet for "what pet". When the context holds only one word of
# that kind, that is enough, and it is right nearly every time. When both facts are of the asked
# kind, it must also tell *whose* fact it is, matching the name in the question with the name in the
# context, and there it is not much better than a coin flip, whichever fact comes first. So its
# overall score sits close to the baseline that guesses among the words of the right kind: after 600
# steps the model has learned the form of an answer, not yet the reading. Matching a name in the
# question to the same name in the context is work for attention across two places of the input;
# more training, more data with two facts of the same kind, or a pretrained model are the usual cures.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - **Generation** is a choice of rule on the next-token distribution. Greedy decoding is the most
#   likely character by character and, from this GPT, falls into loops; temperature trades the
#   model's confidence in the text against variety; top-k and top-p cut off the unreliable tail,
#   top-p with a cut that adapts to how sure the model is at each position.
# - The **key/value cache** keeps the keys and values of earlier positions, so each new token costs
#   one position's work instead of the whole prefix's: the same tokens, and a step that stays cheap
#   as the text grows.
# - **Translation** with an encoder–decoder: the encoder reads the whole source, the decoder writes
#   the target and reads the source through cross-attention. Trained with teacher forcing, a small
#   one translates number words it never saw into Chinese numerals, reordering and applying the 零
#   and 十 rules, where a word-by-word dictionary almost always fails. Exact match and BLEU measure
#   it; BLEU gives partial credit.
# - **Text-to-text** (T5): one model, one loss, tasks named by a prefix. Here one small model learned
#   to translate and to count, and the *form* of an answer to a question, a word of the right kind
#   from the context; it did not yet learn *whose* fact to read, so with two candidates it is close
#   to a coin flip, and overall barely above a guess among the words of the right kind.
#
# Next, chapter 08 applies foundation models to vision.
#
# ## Exercises
#
# Each exercise has an automatic check: replace the `...` with your answer and run the cell. The
# check prints ✓, or what is wrong (the likely mistake, when it can tell) and a hint. The experiment
# asks you to predict first, then change something, run it and record what you measured.

# %%
from fmcourse.exercises import language as exercises

# 1. Code. The min-p filter, a relative of top-p: for one row of logits (V,), return the logits with
#    -inf at every token whose probability is below `ratio` times the probability of the most likely
#    token (ratio = 0.1: keep what is at least a tenth as likely as the favourite).
def my_min_p(logits, ratio):
    ...  # your code here


exercises.min_p_filter.check(my_min_p)

# %%
# 2. Code. One step of beam search. `scores` (K,) holds the total log-probability of each of K beams,
#    `log_probs` (K, V) the log-probabilities of every next token after each beam. Return the
#    beam_size best extensions as three tensors, best first: their new total scores, the beam each
#    extends, and the token it appends.
def my_beam_step(scores, log_probs, beam_size):
    ...  # your code here


exercises.beam_search_step.check(my_beam_step)

# %%
# 3. A number. By hand (or with a few lines of Python, but not with fmcourse.metrics): the BLEU score
#    with n-grams up to n = 2 (geometric mean of the clipped unigram and bigram precisions, times the
#    brevity penalty) of the candidate "the the cat on the mat" against the one reference
#    "the cat sat on the mat today". Give it as a fraction between 0 and 1.
my_bleu = ...

exercises.bleu_by_hand.check(my_bleu)

# %%
# 4. An experiment. The cell prints the average size of the nucleus (the number of characters top-p
#    keeps) over the positions of a passage, for the shipped GPT at temperature 1 and p = 0.5. Predict
#    first: at p = 0.9, is the average nucleus "smaller" or "larger" than top-k's fixed 5 characters?
#    Then set top_p = 0.9, run, and record the size it prints.
top_p = 0.5  # change me
passage_logits = exercises.nucleus_logits()                  # (T, V): the next-character logits at each position
sizes = torch.isfinite(decoding.filter_top_p(passage_logits, top_p)).sum(dim=-1).double()
print(f"top-p = {top_p:g}: the nucleus holds {sizes.mean():.4f} characters on average "
      f"(from {int(sizes.min())} to {int(sizes.max())})")

my_prediction = ...   # "smaller" or "larger", written down BEFORE running at p = 0.9
my_measurement = ...  # the average size printed at p = 0.9
exercises.nucleus_size_experiment.check(my_prediction, my_measurement)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button: click it only when you want to see them (or run
# `exercises.<name>.show_solution()` for one exercise).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.min_p_filter, exercises.beam_search_step, exercises.bleu_by_hand,
                      exercises.nucleus_size_experiment)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Further reading
#
# - A. Vaswani et al., "Attention is all you need", NeurIPS 2017: the Transformer, an encoder–decoder
#   with cross-attention, built for machine translation, with beam search and BLEU.
# - C. Raffel et al., "Exploring the limits of transfer learning with a unified text-to-text
#   Transformer" (T5), JMLR 2020: every task as text to text, named by a prefix.
# - A. Holtzman et al., "The curious case of neural text degeneration", ICLR 2020: why the most likely
#   text is dull and repetitive, and nucleus (top-p) sampling.
# - K. Papineni et al., "BLEU: a method for automatic evaluation of machine translation", ACL 2002:
#   clipped n-gram precision and the brevity penalty.
# - P. Rajpurkar et al., "SQuAD: 100,000+ questions for machine comprehension of text", EMNLP 2016:
#   extractive question answering and its exact-match score.
