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
# # 11 · Scale and efficiency
#
# **Seed section 1.2 研究现状 (模型压缩与加速), 4.4 常见问题解答, 8.2 未来发展趋势, 8.3 面临的挑战.**
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmcourse_unpublished/fmcourse/blob/v0.1.0/notebooks/11_scale_and_efficiency.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/fmcourse_unpublished/fmcourse/v0.1.0?urlpath=lab/tree/notebooks/11_scale_and_efficiency.ipynb)
#
# Foundation models grew from millions of parameters to hundreds of billions because the loss keeps
# falling, predictably, as the model, the data and the compute grow. This chapter measures that law
# on models small enough to train here, counts what a GPT-3-sized run would cost, trains one model on
# several processes with PyTorch's own distributed engine, and then goes the other way: it makes a
# trained model smaller and faster, and checks what each trick costs in loss.
#
# **In this notebook you will**
# - sweep GPT sizes and training lengths, fit power laws with an irreducible term, and find the
#   compute-optimal model size for a budget (the Chinchilla question at toy scale), with the fit's
#   uncertainty and the published exponents beside yours;
# - count training FLOPs as $6ND$, check it against a layer-by-layer count, measure this machine's
#   FLOP/s, and see what GPT-3 and its memory would take;
# - pretrain with `torchrun` and `DistributedDataParallel` on two processes and get the weights of
#   one process;
# - quantize a GPT to int8, prune it, distil it into a model 4× smaller and train it in bfloat16,
#   with size, speed and loss for every variant.
#
# **Time on a laptop CPU:** 51 s for the whole notebook.

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
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from safetensors.torch import load_file

import fmcourse
from fmcourse import compress, scaling, shipped
from fmcourse.data import causal_lm_batches, causal_lm_eval_batches, pydoc_text
from fmcourse.models import GPT, GPTConfig
from fmcourse.models.cost import forward_flops
from fmcourse.pretrain import Settings, load_shipped, prepare, pretrain, unigram_loss
from fmcourse.train import evaluate, fit, supervised

env.print_report()
device = env.get_device()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Scaling laws, measured
#
# Seed section 4.4 asks how large a model must be and how much compute it needs; section 8.2 notes
# that models keep growing. Kaplan et al. (2020) found that a language model's test loss falls as a
# **power law** in the number of parameters $N$ and of training tokens $D$, down to a floor $E$ that
# no model removes (the entropy of the text itself):
#
# $$L(N) = E + \frac{A}{N^{\alpha}}, \qquad L(N, D) = E + \frac{A}{N^{\alpha}} + \frac{B}{D^{\beta}}.$$
#
# The second form is Hoffmann et al.'s (2022, "Chinchilla"). Training costs about $C = 6ND$ FLOPs
# (section 2), so for a fixed budget $C$ a larger model sees fewer tokens. Minimising $L(N, C/6N)$ over
# $N$ gives the **compute-optimal** size, $N_{\text{opt}} \propto C^{a}$ with $a = \beta/(\alpha+\beta)$.
# Kaplan et al. found $a \approx 0.73$ (spend a growing budget mostly on size); Hoffmann et al., who
# decayed the learning rate to the end of every run, $a \approx 0.5$ (grow size and data alike, about
# 20 tokens per parameter), and trained Chinchilla, smaller than its rivals and better.
#
# Here: character-level GPTs of 5 sizes, from 3 thousand to 150 thousand non-embedding parameters
# ($N$ counts the Transformer blocks, not the embeddings, as Kaplan et al. do), each trained for 4
# lengths, every run with its own warm-up and cosine decay to its end. The sweep,
# `OMP_NUM_THREADS=1 python bench/scaling.py`, takes minutes; its results travel with the package.

# %%
sweep = json.loads(shipped.path("scaling_sweep.json").read_text(encoding="utf-8"))
runs, info = sweep["runs"], sweep["info"]
steps_list = sorted({r["steps"] for r in runs})
sizes = sorted({(r["n_layer"], r["d_model"]) for r in runs}, key=lambda s: s[1])
corpus = prepare(pydoc_text())  # chapter 04's split of Python's documentation: the sweep's text
unigram = unigram_loss(corpus.train, corpus.val, corpus.tokenizer.vocab_size)
print(f"{len(runs)} runs, {info['wall_seconds'] / 60:.1f} minutes with one thread ({info['date']}, torch {info['torch']})")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
for k, n in enumerate(steps_list):
    rows = sorted((r for r in runs if r["steps"] == n), key=lambda r: r["N"])
    ax1.plot([r["N"] for r in rows], [r["val_loss"] for r in rows], "o-", color=plt.cm.viridis(k / len(steps_list)),
             label=f"{n} steps ({rows[0]['D'] / 1e6:.1f} M tokens)")
for k, size in enumerate(sizes):
    rows = sorted((r for r in runs if (r["n_layer"], r["d_model"]) == size), key=lambda r: r["C"])
    ax2.plot([r["C"] for r in rows], [r["val_loss"] for r in rows], "o-", color=plt.cm.plasma(k / len(sizes)),
             label=f"N = {rows[0]['N']:,}")
edge = scaling.frontier(runs)
ax2.plot([r["C"] for r in edge], [r["val_loss"] for r in edge], "k--", lw=1, label="compute frontier")
for ax, xlabel in ((ax1, "non-embedding parameters N"), (ax2, "training compute C = 6ND (FLOPs)")):
    ax.axhline(unigram, color="grey", ls=":", label=f"unigram baseline {unigram:.2f}")
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="validation loss (nats/char)")
    ax.legend(fontsize=7)
