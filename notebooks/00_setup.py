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
# # 00 · Setting up and finding your way
#
# **Seed section 5.1 开发环境搭建 (setting up the development environment).**
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmcourse_unpublished/fmcourse/blob/v0.1.0/notebooks/00_setup.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/fmcourse_unpublished/fmcourse/v0.1.0?urlpath=lab/tree/notebooks/00_setup.ipynb)
#
# This course teaches foundation models by building them: small but real models that you train on a
# laptop CPU in seconds, with code that runs unchanged on a GPU. Every chapter is a notebook like this
# one; the reusable code lives in a small companion package, `fmcourse`, that you can read in an
# afternoon.
#
# **In this notebook you will**
# - check that your environment has everything the course needs, and see what is missing if not;
# - find out which device (CPU, CUDA GPU or Apple MPS) your code runs on, and how to choose another;
# - run a first torch computation and check its gradient against calculus;
# - learn the tensor basics the course leans on: shapes, broadcasting, `dim`/`keepdim`, autograd;
# - learn how the course runs: JupyterLab, Binder, Colab, presenter mode, where data is cached.
#
# **Time on a laptop CPU:** 3 s for the whole notebook.

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

env.print_report()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. How the course runs
#
# | where | how | when to choose it |
# |---|---|---|
# | your machine | `make lab` in the course folder: it creates `.venv`, installs the tested versions and opens JupyterLab at `notebooks/` | the best experience; works offline |
# | conda | `conda env create -f environment.yml`, then `conda activate fmcourse` and `jupyter lab notebooks` | you already live in conda |
# | Binder | the Binder badge at the top of each chapter | nothing to install; a few minutes to start |
# | Colab | the Colab badge; the setup cell above installs `fmcourse` | a free GPU for the bigger settings |
#
# Each chapter is stored twice: `NN_name.py` (plain text, what we edit and review) and
# `NN_name.ipynb` (what you open). In JupyterLab, with the `jupytext` extension the course installs,
# saving either updates the other. Every notebook is run from top to bottom by the test suite on each
# change, so if a cell fails for you, that is a bug worth reporting.
#
# **Environment variables** the package reads, all optional:
#
# | variable | effect |
# |---|---|
# | `FMCOURSE_DEVICE` | `auto` (default: CUDA, then MPS, then CPU), `cpu`, `cuda` or `mps` |
# | `FMCOURSE_PRESENTER` | `1` turns on presenter mode in every chapter |
# | `FMCOURSE_CACHE` | where downloaded corpora are kept (default `~/.cache/fmcourse`) |

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Is everything installed?
#
# `env.check_environment()` compares what is installed with the version ranges the package declares,
# and returns one sentence per problem, each saying what to run. An empty list means all is well.

# %%
problems = env.check_environment()
for problem in problems:
    print("✗", problem)
print("✓ all course packages found" if not problems else f"{len(problems)} problem(s) above")
assert not problems, "fix the problems listed above, then restart the kernel"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Which device?
#
# Deep-learning code runs on a *device*: the CPU, an NVIDIA GPU (CUDA) or an Apple GPU (MPS).
# `env.get_device()` picks the best one available, and you can override it with `FMCOURSE_DEVICE`
# (before starting JupyterLab) or by passing a name. A name it does not know is refused with the list
# of choices, rather than silently falling back:

# %%
device = env.get_device()
print("computing on:", device)
try:
    env.get_device("tpu")
except ValueError as error:
    print("ValueError:", error)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Tensors in five minutes
#
# Every chapter computes with *tensors*: n-dimensional arrays of numbers, with a shape, a data type
# and a device. Four ideas carry most of the code in this course; each cell below shows one and checks
# it with an `assert` (a line that stops the notebook with an error if its condition is false).
#
# **Shapes.** A tensor's `shape` lists its sizes, outermost first. The course writes shapes in
# comments, like `(B, T, D)` for a batch of `B` sequences of `T` tokens with `D` features each.
# `view`/`reshape` regroup the same numbers into another shape, `transpose` swaps two dimensions,
# and `@` multiplies matrices, over any leading (batch) dimensions: `(B, T, D) @ (D, K) -> (B, T, K)`.

# %%
import torch