ax1.set_title("loss against size, one line per training length")
ax2.set_title("loss against compute, one line per size")
plt.show()

longest = sorted((r for r in runs if r["steps"] == max(steps_list)), key=lambda r: r["N"])
assert all(r["val_loss"] < unigram for r in runs), "every run uses context: all beat the unigram model"
assert longest[-1]["val_loss"] < longest[0]["val_loss"] - 0.2, "at the longest training, size pays"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Fitting $L(N)$.** For a given floor $E$ the law is a straight line in log-log axes,
# $\log(L - E) = \log A - \alpha \log N$; `scaling.fit_power_law` solves that line exactly for every
# floor on a grid and keeps the best (least squares in $\log L$). How sure is the exponent? Refit
# on **bootstrap** resamplings of the five points: the spread of $\hat\alpha$ is the fit's uncertainty.
# Five points and three parameters leave little room, so expect a wide interval.

# %%
N_long = torch.tensor([r["N"] for r in longest], dtype=torch.float64)
L_long = torch.tensor([r["val_loss"] for r in longest], dtype=torch.float64)
law = scaling.fit_power_law(N_long, L_long)
boot = scaling.bootstrap(N_long, L_long, samples=200)
alphas = sorted(f.alpha for f in boot)
low, high = alphas[10], alphas[-11]  # the middle 90%
print(f"L(N) at {max(steps_list)} steps: E = {law.E:.3f}, A = {law.A:.3g}, alpha = {law.alpha:.3f} "
      f"(bootstrap 90% interval {low:.3f} to {high:.3f})")
for name, values in scaling.PUBLISHED.items():
    print(f"  {name}: alpha_N = {values['alpha_N']}")

grid = torch.logspace(math.log10(N_long.min()) - 0.2, math.log10(N_long.max()) + 0.5, 100, dtype=torch.float64)
fig, ax = plt.subplots(figsize=(7, 4))
curves = torch.stack([f(grid) for f in boot])
ax.fill_between(grid, curves.quantile(0.05, 0).numpy(), curves.quantile(0.95, 0).numpy(), color="C0", alpha=0.2,
                label="bootstrap 90% band")
ax.plot(grid, law(grid), color="C0", label=f"fit: {law.E:.2f} + {law.A:.3g} N^-{law.alpha:.2f}")
ax.plot(N_long, L_long, "ko", label=f"measured, {max(steps_list)} steps")
ax.axhline(law.E, color="C0", ls="--", lw=1, label=f"fitted floor E = {law.E:.2f}")
ax.axhline(unigram, color="grey", ls=":", label="unigram baseline")
ax.set(xscale="log", xlabel="non-embedding parameters N", ylabel="validation loss", title="a power law with a floor")
ax.legend(fontsize=8)
plt.show()

assert 0 < law.alpha < 2 and 0 < low <= law.alpha <= high, "the loss falls with size, as a power with a positive exponent"
assert 0 <= law.E < L_long.min(), "the floor lies below every measured loss"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The compute-optimal size.** At a fixed number of steps the larger models are further from
# convergence, so $L(N)$ alone mixes the two effects. The joint law $L(N, D)$, fitted to all the runs
# as Hoffmann et al. do (Huber loss on $\log L$, L-BFGS from a grid of starts), separates them, and
# its minimum along $C = 6ND$ is the best size for each budget. The frontier of the sweep (the runs
# that no cheaper run beats) is the measured answer to compare it with.

# %%
joint = scaling.fit_joint_law([r["N"] for r in runs], [r["D"] for r in runs], [r["val_loss"] for r in runs])
fitted = joint([r["N"] for r in runs], [r["D"] for r in runs])
measured = torch.tensor([r["val_loss"] for r in runs], dtype=torch.float64)
rms = ((fitted / measured - 1) ** 2).mean().sqrt().item()
print(f"L(N, D) = {joint.E:.3f} + {joint.A:.3g}/N^{joint.alpha:.3f} + {joint.B:.3g}/D^{joint.beta:.3f}  "
      f"(RMS error {100 * rms:.1f}%)")
print(f"compute-optimal N grows as C^{joint.optimal_N_exponent:.2f}; published: "
      + ", ".join(f"{k} {v['optimal_N_exponent']}" for k, v in scaling.PUBLISHED.items()))

budgets = torch.logspace(math.log10(min(r["C"] for r in runs)), math.log10(max(r["C"] for r in runs)) + 2, 30)
optimal = [joint.compute_optimal(c.item()) for c in budgets]
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(budgets, [n for n, _ in optimal], color="C3", label=f"fitted N_opt ∝ C^{joint.optimal_N_exponent:.2f}")
ax.plot([r["C"] for r in edge], [r["N"] for r in edge], "ks", label="sweep's frontier runs")
ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel="model size N",
       title="the best model size for a compute budget")
ax.legend(fontsize=8)
plt.show()
for c in (1e13, 1e15, 1e17):
    n, d = joint.compute_optimal(c)
    print(f"  C = {c:.0e} FLOPs: N ≈ {n:,.0f} parameters, D ≈ {d:,.0f} tokens ({d / n:.0f} tokens per parameter)")

assert rms < 0.05, "one law describes all the runs within a few percent"
assert 0 < joint.optimal_N_exponent < 1, "a bigger budget buys both a bigger model and more data"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Set beside the published exponents, the toy numbers differ, and should: a character-level model of
# one small corpus, a few thousand steps, one learning rate for every size (the default tuned for the
# middle size) and five sizes are not web text with BPE tokens over seven decades. What carries over is
# the *form*: a smooth power law down to a floor, and a compute-optimal size that grows with the
# budget at an exponent between 0 and 1. **A small rerun.** The two smallest sizes at the shortest
# length, trained live with one thread as the sweep was, give the sweep's numbers again (another CPU
# or torch version may shift the last digits).

# %%
threads = torch.get_num_threads()
torch.set_num_threads(1)  # as the sweep ran; tiny models gain nothing from more threads
rerun = scaling.sweep(pydoc_text(), sizes[:2], steps_list[:1], base=Settings(**info["settings"]))
torch.set_num_threads(threads)
for row in rerun:
    saved = next(r for r in runs if (r["n_layer"], r["d_model"], r["steps"]) == (row["n_layer"], row["d_model"],
                                                                                 row["steps"]))
    print(f"N = {row['N']:>6,}, {row['steps']} steps: live {row['val_loss']:.3f}, sweep {saved['val_loss']:.3f}")
    assert abs(row["val_loss"] - saved["val_loss"]) < 0.05, "the sweep's file is what the command computes"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Compute accounting
#
# **Where $6ND$ comes from.** A matrix product of $(m, k)$ by $(k, n)$ costs $2mkn$ FLOPs. In the forward
# pass each weight multiplies each token's activation once: about $2N$ FLOPs per token. The backward
# pass computes two products per weight (the gradient with respect to the input and to the weight):
# $4N$. Together $C \approx 6ND$. What it leaves out is the attention over the context (scores
# $QK^\top$ and mixing $AV$, $4 T d$ per token per layer forward) and the output head ($2dV$), which
# chapter 03's `forward_flops` counts layer by layer. So
#
# $$\frac{3 \cdot \text{forward FLOPs}}{6ND} \approx 1 + \frac{T}{6d} + \frac{V}{12 L d},$$
#
# close to 1 for large models, where $d$ is thousands, and far from it for the smallest ones here.

# %%
T, V = 64, corpus.tokenizer.vocab_size
print(f"{'layers':>6} {'width':>5} {'N':>8} {'3 x forward':>12} {'6ND':>10} {'ratio':>6} {'formula':>7}")
ratios = []
for n_layer, d_model in sizes:
    config = GPTConfig(vocab_size=V, context_length=T, n_layer=n_layer, n_head=4, d_model=d_model)
    counted = scaling.measured_training_flops(config, batch_size=1, length=T)  # one sequence of T tokens
    six_nd = scaling.training_flops(scaling.non_embedding_parameters(config), T)
    formula = 1 + T / (6 * d_model) + V / (12 * n_layer * d_model)
    ratios.append((d_model, counted / six_nd, formula))
    print(f"{n_layer:>6} {d_model:>5} {scaling.non_embedding_parameters(config):>8,} {counted:>12.3g} {six_nd:>10.3g} "
          f"{counted / six_nd:>6.2f} {formula:>7.2f}")

assert all(abs(r - f) / f < 0.1 for _, r, f in ratios), "the two counts differ by the attention and the head"
assert abs(ratios[-1][1] - 1) < 0.2, "for the largest model 6ND is within 20% of the full count"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **This machine's FLOP/s, and GPT-3.** Time a few training steps of the shipped GPT's size and divide
# the counted FLOPs by the seconds. GPT-3 (Brown et al. 2020) has $N = 175$ billion parameters and
# was trained on $D = 300$ billion tokens. A modern data-centre GPU (an NVIDIA H100 SXM) is rated at
# about $989 \times 10^{12}$ dense bf16 FLOP/s; large runs reach some 40% of that (the *model FLOPs
# utilisation*, MFU), the rest lost to memory traffic, communication and pipeline bubbles.

# %%
config = GPTConfig(vocab_size=V, context_length=T, n_layer=3, n_head=4, d_model=96)  # the shipped GPT's size
env.seed_everything(0)
model = GPT(config).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randint(0, V, (32, T), device=device)


def train_step():
    loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), x.flatten())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


train_step()
timings = []
for _ in range(3):
    start = time.perf_counter()
    for _ in range(3):
        train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    timings.append((time.perf_counter() - start) / 3)
flops_per_second = scaling.measured_training_flops(config, 32, T) / min(timings)
print(f"this machine ({device.type}, {torch.get_num_threads()} threads): {flops_per_second / 1e9:.1f} GFLOP/s "
      f"training a GPT of {sum(p.numel() for p in model.parameters()):,} parameters")

gpt3 = scaling.training_flops(175e9, 300e9)
h100, mfu = 989e12, 0.4
year = 365.25 * 24 * 3600
print(f"GPT-3: 6 x 175e9 x 300e9 = {gpt3:.3g} FLOPs")
print(f"  here: {gpt3 / flops_per_second / year:,.0f} years")
print(f"  one H100 at {mfu:.0%} MFU: {gpt3 / (h100 * mfu) / year:.0f} years; "
      f"1,024 of them: {gpt3 / (1024 * h100 * mfu) / 86400:.0f} days")