x = torch.arange(24.0)                 # (24,): 0, 1, ..., 23
grid = x.view(2, 3, 4)                 # (2, 3, 4): the same 24 numbers, grouped
print("shape", tuple(grid.shape), "dtype", grid.dtype, "device", grid.device)
print("grid[1, 2] =", grid[1, 2].tolist(), "  grid[:, 0, 0] =", grid[:, 0, 0].tolist())
W = torch.ones(4, 5)                   # (4, 5)
out = grid @ W                         # (2, 3, 4) @ (4, 5) -> (2, 3, 5): one product per leading index
assert grid.shape == (2, 3, 4) and grid[1, 2, 3] == 23, "row-major: the last index moves fastest"
assert grid.transpose(1, 2).shape == (2, 4, 3)
assert out.shape == (2, 3, 5) and torch.equal(out[1], grid[1] @ W)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Broadcasting.** An operation on two tensors of different shapes lines the shapes up *from the
# right*; a dimension of size 1 (or a missing one) is stretched to match the other. So a `(3, 4)`
# matrix plus a `(4,)` row adds the row to every row, and a `(3, 1)` column to every column. It is
# how a bias is added to a batch, and also a classic trap: `(N, 1) - (N,)` gives an `(N, N)` table,
# not `N` differences (chapter 02 meets it in a loss).

# %%
A = torch.arange(12.0).view(3, 4)          # (3, 4)
row = torch.tensor([100.0, 200, 300, 400]) # (4,)   -> stretched over the 3 rows
column = torch.tensor([[10.0], [20], [30]]) # (3, 1) -> stretched over the 4 columns
print(A + row)
print(A + column)
predictions, targets = torch.zeros(5, 1), torch.ones(5)
print("(5, 1) - (5,) has shape", tuple((predictions - targets).shape), "— not (5,)")
assert torch.equal(A + row, A + row.expand(3, 4)) and torch.equal((A + column)[:, 0], A[:, 0] + column[:, 0])
assert (predictions - targets).shape == (5, 5) and (predictions.squeeze(1) - targets).shape == (5,)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **`dim` and `keepdim`.** A reduction (`sum`, `mean`, `max`, `softmax`, ...) along `dim=d` works
# across dimension `d` and removes it: `(3, 4).sum(dim=1)` is `(3,)`, one number per row. With
# `keepdim=True` the dimension stays with size 1, `(3, 1)`, so the result broadcasts back against the
# original: dividing each row by its own sum, or subtracting each row's maximum, as a stable
# softmax does (chapter 02). `dim=-1` means the last dimension, where the course keeps features and
# classes.

# %%
scores = torch.tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0], [0.0, 10.0, 0.0, 0.0]])  # (3, 4)
print("sum(dim=1):", tuple(scores.sum(dim=1).shape), " sum(dim=1, keepdim=True):",
      tuple(scores.sum(dim=1, keepdim=True).shape), " sum(dim=0):", tuple(scores.sum(dim=0).shape))
rows_sum_to_one = scores / scores.sum(dim=-1, keepdim=True)     # (3, 4) / (3, 1): each row by its sum
shifted = scores - scores.max(dim=-1, keepdim=True).values      # each row's largest entry becomes 0
assert torch.allclose(rows_sum_to_one.sum(dim=-1), torch.ones(3))
assert torch.equal(shifted.max(dim=-1).values, torch.zeros(3))
assert torch.allclose(shifted.softmax(dim=-1), scores.softmax(dim=-1)), "softmax ignores a shift per row"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Autograd.** A tensor created with `requires_grad=True` records the operations applied to it.
# `loss.backward()` then computes $\partial\,\mathrm{loss}/\partial w$ for every such tensor and
# stores it in `w.grad`: this is how every model in the course is trained (chapter 02 derives it
# by hand). Two details: gradients *add up* in `.grad` across calls (training loops reset them with
# `zero_grad()`), and inside `torch.no_grad()` nothing is recorded (for evaluation).

# %%
w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
inputs = torch.tensor([0.5, 1.0, 2.0])
loss = ((w * inputs).sum() - 1.0) ** 2          # (w·x - 1)²
loss.backward()
by_hand = 2 * ((w * inputs).sum() - 1.0) * inputs   # d/dw (w·x - 1)² = 2 (w·x - 1) x
print("w.grad =", w.grad.tolist(), "  by hand:", by_hand.tolist())
assert torch.allclose(w.grad, by_hand.detach())

loss = ((w * inputs).sum() - 1.0) ** 2
loss.backward()                                  # a second backward adds to .grad
assert torch.allclose(w.grad, 2 * by_hand.detach()), "gradients accumulate until zeroed"
w.grad = None
with torch.no_grad():
    evaluated = (w * inputs).sum()
assert not evaluated.requires_grad, "no_grad records nothing"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. A first computation on your device
#
# The same ideas on the device chosen above, on a whole grid at once: we evaluate
# $f(x) = \sin(x)\,x^2$ at 200 points, ask autograd for $f'(x)$, and compare with the derivative
# from calculus,
# $f'(x) = \cos(x)\,x^2 + 2x\sin(x)$.