assert abs(gpt3 / 3.14e23 - 1) < 0.01, "the GPT-3 paper gives 3.14e23 training FLOPs for its 175B model"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Memory.** Training with Adam in mixed precision keeps, per parameter, the bf16 weights (2 bytes),
# their bf16 gradients (2) and the optimizer state: an fp32 master copy of the weights and Adam's two
# moments (4 + 4 + 4): **16 bytes a parameter**, before the activations. Plain data parallelism keeps
# all of it on every GPU. **ZeRO** (Rajbhandari et al. 2020) shards it over the $W$ data-parallel
# processes instead: stage 1 the optimizer state, stage 2 also the gradients, stage 3 also the
# weights, each process gathering the slices it needs just in time; PyTorch's **FSDP** is stage 3.

# %%
world = 64
stages = [scaling.training_memory(175e9, world=world, stage=s) for s in range(4)]
fig, ax = plt.subplots(figsize=(7, 3.5))
bottom = [0.0] * 4
for k, part in enumerate(stages[0]):
    values = [stage[part] / 1e9 for stage in stages]
    ax.bar([f"stage {s}" for s in range(4)], values, bottom=bottom, color=f"C{k}", label=part)
    bottom = [b + v for b, v in zip(bottom, values)]
ax.axhline(80, color="k", ls="--", lw=1, label="one 80 GB GPU")
ax.set(yscale="log", ylabel="GB per GPU", title=f"GPT-3's training state on {world} GPUs, ZeRO stages 0-3")
ax.legend(fontsize=8)
plt.show()
for s, stage in enumerate(stages):
    print(f"stage {s}: {sum(stage.values()) / 1e9:,.0f} GB per GPU")
assert sum(stages[0].values()) == 16 * 175e9 and sum(stages[3].values()) == 16 * 175e9 / world

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Distributed training with `torchrun` and DDP
#
# Seed section 8.3 names the limit of computing resources: a foundation model trains on clusters.
# The simplest way to use many devices is **data parallelism**: every process holds the whole model,
# takes its own share of each batch, computes its gradients, and then all processes **all-reduce**
# them (every process ends with the average), so every copy takes the same optimizer step. With
# equal shares of $B/W$ rows, the average of the per-process mean losses is the mean loss of the whole
# batch, so $W$ processes take exactly the step of one process with $B$ rows.
#
# PyTorch does this with its own engine: `torchrun` starts the processes and tells each its `RANK`
# and the `WORLD_SIZE`; `torch.distributed` connects them (the NCCL back end on GPUs, gloo on CPUs);
# `DistributedDataParallel` all-reduces the gradients during the backward pass, bucket by bucket,
# overlapping the communication with the computation. The course's pretraining command uses it as
# it is, with `fmcourse.distributed` giving each process its rows of each batch, and only rank 0
# logging and writing files:
#
# ```bash
# python -m fmcourse.pretrain --pydoc --out runs/one                                       # one process
# torchrun --standalone --nproc_per_node 2 -m fmcourse.pretrain --pydoc --out runs/two     # two, one machine
# torchrun --nnodes 4 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint host0:29500 \
#     -m fmcourse.pretrain --pydoc --batch-size 256 --out runs/many                        # 32 GPUs, 4 machines
# ```
#
# Below, the launcher runs as a subprocess with two CPU processes on a slice of the text, and the same
# settings train once more here in one process.

# %%
workdir = Path(tempfile.mkdtemp(prefix="ddp_"))
(workdir / "text.txt").write_text(pydoc_text()[:60_000], encoding="utf-8")
small = dict(steps=20, n_layer=1, n_head=2, d_model=32, context_length=32, batch_size=8, warmup_steps=2, evaluations=2)
flags = [f"--{k.replace('_', '-')}={v}" for k, v in small.items()]
child_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(fmcourse.__file__).parents[1])}
launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--log-dir",
          str(workdir / "logs"), "--redirects", "3", "-m", "fmcourse.pretrain", "--text", str(workdir / "text.txt"),
          "--out", str(workdir / "two"), "--device=cpu", "--samples=0", *flags]
print("$ torchrun --standalone --nproc_per_node=2 -m fmcourse.pretrain --text text.txt --out two", " ".join(flags))
done = subprocess.run(launch, env=child_env, capture_output=True, text=True, timeout=300)
assert done.returncode == 0, done.stderr[-3000:]
logs = {p.parent.name: p.read_text() for p in (workdir / "logs").rglob("stdout.log")}
print(f"rank 0 printed:\n{logs['0']}")
print(f"rank 1 printed {len(logs['1'])} characters; the output folder holds {sorted(p.name for p in (workdir / 'two').iterdir())}")

torch.set_num_threads(1)  # as each of the two processes ran
one = pretrain((workdir / "text.txt").read_text(encoding="utf-8"), Settings(**small), device="cpu", plot=False,
               progress=False)
torch.set_num_threads(threads)
two = load_file(workdir / "two" / "model.safetensors")
weights = one.model.state_dict()  # the file stores the tied head once, as the token embedding
difference = max((tensor - weights[name].cpu()).abs().max().item() for name, tensor in two.items())
env.seed_everything(0)
initial = GPT(one.model.config).state_dict()
moved = max((tensor - initial[name]).abs().max().item() for name, tensor in two.items())
print(f"largest difference between the weights of 2 processes and of 1: {difference:.1e} "
      f"(training moved them by up to {moved:.2f})")
assert difference < 1e-4 < moved, "two processes with half the batch each take the steps of one with the whole batch"
assert logs["1"] == "" and "validation loss" in logs["0"], "only rank 0 logs"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **When one model does not fit on one device.** Data parallelism copies the model; ZeRO/FSDP
# shards its training state but still computes every layer on every device. Two more ways split the
# computation itself, and the largest runs combine all three ("3-D parallelism"):
#
# - **Tensor parallelism** (Megatron-LM, Shoeybi et al. 2019) splits each weight matrix. The MLP's
#   first matrix is cut by columns and the second by rows, so each device computes its slice of the
#   hidden layer and one all-reduce sums the partial outputs; attention is split by heads. It needs
#   fast links (inside one machine), since it communicates in every layer.
# - **Pipeline parallelism** (GPipe, Huang et al. 2019) gives each device a run of consecutive layers
#   and passes activations along. The batch is cut into *micro-batches* so that the stages work at
#   the same time; the idle start and end of the pipeline is the *bubble*, a fraction of about
#   $(S-1)/(M+S-1)$ for $S$ stages and $M$ micro-batches.
#
# PyTorch ships both as tools (`torch.distributed.tensor.parallel`, `torch.distributed.pipelining`);
# the diagram shows what each device holds.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
colors = ["C0", "C1", "C2", "C3"]
ax = axes[0]
for device_id in range(2):
    for layer in range(4):
        ax.add_patch(plt.Rectangle((device_id * 2.2, layer), 1.8, 0.8, color=colors[layer], alpha=0.7))
    ax.text(device_id * 2.2 + 0.9, -0.6, f"device {device_id}\nbatch rows {device_id}/2", ha="center", fontsize=8)
ax.annotate("", (2.2, 4.3), (1.8, 4.3), arrowprops=dict(arrowstyle="<->"))
ax.text(2.0, 4.5, "all-reduce gradients", ha="center", fontsize=8)
ax.set_title("data parallel: whole model each")
ax = axes[1]
for device_id in range(2):
    for layer in range(4):
        ax.add_patch(plt.Rectangle((device_id * 1.0, layer), 0.9, 0.8, color=colors[layer], alpha=0.4 + 0.3 * device_id))
    ax.text(device_id * 1.0 + 0.45, -0.6, f"device {device_id}\nhalf of\neach matrix", ha="center", fontsize=8)
ax.text(1.0, 4.5, "all-reduce inside every layer", ha="center", fontsize=8)
ax.set_title("tensor parallel: every layer split")
ax = axes[2]
for device_id in range(2):
    for layer in range(2):
        ax.add_patch(plt.Rectangle((device_id * 2.2, 2 * device_id + layer), 1.8, 0.8, color=colors[2 * device_id + layer],
                                   alpha=0.7))
    ax.text(device_id * 2.2 + 0.9, -0.6, f"device {device_id}\nlayers {2 * device_id}-{2 * device_id + 1}", ha="center",
            fontsize=8)
ax.annotate("", (2.2, 2.4), (1.8, 1.4), arrowprops=dict(arrowstyle="->"))
ax.text(2.0, 4.5, "activations flow on", ha="center", fontsize=8)
ax.set_title("pipeline parallel: layers split")
for ax in axes:
    ax.set(xlim=(-0.3, 4.3), ylim=(-1.3, 5))
    ax.axis("off")
plt.show()

micro, stages_count = 8, 4
bubble = (stages_count - 1) / (micro + stages_count - 1)
print(f"pipeline of {stages_count} stages, {micro} micro-batches: {bubble:.0%} of the time idle")
assert abs(bubble - 3 / 11) < 1e-12

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Compression and acceleration
#
# Seed section 1.2 lists model compression and acceleration as a research line of its own: a trained
# model is served millions of times, so every byte and millisecond saved is saved again at each call.
# Four standard tools, each applied to chapter 04's shipped GPT (3 layers, width 96) and measured on
# the same held-out windows:
#
# | tool | what changes | how |
# |---|---|---|
# | **int8 quantization** | weights stored in 8 bits instead of 32 | `torch.ao.quantization.quantize_dynamic` |
# | **magnitude pruning** | the smallest weights set to zero | `torch.nn.utils.prune`, global L1 |
# | **distillation** | a smaller model learns from the larger one's outputs | a loss on the teacher's distribution |
# | **bf16** | products computed in bfloat16 | `torch.autocast` |
#
# **Quantization.** Dynamic quantization stores each `nn.Linear` weight matrix $W$ as int8 values $q$
# with one scale $s$, $W \approx s\,q$, $q = \text{round}(W/s) \in [-128, 127]$; at each call the
# activations are quantized on the fly and the product runs in integers. The embeddings and
# LayerNorms stay float32.

# %%
teacher, tokenizer = load_shipped("gpt_pydoc_char")
assert tokenizer.chars == corpus.tokenizer.chars
windows = causal_lm_eval_batches(corpus.val, 32, T, max_batches=32)
report = windows[1::2]  # the half of the validation windows that the distillation comparison reports on
probe = report[0][0]  # one batch of 32 windows for timing


def measure(model, name, loss_fn=supervised(), call=None):
    """Size of the saved weights, seconds per forward pass on 32 x 64 characters, validation loss."""
    call = call or (lambda: model(probe))
    return {"variant": name, "bytes": compress.model_bytes(model), "ms": 1000 * compress.seconds_per_call(call),
            "loss": evaluate(model, report, loss_fn, device=torch.device("cpu"))}