# %%
import matplotlib.pyplot as plt

env.seed_everything(0)
x = torch.linspace(-4, 4, 200, device=device, requires_grad=True)
f = torch.sin(x) * x**2
f.sum().backward()  # d(sum f)/dx_i = f'(x_i), since each f_i depends on x_i alone

by_hand = torch.cos(x) * x**2 + 2 * x * torch.sin(x)
max_error = (x.grad - by_hand).abs().max().item()
print(f"largest difference between autograd and calculus: {max_error:.1e}")

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(x.detach().cpu(), f.detach().cpu(), label="$f(x)=\\sin(x)\\,x^2$")
ax.plot(x.detach().cpu(), x.grad.cpu(), label="$f'(x)$ from autograd")
ax.plot(x.detach().cpu()[::12], by_hand.detach().cpu()[::12], "o", label="$f'(x)$ by hand")
ax.axhline(0, color="grey", lw=0.5)
ax.legend()
ax.set_xlabel("x")
plt.show()
assert max_error < 1e-4, "autograd and the hand-derived derivative should agree"

# %% [markdown] slideshow={"slide_type": "subslide"}
# How fast is this device? A matrix product of two $n \times n$ matrices costs about $2n^3$
# floating-point operations (FLOPs). Timing one tells you roughly how many the device does per
# second, the number that decides how big a model you can train in a minute.

# %%
import time

n = 512
a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
a @ b  # warm-up
start = time.perf_counter()
repeats = 20
for _ in range(repeats):
    c = a @ b
if device.type == "cuda":
    torch.cuda.synchronize()
seconds = (time.perf_counter() - start) / repeats
print(f"{n}×{n} matmul: {seconds * 1e3:.2f} ms ≈ {2 * n**3 / seconds / 1e9:.1f} GFLOP/s on {device}")
assert torch.allclose(c.cpu(), a.cpu() @ b.cpu(), atol=1e-3), "device result differs from the CPU"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Presenter mode
#
# Teaching from a projector? `env.presenter_mode()` makes every later plot use large fonts and thick
# lines; `env.presenter_mode(False)` switches back. Setting `FMCOURSE_PRESENTER=1` turns it on in
# every chapter at import.

# %%
import matplotlib as mpl


def small_plot(title):
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.plot([0, 1, 2], [0, 1, 4], label="$y = x^2$")
    ax.set_title(title)
    ax.legend()
    plt.show()


small_plot("normal")
env.presenter_mode(True)
small_plot("presenter mode")
env.presenter_mode(False)
assert mpl.rcParams["font.size"] == mpl.rcParamsDefault["font.size"], "presenter mode is off again"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Data and reproducibility
#
# The course never *needs* the internet. Most chapters use synthetic worlds that `fmcourse`
# generates from a seed (so the best possible answer is known), or data that ships with a package
# (scikit-learn's handwritten digits, Python's own documentation). Where a chapter offers a real
# download, it is checked against a SHA-256 hash and cached here:

# %%
print("download cache:", env.cache_dir())

# %% [markdown] slideshow={"slide_type": "subslide"}
# Every chapter starts with `env.seed_everything(seed)`, which seeds Python, NumPy and torch, so two
# runs give the same numbers:

# %%
env.seed_everything(42)
first = torch.randn(3)
env.seed_everything(42)
assert torch.equal(first, torch.randn(3)), "the same seed must give the same numbers"
print("same seed, same numbers:", first.tolist())

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. The chapters
#
# Each chapter names the section of the overview *Foundation models* (基础模型, in Chinese) that it
# covers, so a reader of that text can find their way.

# %%
from IPython.display import Markdown

from fmcourse.chapters import markdown_table

Markdown(markdown_table())

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - `make lab` (or Binder, Colab, conda) gives you the course; `make test` runs every notebook.
# - `env.check_environment()` says what is missing; `env.get_device()` picks CUDA, then MPS, then CPU,
#   and `FMCOURSE_DEVICE` overrides it.
# - Tensors: shapes line up from the right when broadcasting (watch `(N, 1)` against `(N,)`),
#   reductions along `dim` remove it unless `keepdim=True`, and `backward()` fills `.grad`, adding to
#   what is there until it is zeroed.
# - `env.seed_everything()` makes runs repeatable; `env.presenter_mode()` is for projectors.
#
# Next: chapter 01 shows what makes a model a *foundation* model, and chapter 02 starts building one
# from its smallest part, a layer and a loss.