teacher_int8 = compress.quantize(teacher)
variants = [measure(teacher, "GPT, float32"), measure(teacher_int8, "GPT, int8")]
for v in variants:
    print(f"{v['variant']:<14} {v['bytes'] / 1e6:.2f} MB  {v['ms']:6.1f} ms per batch  loss {v['loss']:.4f}")
ratio = variants[0]["bytes"] / variants[1]["bytes"]
print(f"int8: {ratio:.1f}x smaller, {variants[0]['ms'] / variants[1]['ms']:.2f}x the speed, "
      f"loss {variants[1]['loss'] - variants[0]['loss']:+.4f}")
assert ratio > 2, "int8 weights make the file more than 2x smaller"
assert abs(variants[1]["loss"] - variants[0]["loss"]) < 0.02, "and cost less than 0.02 nats of loss"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Pruning.** Set the fraction $s$ of the Linear weights with the smallest magnitude to zero (over
# all layers together) and measure the loss again, without retraining. (The output head shares its
# matrix with the token embedding and is left whole.) A zero takes as much room as any other number
# in a dense tensor: the file shrinks only with a sparse format, and the speed grows only with
# kernels or hardware that skip zeros, so pruning here is measured by its loss.

# %%
sparsities = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
pruned_loss = [evaluate(compress.prune(teacher, s), report) for s in sparsities]
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(sparsities, pruned_loss, "o-", label="pruned GPT, no retraining")
ax.axhline(pruned_loss[0], color="C0", ls="--", lw=1, label="unpruned")
ax.axhline(unigram, color="grey", ls=":", label="unigram baseline")
ax.set(xlabel="sparsity (fraction of Linear weights set to 0)", ylabel="validation loss",
       title="magnitude pruning: loss against sparsity")
ax.legend(fontsize=8)
plt.show()
for s, loss in zip(sparsities, pruned_loss):
    print(f"sparsity {s:.0%}: loss {loss:.3f}")
assert pruned_loss[2] - pruned_loss[0] < 0.02, "a fifth of the weights can go at almost no cost"
assert all(b > a - 0.01 for a, b in zip(pruned_loss, pruned_loss[1:])), "the loss grows with the sparsity"
assert pruned_loss[-1] > pruned_loss[0] + 0.5, "and at 90% the model has lost much of what it learned"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Distillation** (Hinton et al. 2015). A small *student* is trained to match the *teacher's*
# distribution over the next character instead of the one character that came next:
#
# $$\mathcal{L}_{\text{KD}} = T^2 \cdot \Big(-\sum_c p^{\text{teacher}}_c(T) \log p^{\text{student}}_c(T)\Big),
# \qquad p(T) = \operatorname{softmax}(z / T).$$
#
# The teacher's distribution says, at every position, how plausible *every* character is: more
# information per example than a one-hot label. With $T = 1$ and a one-hot teacher it is the ordinary
# cross-entropy (`tests/test_objectives.py` checks it). The student here has 2 layers of width 56,
# 4.1x fewer parameters than the teacher, and trains for 300 steps either from the labels (*scratch*)
# or from the teacher (*distilled*, $T = 1$, no weight on the labels), each at the learning rate of
# a common grid that its validation loss chose, with five seeds, in
# `OMP_NUM_THREADS=1 python bench/compression.py`.

# %%
distilled_runs = json.loads(shipped.path("distillation.json").read_text(encoding="utf-8"))
chosen = distilled_runs["chosen_lr"]
fig, ax = plt.subplots(figsize=(7, 3.5))
summary = {}
for k, method in enumerate(("scratch", "distilled")):
    for j, lr in enumerate(distilled_runs["info"]["lrs"]):
        losses = [r["report_loss"] for r in distilled_runs["runs"] if r["method"] == method and r["lr"] == lr]
        ax.plot([j + 0.15 * (2 * k - 1)] * len(losses), losses, "o", color=f"C{k}", ms=5,
                label=method if j == 0 else None, alpha=1.0 if lr == chosen[method] else 0.35)
        if lr == chosen[method]:
            summary[method] = losses
ax.set_xticks(range(len(distilled_runs["info"]["lrs"])), [f"lr {lr:g}" for lr in distilled_runs["info"]["lrs"]])
ax.axhline(distilled_runs["info"]["teacher_report_loss"], color="k", ls="--", lw=1, label="teacher")
ax.set(ylabel="validation loss (report half)", title="student: distilled or from scratch, each seed a dot")
ax.legend(fontsize=8)
plt.show()
for method, losses in summary.items():
    print(f"{method:<9} at lr {chosen[method]:g}: {statistics.mean(losses):.3f} (seeds: {', '.join(f'{v:.3f}' for v in losses)})")
assert max(summary["distilled"]) < min(summary["scratch"]), "every distilled seed beats every scratch seed"

# %% [markdown] slideshow={"slide_type": "subslide"}
# One seed of each, live, at the chosen learning rates (the distilled run also pays for a teacher
# forward pass at each step, so it costs more per step).

# %%
student_config = GPTConfig(vocab_size=V, context_length=T, **distilled_runs["info"]["student"])
settings = distilled_runs["info"]
students = {}


def train_student(method):
    """Seed 0 of ``method`` at its chosen learning rate, with one thread as the comparison ran."""
    torch.set_num_threads(1)
    env.seed_everything(0)
    student = GPT(student_config)
    loss_fn = compress.distillation(teacher, settings["temperature"], settings["alpha"]) if method == "distilled" \
        else supervised()
    batches = causal_lm_batches(corpus.train, settings["batch_size"], T, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    fit(student, batches, loss_fn, steps=settings["steps"], lr=chosen[method], warmup_steps=settings["steps"] // 10,
        plot=False, progress=False, device="cpu")
    torch.set_num_threads(threads)
    students[method] = (student, time.perf_counter() - start)
    saved = next(r["report_loss"] for r in distilled_runs["runs"]
                 if (r["method"], r["lr"], r["seed"]) == (method, chosen[method], 0))
    live = evaluate(student, report)
    print(f"{method:<9}: {live:.3f} live, {saved:.3f} in the file ({students[method][1]:.1f} s)")
    return live


scratch_loss = train_student("scratch")
assert abs(scratch_loss - next(r["report_loss"] for r in distilled_runs["runs"] if
                               (r["method"], r["lr"], r["seed"]) == ("scratch", chosen["scratch"], 0))) < 0.05

# %%
distilled_loss = train_student("distilled")
print(f"teacher {sum(p.numel() for p in teacher.parameters()):,} parameters, student "
      f"{sum(p.numel() for p in students['distilled'][0].parameters()):,}")
assert distilled_loss < scratch_loss, "the distilled student beats the same student trained from scratch for the same steps"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **bfloat16.** bf16 keeps float32's 8 exponent bits (the same range) and only 7 mantissa bits
# (about 3 significant digits). Under `torch.autocast` the matrix products run in bf16 while the
# weights, the optimizer and the loss stay float32 ("mixed precision"); on GPUs with tensor cores this
# doubles the FLOP/s or more, and halves the memory of the activations. Whether a CPU gains depends on
# its instructions (AVX-512 BF16, AMX): this one is measured below. The same student trains from the
# same start in both precisions.

# %%
curves = {}
for precision, loss_fn in (("float32", supervised()), ("bf16 autocast", compress.bf16(supervised()))):
    env.seed_everything(0)
    student = GPT(student_config)
    batches = causal_lm_batches(corpus.train, 32, T, generator=torch.Generator().manual_seed(0))
    history = fit(student, batches, loss_fn, steps=80, lr=chosen["scratch"], warmup_steps=8, plot=False,
                  progress=False, device="cpu")
    curves[precision] = (history, evaluate(student, report))
fig, ax = plt.subplots(figsize=(7, 3.5))
for precision, (history, final) in curves.items():
    ax.plot(history.steps, history.smoothed_train_loss(), label=f"{precision}: {history.seconds / len(history.steps) * 1000:.0f} "
                                                                 f"ms/step, validation {final:.3f}")
ax.set(xlabel="step", ylabel="training loss (smoothed)", title="the same run in float32 and under bf16 autocast")
ax.legend(fontsize=8)
plt.show()
speed = curves["float32"][0].seconds / curves["bf16 autocast"][0].seconds
print(f"bf16 autocast runs at {speed:.2f}x the speed of float32 on this {device.type}")
assert abs(curves["float32"][1] - curves["bf16 autocast"][1]) < 0.05, "bf16 training follows the float32 curve"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Every variant side by side.** Size of the saved weights, time of one forward pass on 32 windows
# of 64 characters (all timed in this one cell, the fastest of five calls each), and validation loss
# (the same report windows for all).

# %%
with torch.autocast("cpu", dtype=torch.bfloat16):
    teacher_bf16 = measure(teacher, "GPT, bf16 autocast")
variants = [
    measure(teacher, "GPT, float32"), measure(teacher_int8, "GPT, int8"), teacher_bf16,
    {**measure(compress.prune(teacher, 0.5), "GPT, 50% pruned"), "bytes": variants[0]["bytes"]},
    measure(students["scratch"][0], "student, scratch"),
    measure(students["distilled"][0], "student, distilled"),
]
table = "| variant | size (MB) | ms per batch | validation loss |\n|---|---:|---:|---:|\n" + "\n".join(
    f"| {v['variant']} | {v['bytes'] / 1e6:.2f} | {v['ms']:.1f} | {v['loss']:.3f} |" for v in variants)
display(Markdown(table))
fig, ax = plt.subplots(figsize=(7, 4))
for k, v in enumerate(variants):
    ax.scatter(v["bytes"] / 1e6, v["loss"], s=30 + 8 * v["ms"], color=f"C{k}", label=f"{v['variant']} ({v['ms']:.0f} ms)")
ax.axhline(unigram, color="grey", ls=":", label="unigram baseline")
ax.set(xscale="log", xlabel="size of the weights (MB)", ylabel="validation loss",
       title="size, speed (marker area) and loss of every variant")
ax.legend(fontsize=7)
plt.show()
assert variants[1]["bytes"] < variants[0]["bytes"] / 2 and variants[5]["bytes"] < variants[0]["bytes"] / 3
assert variants[5]["loss"] < variants[4]["loss"]

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Multimodality at scale
#
# Seed section 8.2 expects models to grow further and to take in several modalities at once. The
# course has built the pieces at small scale: chapter 05 trains a CLIP-style model that puts images
# and captions in one embedding space with a contrastive loss, and chapter 08 recognises, detects and
# generates images from text. What changes at scale is mostly *how much*: CLIP learned from 400 million
# image–text pairs gathered from the web, and its zero-shot accuracy grows smoothly with the compute,
# as the language-model laws of section 1 do (Cherti et al. 2023 fitted such laws for CLIP); data
# quality and filtering matter as much as the count. Today's multimodal models mostly join a vision
# encoder to a language model (an image becomes a sequence of tokens the GPT reads), so everything in
# sections 1–4 applies to them: the compute is $6ND$ with images counted in tokens, the training runs
# data-, tensor- and pipeline-parallel, and the served models are quantized and distilled.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - The validation loss of the sweep falls as a power law in the model size down to a floor,
#   $L(N) = E + A N^{-\alpha}$; the joint law $L(N, D)$ describes all the runs within a few percent and
#   puts the compute-optimal size at $N_{\text{opt}} \propto C^{a}$ with $0 < a < 1$. The toy exponents
#   differ from the published ones; the form is the same.
# - Training costs about $6ND$ FLOPs; the layer-by-layer count adds the attention over the context and
#   the output head, which matter only for small models. GPT-3's $3.14 \times 10^{23}$ FLOPs would take
#   years on one GPU; its training state needs 16 bytes a parameter, which ZeRO/FSDP shards over the
#   data-parallel processes.
# - `torchrun` with `DistributedDataParallel` trains the course's GPT on several processes with the
#   same command, and two processes with half the batch each give the weights of one process.
#   Tensor and pipeline parallelism split the model itself.
# - int8 quantization shrinks the GPT's file by more than 2x at almost no loss; magnitude pruning
#   removes a fifth of the weights for free and then costs more and more; distillation gives a model
#   4x smaller a better start than its own labels; bf16 autocast follows the float32 curve.
#
# ## Exercises
#
# Each exercise has an automatic check: replace the `...` with your answer and run the cell. The
# check prints ✓, or what is wrong (the likely mistake, when it can tell) and a hint.

# %%
from fmcourse.exercises import scale as exercises

# 1. A number. How many FLOPs does it take to train a model of 1.3 billion parameters on 26 billion tokens?
my_flops = ...

exercises.training_flops.check(my_flops)

# %%
# 2. A formula. Given sizes N (1-D tensor), losses and the floor E, return the exponent alpha of
#    L = E + A N^-alpha as the least-squares fit of a straight line (a float).
def my_alpha(N, loss, floor):
    ...  # your code here


exercises.power_law_exponent.check(my_alpha)

# %%
# 3. All-reduce by hand. Two ranks each computed the gradients (a list of tensors: weight, bias) of
#    the mean loss over their half of a batch. Return the list of gradients that DDP gives every rank,
#    the same as one process would compute on the whole batch.
def my_all_reduce(grads_rank0, grads_rank1):
    ...  # your code here


exercises.all_reduce_by_hand.check(my_all_reduce)

# %%
# 4. An experiment. int8 takes 1 byte per weight where float32 takes 4. Predict first: is the shipped
#    GPT's quantized file "4x", "less than 4x" or "more than 4x" smaller? Then measure it with
#    compress.model_bytes on `teacher` and compress.quantize(teacher), and record the ratio.
my_prediction = ...  # "4x", "less than 4x" or "more than 4x", written down BEFORE measuring
my_measurement = ...  # model_bytes(teacher) / model_bytes(quantize(teacher))
exercises.quantization_experiment.check(my_prediction, my_measurement)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button.

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.training_flops, exercises.power_law_exponent, exercises.all_reduce_by_hand,
                      exercises.quantization_experiment)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Further reading
#
# - J. Kaplan et al., "Scaling laws for neural language models" (2020): the power laws in $N$, $D$ and
#   $C$, and $C = 6ND$.
# - J. Hoffmann et al., "Training compute-optimal large language models" (NeurIPS 2022): Chinchilla,
#   the joint law and its three ways of finding $N_{\text{opt}}$.
# - T. Brown et al., "Language models are few-shot learners" (NeurIPS 2020): GPT-3 and its compute.
# - S. Rajbhandari, J. Rasley, O. Ruwase, Y. He, "ZeRO: memory optimizations toward training trillion
#   parameter models" (SC 2020); Y. Zhao et al., "PyTorch FSDP" (VLDB 2023).
# - S. Li et al., "PyTorch Distributed: experiences on accelerating data parallel training" (VLDB
#   2020): how DDP buckets and overlaps its all-reduce.
# - M. Shoeybi et al., "Megatron-LM" (2019); Y. Huang et al., "GPipe" (NeurIPS 2019): tensor and
#   pipeline parallelism.
# - G. Hinton, O. Vinyals, J. Dean, "Distilling the knowledge in a neural network" (2015); V. Sanh et
#   al., "DistilBERT" (2019).
# - S. Han, J. Pool, J. Tran, W. Dally, "Learning both weights and connections for efficient neural
#   networks" (NeurIPS 2015): magnitude pruning; B. Jacob et al., "Quantization and training of neural
#   networks for efficient integer-arithmetic-only inference" (CVPR 2018).
# - P. Micikevicius et al., "Mixed precision training" (ICLR 2018).
# - M. Cherti et al., "Reproducible scaling laws for contrastive language-image learning" (CVPR 2023).
