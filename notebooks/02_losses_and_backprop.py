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
# # 02 · Losses and backpropagation
#
# **Seed sections 4.1 数学模型构建 (building the mathematical model) and 4.2 公式推导过程 (deriving
# the formulas).**
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmcourse_unpublished/fmcourse/blob/v0.1.0/notebooks/02_losses_and_backprop.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/fmcourse_unpublished/fmcourse/v0.1.0?urlpath=lab/tree/notebooks/02_losses_and_backprop.ipynb)
#
# Every foundation model, however large, is built from one small equation, a layer $y = f(Wx + b)$,
# and trained by one procedure: measure how wrong the outputs are with a *loss*, compute how the loss
# changes with every weight by *backpropagation*, and step the weights downhill. This chapter builds
# each piece by hand, checks it against PyTorch, and ends with the training loop that every later
# chapter uses.
#
# **In this notebook you will**
# - write a layer $y = f(Wx + b)$ and plot the common activations with their derivatives;
# - derive the mean squared error from a noise model, implement it, and fit a curve by gradient descent;
# - derive the cross-entropy from the likelihood of a label, see the naive softmax overflow, make it
#   stable, and derive its gradient, $\mathrm{softmax}(z) - \mathrm{onehot}(y)$;
# - backpropagate through a two-layer network by hand, compare with autograd, and catch a planted bug
#   with a numerical gradient check;
# - train a classifier of handwritten digits with the course's training loop and look at its mistakes;
# - explore a loss landscape and the learning rate with sliders.
#
# **Time on a laptop CPU:** 10 s for the whole notebook.

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
import warnings

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from fmcourse import metrics, objectives, viz, widgets
from fmcourse.train import fit, supervised

env.print_report()
device = env.get_device()

# %% [markdown]
# ## 1. A layer: $y = f(Wx + b)$
#
# The seed's model of a neural network is one equation, applied layer after layer:
#
# $$y = f(Wx + b), \qquad x \in \mathbb{R}^{D},\; W \in \mathbb{R}^{K \times D},\; b \in \mathbb{R}^{K},\; y \in \mathbb{R}^{K}.$$
#
# Each output $y_k$ is a weighted sum of all inputs plus a bias, passed through an *activation*
# $f$ applied element by element. In code we process a batch of $N$ inputs at once, stored as the
# rows of a matrix $X \in \mathbb{R}^{N \times D}$, so the layer reads $Y = f(XW^\top + b)$, with $b$
# added to every row. That is exactly what `nn.Linear` computes (its `weight` is $W$, shape
# `(K, D)`), followed by the activation.

# %%
env.seed_everything(0)
layer = nn.Linear(4, 3)  # W: (3, 4), b: (3,)
x = torch.randn(5, 4)  # a batch of N = 5 inputs with D = 4 features
by_hand = torch.relu(x @ layer.weight.T + layer.bias)
y = torch.relu(layer(x))
print("Y = relu(X W^T + b) has shape", tuple(y.shape))

viz.layer_diagram(layer.weight, layer.bias, activation="relu")
plt.show()
assert torch.allclose(y, by_hand), "nn.Linear computes X W^T + b"

# %% [markdown]
# Why the activation? Without it, two layers collapse into one:
# $W_2(W_1x + b_1) + b_2 = (W_2W_1)x + (W_2b_1 + b_2)$ is again a single linear map, however many
# layers we stack. The non-linear $f$ is what lets depth add expressive power.

# %%
first, second = nn.Linear(4, 6), nn.Linear(6, 3)
merged = nn.Linear(4, 3)
with torch.no_grad():
    merged.weight.copy_(second.weight @ first.weight)
    merged.bias.copy_(second.weight @ first.bias + second.bias)
assert torch.allclose(second(first(x)), merged(x), atol=1e-6), "two linear layers are one linear layer"
assert not torch.allclose(second(torch.relu(first(x))), merged(x), atol=1e-3), "with relu in between they are not"
print("two linear layers without an activation equal one linear layer: checked")

# %% [markdown]
# The four activations you will meet most, with their derivatives (which backpropagation needs):
#
# | activation | $f(z)$ | $f'(z)$ | used in |
# |---|---|---|---|
# | ReLU | $\max(0, z)$ | $1$ if $z > 0$, else $0$ | most vision and MLP layers |
# | GELU | $z\,\Phi(z)$ | $\Phi(z) + z\,\varphi(z)$ | GPT, BERT (chapter 03) |
# | sigmoid | $\sigma(z) = 1 / (1 + e^{-z})$ | $\sigma(z)\,(1 - \sigma(z))$ | gates, binary outputs |
# | tanh | $\tanh z$ | $1 - \tanh^2 z$ | older recurrent networks |
#
# ($\Phi$ and $\varphi$ are the standard normal distribution function and density.) We let autograd
# differentiate each one and compare with the formulas.

# %%
z = torch.linspace(-4, 4, 401, dtype=torch.float64, requires_grad=True)
normal = torch.distributions.Normal(0.0, 1.0)
activations = {  # name: (f, f' from the table)
    "ReLU": (torch.relu, lambda z: (z > 0).double()),
    "GELU": (F.gelu, lambda z: normal.cdf(z) + z * normal.log_prob(z).exp()),
    "sigmoid": (torch.sigmoid, lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z))),
    "tanh": (torch.tanh, lambda z: 1 - torch.tanh(z) ** 2),
}
fig, axes = plt.subplots(1, 4, figsize=(14, 3), sharey=True)
worst = 0.0
for ax, (name, (f, derivative)) in zip(axes, activations.items()):
    (autograd,) = torch.autograd.grad(f(z).sum(), z)
    formula = derivative(z.detach())
    worst = max(worst, (autograd - formula).abs().max().item())
    ax.plot(z.detach(), f(z).detach(), label="$f(z)$")
    ax.plot(z.detach(), autograd, label="$f'(z)$ (autograd)")
    ax.plot(z.detach()[::25], formula[::25], "o", ms=3, color="C1", label="$f'(z)$ (formula)")
    ax.set_title(name)
    ax.set_xlabel("z")
    ax.grid(alpha=0.3)
axes[0].legend(fontsize=8)
plt.show()
print(f"largest difference between autograd and the formulas: {worst:.1e}")
assert worst < 1e-10, "each derivative formula matches autograd"

# %% [markdown]
# Notice the shapes of the derivatives: sigmoid's and tanh's vanish for large $|z|$ (they
# *saturate*, and a saturated unit stops learning), while ReLU's and GELU's stay near 1 for positive
# inputs. That is one reason deep networks use ReLU-like activations.
#
# ## 2. Mean squared error
#
# A loss turns "how wrong is the model" into one number. For predicting real numbers the seed gives
# the **mean squared error**
#
# $$\mathrm{MSE} = \frac{1}{N}\sum_{i=1}^{N} (y_i - \hat y_i)^2 .$$
#
# *Where it comes from.* Suppose the data is the model's prediction plus Gaussian noise,
# $y_i = \hat y_i + \varepsilon_i$ with $\varepsilon_i \sim \mathcal{N}(0, \sigma^2)$. The probability
# density of one observation is $p(y_i) = \frac{1}{\sqrt{2\pi\sigma^2}} \exp\!\big(-\frac{(y_i - \hat y_i)^2}{2\sigma^2}\big)$,
# so the average negative log-likelihood of the data is
#
# $$-\frac{1}{N}\sum_i \log p(y_i) = \frac{1}{2\sigma^2}\,\mathrm{MSE} + \tfrac12\log(2\pi\sigma^2).$$
#
# Minimizing the MSE *is* maximum likelihood under Gaussian noise. Its gradient with respect to each
# prediction is
#
# $$\frac{\partial\, \mathrm{MSE}}{\partial \hat y_i} = \frac{2}{N}(\hat y_i - y_i).$$

# %%
def mse_from_scratch(predictions, targets):
    return ((predictions - targets) ** 2).mean()


predictions = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
targets = torch.randn(8, 3, dtype=torch.float64)
loss = mse_from_scratch(predictions, targets)
loss.backward()
print(f"from scratch {loss.item():.6f}   F.mse_loss {F.mse_loss(predictions, targets).item():.6f}   "
      f"fmcourse {objectives.mse(predictions, targets).item():.6f}")
assert torch.allclose(loss, F.mse_loss(predictions, targets)) and torch.allclose(loss, objectives.mse(predictions, targets))
assert torch.allclose(predictions.grad, 2 * (predictions - targets).detach() / predictions.numel()), "gradient 2(ŷ - y)/N"

# %% [markdown]
# A classic trap: a model with one output returns predictions of shape `(N, 1)`, while the targets
# have shape `(N,)`. `F.mse_loss` broadcasts the pair to an `(N, N)` table of every prediction against
# every target and returns its mean, with only a warning. The number looks plausible and is wrong.
# `objectives.mse` refuses the mismatch and says what it expected.

# %%
column, flat = torch.randn(6, 1), torch.randn(6)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    broadcast = F.mse_loss(column, flat).item()
intended = F.mse_loss(column.squeeze(1), flat).item()
print(f"F.mse_loss on (6, 1) vs (6,): {broadcast:.3f}, but the intended loss is {intended:.3f}")
try:
    objectives.mse(column, flat)
except ValueError as error:
    print("objectives.mse:", error)
assert abs(broadcast - intended) > 1e-3, "broadcasting silently changes the loss"

# %% [markdown]
# ### Fitting a noisy curve by gradient descent
#
# Now we fit a cubic $\hat y = \theta_0 + \theta_1 x + \theta_2 x^2 + \theta_3 x^3$ to noisy samples
# of $\sin 3x$. Stacking the features $(1, x, x^2, x^3)$ of each sample as the rows of
# $\Phi \in \mathbb{R}^{N \times 4}$, the model is a linear layer, $\hat y = \Phi\theta$, and the chain
# rule gives the gradient of the MSE:
#
# $$\nabla_\theta\,\mathrm{MSE} = \Phi^\top \frac{\partial\,\mathrm{MSE}}{\partial \hat y} = \frac{2}{N}\,\Phi^\top(\Phi\theta - y).$$
#
# Gradient descent repeats $\theta \leftarrow \theta - \eta\,\nabla_\theta\mathrm{MSE}$. This loss is a
# quadratic bowl, so its exact minimum is also available in closed form (least squares), and we can
# check that gradient descent gets there.

# %%
g = env.seed_everything(0)
x_data = torch.linspace(-1, 1, 60, dtype=torch.float64)
y_data = torch.sin(3 * x_data) + 0.15 * torch.randn(60, generator=g, dtype=torch.float64)
features = torch.stack([x_data**k for k in range(4)], dim=1)  # Φ: (60, 4)
best = torch.linalg.lstsq(features, y_data[:, None]).solution.squeeze(1)  # the exact minimum
best_loss = objectives.mse(features @ best, y_data).item()

# The step size: 1 / (largest curvature), safely below the limit 2 / λ_max (section 6 explains it).
lr = 1 / torch.linalg.eigvalsh(2 * features.T @ features / len(x_data)).max().item()
theta = torch.zeros(4, dtype=torch.float64)
losses, snapshots = [], {}
for step in range(1001):
    residual = features @ theta - y_data
    losses.append((residual**2).mean().item())
    if step in (0, 10, 50, 200, 1000):
        snapshots[step] = (features @ theta).clone()
    theta -= lr * 2 / len(x_data) * features.T @ residual

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
left.plot(x_data, y_data, "k.", label="data")
for i, (step, fitted) in enumerate(snapshots.items()):
    left.plot(x_data, fitted, color=plt.cm.viridis(i / (len(snapshots) - 1)), label=f"step {step}")
left.legend(fontsize=8)
left.set_title("the fit as training goes")
right.semilogy(losses, label="gradient descent")
right.plot(list(snapshots), [losses[s] for s in snapshots], "o", color="C0")
right.axhline(best_loss, color="C3", ls="--", label=f"least-squares minimum {best_loss:.4f}")
right.set_xlabel("step")
right.set_ylabel("MSE")
right.legend()
plt.show()
print("gradient descent:", theta.numpy().round(4), "\nleast squares:   ", best.numpy().round(4))
assert torch.allclose(theta, best, atol=1e-4), "gradient descent reaches the least-squares solution"
assert losses[-1] < best_loss * (1 + 1e-6)

# %% [markdown]
# The remaining loss, about $0.03$, is the noise we added (its variance is $0.15^2 \approx 0.023$) plus
# what a cubic cannot express of $\sin 3x$. The noise is a floor: on fresh samples no model, however
# long it trains, can predict better than that.
#
# ## 3. Cross-entropy
#
# For classification into $C$ classes a model outputs one score per class, the *logits*
# $z \in \mathbb{R}^C$, and turns them into probabilities with the **softmax**
#
# $$p_c = \mathrm{softmax}(z)_c = \frac{e^{z_c}}{\sum_{k=1}^{C} e^{z_k}} .$$
#
# *From the likelihood of a label.* If the true class is $y$, written as a one-hot vector
# ($y_c = 1$ for the true class, $0$ otherwise), the probability the model gives to it is
# $\prod_c p_c^{\,y_c} = p_y$. Its negative logarithm, averaged over $N$ examples, is the seed's
# cross-entropy:
#
# $$\mathrm{CE} = -\frac{1}{N}\sum_{i=1}^{N}\sum_{c=1}^{C} y_{ic}\log p_{ic} = -\frac1N\sum_{i=1}^N \log p_{i,y_i}.$$
#
# Minimizing it maximizes the probability of the observed labels. Substituting the softmax gives a
# form without any division:
#
# $$-\log p_y = \log\sum_k e^{z_k} - z_y = \mathrm{logsumexp}(z) - z_y .$$
#
# ### Why log-sum-exp must be stabilized
#
# `float32` holds numbers up to about $3.4\times10^{38} = e^{88.7}$. A logit of 100 is nothing
# unusual for a confident model, yet $e^{100}$ overflows to `inf`, and `inf / inf` is `nan`. Very
# negative logits underflow instead: $e^{-1000} = 0$, and $\log 0 = -\infty$. The cure uses the fact
# that subtracting the same constant $m$ from all logits changes nothing:
#
# $$\mathrm{logsumexp}(z) = m + \log\sum_k e^{z_k - m}, \qquad m = \max_k z_k .$$
#
# After the shift the largest term is $e^0 = 1$: nothing overflows, and the sum is at least 1, so its
# logarithm is finite.

# %%
def naive_softmax(z):
    return z.exp() / z.exp().sum(-1, keepdim=True)


def stable_logsumexp(z):
    m = z.max(-1, keepdim=True).values
    return (m + (z - m).exp().sum(-1, keepdim=True).log()).squeeze(-1)


def stable_softmax(z):
    e = (z - z.max(-1, keepdim=True).values).exp()  # the largest entry is e^0 = 1
    return e / e.sum(-1, keepdim=True)


extreme = torch.tensor([[1000.0, 0.0, -1000.0], [-1000.0, -1001.0, -1002.0], [1.0, 2.0, 3.0]])
print("naive softmax:\n", naive_softmax(extreme))
print("stable softmax:\n", stable_softmax(extreme))
assert naive_softmax(extreme)[:2].isnan().any(-1).all(), "the naive version overflows (row 1) and underflows (row 2)"
assert torch.allclose(stable_softmax(extreme), torch.softmax(extreme, -1))
assert torch.allclose(stable_logsumexp(extreme), torch.logsumexp(extreme, -1))
assert torch.allclose(objectives.softmax(extreme), torch.softmax(extreme, -1))  # the package's version

# %% [markdown]
# How far does the naive version get? Scale a fixed set of logits by $s$ and compute
# $\mathrm{logsumexp}(s \cdot z)$ both ways:

# %%
scales = torch.linspace(1, 150, 300)
pattern = torch.tensor([1.0, 0.5, -1.0])
logits_by_scale = scales[:, None] * pattern  # (300, 3)
naive_lse = logits_by_scale.exp().sum(-1).log()
stable_lse = stable_logsumexp(logits_by_scale)
first_inf = scales[naive_lse.isinf()].min().item()
plt.figure(figsize=(7, 3.2))
plt.plot(scales, stable_lse, lw=4, alpha=0.4, label="stable")
plt.plot(scales, naive_lse, "--", label="naive (inf from here)")
plt.axvline(first_inf, color="grey", lw=0.8)
plt.xlabel("scale s of the logits")
plt.ylabel("logsumexp(s·z)")
plt.legend()
plt.show()
print(f"the naive logsumexp returns inf from s = {first_inf:.1f}, where the largest logit passes 88.7")
assert torch.isfinite(stable_lse).all() and 85 < first_inf < 92

# %% [markdown]
# With the stable log-sum-exp the cross-entropy takes one line. We check it against `F.cross_entropy`
# and `objectives.cross_entropy` (the course's version, which we use from here on), on ordinary and on
# extreme logits.

# %%
def cross_entropy_from_scratch(logits, targets):
    return (stable_logsumexp(logits) - logits.gather(-1, targets[:, None]).squeeze(-1)).mean()


env.seed_everything(1)
for scale in (1.0, 1000.0):
    logits = scale * torch.randn(16, 10)
    labels = torch.randint(0, 10, (16,))
    ours = cross_entropy_from_scratch(logits, labels)
    print(f"logits of scale {scale:>6}: from scratch {ours.item():10.4f}   F.cross_entropy "
          f"{F.cross_entropy(logits, labels).item():10.4f}   fmcourse {objectives.cross_entropy(logits, labels).item():10.4f}")
    assert torch.allclose(ours, F.cross_entropy(logits, labels), rtol=1e-5)
    assert torch.allclose(objectives.cross_entropy(logits, labels), F.cross_entropy(logits, labels), rtol=1e-5)

# %% [markdown]
# ### Class weights, label smoothing, ignored positions
#
# `F.cross_entropy` has three options that later chapters use, and `objectives.cross_entropy` offers
# them with the same meaning:
#
# - **class weights** $w_c$ make rare classes count more: $\mathrm{CE} = \sum_i w_{y_i}\,\ell_i \big/ \sum_i w_{y_i}$
#   (a weighted *mean*: the denominator is the sum of the weights used, not $N$);
# - **label smoothing** $\epsilon$ trains towards the target distribution $(1-\epsilon)\,\mathrm{onehot}(y) + \epsilon/C$
#   instead of the one-hot vector, so the model is never pushed to infinite confidence;
# - **`ignore_index`** marks positions that do not count at all, such as padding in a batch of texts
#   of different lengths (chapter 04).
#
# The logits may also have more dimensions, like a language model's `(batch, time, classes)`: the
# course keeps the classes in the **last** dimension, where `F.cross_entropy` wants them second.

# %%
env.seed_everything(2)
logits = torch.randn(4, 7, 5)  # (batch, time, classes)
labels = torch.randint(0, 5, (4, 7))
labels[:, -2:] = -100  # padding: the last two positions of every sequence do not count
options = {
    "plain": {},
    "class weights": {"weight": torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0])},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "all three": {"weight": torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0]), "label_smoothing": 0.1},
}
for name, kwargs in options.items():
    ours = objectives.cross_entropy(logits, labels, ignore_index=-100, **kwargs)
    reference = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, **kwargs)  # classes second
    print(f"{name:>20}: fmcourse {ours.item():.6f}   torch {reference.item():.6f}")
    assert torch.allclose(ours, reference, atol=1e-6), name

# %% [markdown]
# What label smoothing does to the best logits has a closed form. Give the true class the logit
# $m$ and every other class 0. Without smoothing the loss keeps falling as $m$ grows; with smoothing
# $\epsilon$ the loss is smallest when the softmax equals the smoothed target, that is when
# $e^m = \frac{1 - \epsilon + \epsilon/C}{\epsilon / C}$, at a finite margin
# $m^* = \log\frac{1-\epsilon+\epsilon/C}{\epsilon/C}$.

# %%
C, eps = 10, 0.1
margins = torch.linspace(0, 15, 1501, dtype=torch.float64)
margin_logits = torch.zeros(len(margins), C, dtype=torch.float64)
margin_logits[:, 0] = margins
true_class = torch.zeros(len(margins), dtype=torch.long)
plain = objectives.cross_entropy(margin_logits, true_class, reduction="none")
smoothed = objectives.cross_entropy(margin_logits, true_class, reduction="none", label_smoothing=eps)
m_star = math.log((1 - eps + eps / C) / (eps / C))
plt.figure(figsize=(7, 3.2))
plt.plot(margins, plain, label="no smoothing")
plt.plot(margins, smoothed, label=f"label smoothing ε = {eps}")
plt.axvline(m_star, color="grey", ls="--", label=f"$m^*$ = {m_star:.2f}")
plt.xlabel("logit margin m of the true class")
plt.ylabel("cross-entropy")
plt.legend()
plt.show()
assert abs(margins[smoothed.argmin()].item() - m_star) < 0.02, "the smoothed loss is smallest at m*"
assert plain.diff().lt(0).all(), "without smoothing the loss only keeps falling"

# %% [markdown]
# ### The gradient: softmax minus one-hot
#
# For one example, $\ell = \log\sum_j e^{z_j} - z_y$. Differentiating with respect to the logit $z_k$:
#
# $$\frac{\partial \ell}{\partial z_k} = \frac{e^{z_k}}{\sum_j e^{z_j}} - [k = y] = p_k - y_k,
# \qquad\text{so}\qquad \nabla_z \ell = \mathrm{softmax}(z) - \mathrm{onehot}(y),$$
#
# and for the mean over $N$ examples each row is divided by $N$. This gradient is as simple as it
# gets: it raises the true class's logit by $1 - p_y$ and lowers every other logit by its
# probability, its entries sum to zero, and it never exceeds 1 in size, so the loss cannot saturate
# the way a sigmoid does.

# %%
env.seed_everything(3)
logits = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
labels = torch.tensor([0, 3, 1, 1, 2, 0])
objectives.cross_entropy(logits, labels).backward()
by_formula = (objectives.softmax(logits.detach()) - F.one_hot(labels, 4)) / len(labels)
print(f"largest difference between autograd and (softmax - onehot) / N: {(logits.grad - by_formula).abs().max():.1e}")
assert torch.allclose(logits.grad, by_formula), "the gradient of CE is (softmax - onehot) / N"
assert torch.allclose(logits.grad.sum(-1), torch.zeros(6, dtype=torch.float64)), "each row sums to zero"

# %% [markdown]
# Bad input gets a clear message rather than a wrong number or a traceback from deep inside torch:

# %%
scores = torch.randn(4, 10)
for bad_targets in (torch.zeros(4, 2, dtype=torch.long), torch.tensor([0, 1, 10, 2])):
    try:
        objectives.cross_entropy(scores, bad_targets)
    except ValueError as error:
        print("ValueError:", error)
    else:
        raise AssertionError("bad input was accepted")

# %% [markdown]
# ## 4. Backpropagation
#
# To train a network we need the gradient of the loss with respect to *every* weight. Backpropagation
# is the chain rule applied from the loss backwards, layer by layer, reusing what the forward pass
# stored. Take a two-layer network on inputs $X \in \mathbb{R}^{N\times D}$ with labels $y$:
#
# | forward | backward (each line uses the one above it) |
# |---|---|
# | $Z_1 = XW_1^\top + b_1$ | $\partial L/\partial W_1 = \delta_1^\top X,\quad \partial L/\partial b_1 = \sum_n \delta_1$ |
# | $H = \mathrm{ReLU}(Z_1)$ | $\delta_1 = \partial L/\partial Z_1 = \partial L/\partial H \odot [Z_1 > 0]$ |
# | $Z_2 = HW_2^\top + b_2$ | $\partial L/\partial H = \delta_2 W_2,\quad \partial L/\partial W_2 = \delta_2^\top H,\quad \partial L/\partial b_2 = \sum_n \delta_2$ |
# | $L = \mathrm{CE}(Z_2, y)$ | $\delta_2 = \partial L/\partial Z_2 = (\mathrm{softmax}(Z_2) - \mathrm{onehot}(y))/N$ |
#
# Read the backward column from the bottom up. Two rules make it easy to get right: a gradient has
# the shape of what it differentiates (so $\partial L/\partial W_1$ is $K\times D$ like $W_1$), and
# the backward of a matrix product multiplies by the *other* factor, transposed.
#
# Our data: two interleaved half-moons in the plane (generated by scikit-learn), which no straight
# line separates.

# %%
from sklearn.datasets import make_moons

points, moon_labels = make_moons(200, noise=0.2, random_state=0)
X_moons, y_moons = torch.tensor(points), torch.tensor(moon_labels)  # (200, 2) float64, (200,)


def init_params(hidden=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(hidden, 2, generator=g, dtype=torch.float64),  # W1, scaled for ReLU (He)
            torch.zeros(hidden, dtype=torch.float64),  # b1
            torch.randn(2, hidden, generator=g, dtype=torch.float64) / math.sqrt(hidden),  # W2
            torch.zeros(2, dtype=torch.float64)]  # b2


def forward(params, X):
    W1, b1, W2, b2 = params
    Z1 = X @ W1.T + b1
    H = torch.relu(Z1)
    Z2 = H @ W2.T + b2
    return Z1, H, Z2


def backward(params, X, y, cache):
    W1, b1, W2, b2 = params
    Z1, H, Z2 = cache
    N, C = Z2.shape
    d_Z2 = (objectives.softmax(Z2) - F.one_hot(y, C)) / N
    d_W2, d_b2 = d_Z2.T @ H, d_Z2.sum(0)
    d_H = d_Z2 @ W2
    d_Z1 = d_H * (Z1 > 0)
    d_W1, d_b1 = d_Z1.T @ X, d_Z1.sum(0)
    return [d_W1, d_b1, d_W2, d_b2]


params = init_params()
by_hand = backward(params, X_moons, y_moons, forward(params, X_moons))

leaves = [p.clone().requires_grad_() for p in params]
objectives.cross_entropy(forward(leaves, X_moons)[2], y_moons).backward()
for name, mine, leaf in zip(["W1", "b1", "W2", "b2"], by_hand, leaves):
    print(f"{name}: shape {tuple(mine.shape)!s:8}  largest difference from autograd {(mine - leaf.grad).abs().max().item():.1e}")
    assert mine.shape == leaf.shape and torch.allclose(mine, leaf.grad), name

# %% [markdown]
# **Forward, backward, update.** Training repeats the three steps: gradient descent moves each
# parameter against its gradient, $\theta \leftarrow \theta - \eta\,\partial L/\partial\theta$.

# %%
params = init_params()
moon_losses = []
for step in range(1500):
    cache = forward(params, X_moons)
    moon_losses.append(objectives.cross_entropy(cache[2], y_moons).item())
    grads = backward(params, X_moons, y_moons, cache)
    params = [p - 1.0 * grad for p, grad in zip(params, grads)]
moon_accuracy = metrics.accuracy(forward(params, X_moons)[2], y_moons)

grid_x, grid_y = torch.meshgrid(torch.linspace(-1.6, 2.6, 200, dtype=torch.float64),
                                torch.linspace(-1.2, 1.7, 150, dtype=torch.float64), indexing="xy")
grid = torch.stack([grid_x.flatten(), grid_y.flatten()], 1)
p_upper = objectives.softmax(forward(params, grid)[2])[:, 1].view(grid_x.shape)
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
left.semilogy(moon_losses)
left.set_xlabel("step")
left.set_ylabel("cross-entropy")
left.set_title("training by hand")
right.contourf(grid_x, grid_y, p_upper, levels=20, cmap="RdBu_r", alpha=0.6)
right.contour(grid_x, grid_y, p_upper, levels=[0.5], colors="black")
for label, color in ((0, "tab:blue"), (1, "tab:red")):
    right.scatter(*X_moons[y_moons == label].T, color=color, edgecolor="white", lw=0.6, s=20, label=f"class {label}")
right.legend(loc="lower left", fontsize=8)
right.set_title(f"decision boundary: {moon_accuracy:.1%} of training points right")
plt.show()
assert moon_losses[-1] < 0.1 * moon_losses[0] and moon_accuracy > 0.95

# %% [markdown]
# ### A numerical gradient check
#
# How do we know a hand-written backward pass is right when there is no autograd to compare with
# (a new layer, a custom kernel)? Go back to the definition of the derivative. The *central
# difference*
#
# $$\frac{\partial L}{\partial \theta_j} \approx \frac{L(\theta + h e_j) - L(\theta - h e_j)}{2h}$$
#
# has an error of order $h^2$. In `float64` with $h = 10^{-6}$ it agrees with a correct gradient to
# about eight digits. We compare with the relative error
# $\lVert g_{\text{backprop}} - g_{\text{numeric}}\rVert / (\lVert g_{\text{backprop}}\rVert + \lVert g_{\text{numeric}}\rVert)$
# and plant a bug to see that the check catches it: a backward pass that forgets the ReLU's
# derivative.

# %%
def numerical_gradient(loss_of, params, h=1e-6):
    grads = []
    for p in params:
        grad = torch.zeros_like(p)
        for j in range(p.numel()):
            original = p.view(-1)[j].item()
            p.view(-1)[j] = original + h
            up = loss_of(params)
            p.view(-1)[j] = original - h
            down = loss_of(params)
            p.view(-1)[j] = original
            grad.view(-1)[j] = (up - down) / (2 * h)
        grads.append(grad)
    return grads


def backward_with_bug(params, X, y, cache):
    W1, b1, W2, b2 = params
    Z1, H, Z2 = cache
    N, C = Z2.shape
    d_Z2 = (objectives.softmax(Z2) - F.one_hot(y, C)) / N
    d_H = d_Z2 @ W2
    d_Z1 = d_H  # BUG: the ReLU's derivative [Z1 > 0] is missing
    return [d_Z1.T @ X, d_Z1.sum(0), d_Z2.T @ H, d_Z2.sum(0)]


def relative_error(a, b):
    return ((a - b).norm() / (a.norm() + b.norm())).item()


params = init_params(seed=1)
X_small, y_small = X_moons[:50], y_moons[:50]
numeric = numerical_gradient(lambda ps: objectives.cross_entropy(forward(ps, X_small)[2], y_small).item(), params)
cache = forward(params, X_small)
errors = {name: [relative_error(g, n) for g, n in zip(fn(params, X_small, y_small, cache), numeric)]
          for name, fn in [("correct backward", backward), ("backward with the bug", backward_with_bug)]}

names = ["W1", "b1", "W2", "b2"]
plt.figure(figsize=(7, 3.2))
for k, (name, errs) in enumerate(errors.items()):
    plt.bar([i + 0.4 * k for i in range(4)], errs, width=0.4, label=name)
plt.xticks([i + 0.2 for i in range(4)], names)
plt.yscale("log")
plt.axhline(1e-6, color="grey", ls="--", lw=0.8)
plt.ylabel("relative error vs finite differences")
plt.legend()
plt.show()
for name, errs in errors.items():
    print(f"{name:>22}: " + "  ".join(f"{n} {e:.1e}" for n, e in zip(names, errs)))
assert max(errors["correct backward"]) < 1e-6, "the correct backward agrees with finite differences"
assert max(errors["backward with the bug"]) > 1e-2, "the planted bug is caught"

# %% [markdown]
# The bug shows up in $W_1$ and $b_1$ only, the layer below the missing derivative: a gradient check
# also says *where* to look. (PyTorch ships the same check as `torch.autograd.gradcheck`, for custom
# autograd functions.) Finite differences cost two forward passes per parameter, so they are for
# testing, never for training: backpropagation gets all gradients for about the cost of one more
# forward pass.
#
# ## 5. A real task: handwritten digits
#
# Now the same ingredients on real data that needs no download: scikit-learn ships 1,797 handwritten
# digits, each an $8\times8$ grey-scale image, with its label 0–9. We keep 60% for training, 20% for
# *validation* (watched during training) and 20% for a *test* that the model sees only once, at the
# end.

# %%
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

digits = load_digits()
images = torch.tensor(digits.images, dtype=torch.float32) / 16  # (1797, 8, 8), pixels in [0, 1]
labels = torch.tensor(digits.target)  # (1797,)
train_idx, rest = train_test_split(range(len(labels)), test_size=0.4, stratify=labels, random_state=0)
val_idx, test_idx = train_test_split(rest, test_size=0.5, stratify=labels[rest], random_state=0)
print(f"train {len(train_idx)}, validation {len(val_idx)}, test {len(test_idx)} images")
viz.image_grid(images[:16], titles=[f"label {int(t)}" for t in labels[:16]], ncols=8)
plt.show()
assert len(set(train_idx) | set(val_idx) | set(test_idx)) == len(labels), "the three parts cover the data once"

# %% [markdown]
# The model is two layers $y = f(Wx+b)$ like the one of section 4, wider: 64 pixels → 128 hidden
# units → 10 logits. We train it with `fit`, the course's one training loop, which every later
# chapter uses. It takes the model, the batches, a loss and a length (`epochs` or `steps`), and does
# what section 4 did by hand for each batch: forward, loss, backward, update, with
# [AdamW](https://arxiv.org/abs/1711.05101) (a gradient-descent step scaled per parameter) as the
# update rule. On top it moves model and data to the device, clips the gradient's size, warms the
# learning rate up and then lowers it along a cosine, shows a progress bar and live loss curves, and
# returns the history. `supervised(loss)` turns a loss of `(outputs, targets)` into the
# `loss_fn(model, batch)` that `fit` calls; we pass it our cross-entropy.

# %%
env.seed_everything(0)
flat = images.view(len(images), 64)
train_batches = DataLoader(TensorDataset(flat[train_idx], labels[train_idx]), batch_size=64, shuffle=True,
                           generator=torch.Generator().manual_seed(0))
val_batches = [(flat[val_idx], labels[val_idx])]
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
history = fit(model, train_batches, supervised(objectives.cross_entropy), epochs=15, lr=5e-3, warmup_steps=10,
              val_data=val_batches)
print(f"first training loss {history.train_loss[0]:.3f} (ln 10 = {math.log(10):.3f}), "
      f"final validation loss {history.val_loss[-1]:.3f}, {history.seconds:.1f} s")
assert abs(history.train_loss[0] - math.log(10)) < 0.3, "an untrained classifier starts near ln 10"
assert history.val_loss[-1] < 0.3, "the validation loss fell far below ln 10"

# %% [markdown]
# The learning rate was not constant: `fit` raised it linearly over the first `warmup_steps` (large
# steps from a random start can throw the weights far off) and then lowered it along half a cosine to
# a tenth, so the last steps are small and settle the weights. `lr_at` gives the schedule.

# %%
from fmcourse.train import lr_at

schedule = [lr_at(step, len(history.lr), 5e-3, warmup_steps=10) for step in range(len(history.lr))]
plt.figure(figsize=(7, 2.5))
plt.plot(history.lr)
plt.xlabel("step")
plt.ylabel("learning rate")
plt.title("warm-up, then cosine decay")
plt.show()
assert all(math.isclose(a, b) for a, b in zip(history.lr, schedule)), "fit followed lr_at"

# %% [markdown]
# Now the test set, once. `metrics.accuracy` takes the logits and the labels; we check it against
# scikit-learn.

# %%
with torch.no_grad():
    test_logits = model(flat[test_idx].to(device)).cpu()
test_labels = labels[test_idx]
test_accuracy = metrics.accuracy(test_logits, test_labels)
print(f"test accuracy {test_accuracy:.1%} on {len(test_idx)} unseen images (chance: 10%)")
assert abs(test_accuracy - accuracy_score(test_labels, test_logits.argmax(-1))) < 1e-12, "agrees with scikit-learn"
assert test_accuracy >= 0.95, "the MLP classifies at least 95% of the unseen digits right"

# %% [markdown]
# A single number hides *which* digits get confused. The **confusion matrix** counts, for every
# true class (row), how often each class was predicted (column); the diagonal holds the right
# answers.

# %%
matrix = metrics.confusion_matrix(test_logits, test_labels)
viz.confusion_matrix_plot(matrix)
plt.show()
per_class = matrix.diag() / matrix.sum(1)  # the fraction of each true class predicted right
hardest = per_class.argmin().item()
print("fraction right per class:", per_class.numpy().round(2))
print(f"hardest class: {hardest}, {matrix[hardest].sum() - matrix[hardest, hardest]} of {matrix[hardest].sum()} wrong")
assert (matrix.numpy() == sklearn_confusion_matrix(test_labels, test_logits.argmax(-1))).all()
assert matrix.trace().item() == round(test_accuracy * len(test_idx))

# %% [markdown]
# And the mistakes themselves. Many are digits a person would hesitate over too, drawn on only
# $8\times8$ pixels.

# %%
predicted = test_logits.argmax(-1)
wrong = (predicted != test_labels).nonzero().squeeze(1)
viz.image_grid(images[test_idx][wrong], titles=[f"{int(test_labels[i])} → {int(predicted[i])}" for i in wrong],
               ncols=min(8, len(wrong)), title_colors=["C3"] * len(wrong))
plt.show()
print(f"{len(wrong)} mistakes, titled true → predicted")
assert len(wrong) == len(test_idx) - matrix.trace().item()

# %% [markdown]
# The metrics refuse input that does not fit, naming the shapes they expected: here one prediction
# too few, and a label outside the ten classes.

# %%
for bad_logits, bad_labels in ((test_logits[:-1], test_labels), (test_logits[:3], torch.tensor([1, 12, 3]))):
    try:
        metrics.accuracy(bad_logits, bad_labels)
    except ValueError as error:
        print("ValueError:", error)
    else:
        raise AssertionError("bad input was accepted")

# %% [markdown]
# ## 6. Explore: the loss landscape and the learning rate
#
# A model with only two parameters has a loss we can draw. Fit a line $\hat y = wx + b$ to noisy
# points with the MSE: the loss as a function of $(w, b)$ is a bowl, drawn below as contour lines,
# and gradient descent walks down it, $\theta \leftarrow \theta - \eta\nabla L(\theta)$.
#
# How large may the learning rate $\eta$ be? Near its minimum $\theta^*$ a quadratic loss has a
# constant matrix of second derivatives, the Hessian $A$, and the gradient is $A(\theta - \theta^*)$.
# So one step maps the error $e = \theta - \theta^*$ to $(I - \eta A)\,e$: along each eigenvector of
# $A$, with eigenvalue $\lambda$, the error is multiplied by $1 - \eta\lambda$. Gradient descent
# converges exactly when $|1 - \eta\lambda| < 1$ for all of them:
#
# $$0 < \eta < \frac{2}{\lambda_{\max}} .$$
#
# The flattest direction, $\lambda_{\min}$, sets how slowly it converges; the ratio
# $\lambda_{\max}/\lambda_{\min}$ (the *condition number*) is why the bowl below is a long valley
# and why a well-chosen learning rate still zig-zags. For the line fit,
# $A = \frac{2}{N}\sum_i (x_i, 1)^\top(x_i, 1)$.

# %%
x_line, y_line = widgets.default_line_problem()
design = torch.stack([x_line, torch.ones_like(x_line)], 1)  # rows (x_i, 1)
curvatures = torch.linalg.eigvalsh(2 * design.T @ design / len(x_line))
critical_lr = 2 / curvatures.max().item()
best_line = torch.linalg.lstsq(design, y_line[:, None]).solution.squeeze(1)
line_loss = widgets.line_fit_loss(x_line, y_line)
print(f"curvatures {curvatures.numpy().round(3)}, condition number {(curvatures.max() / curvatures.min()).item():.1f}, "
      f"critical learning rate 2/λ_max = {critical_lr:.3f}")

fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
slow = widgets.draw_loss_landscape(line_loss, lr=0.05, ax=axes[0])
default = widgets.draw_loss_landscape(ax=axes[1])  # the defaults, which the explorer below starts from
unstable = widgets.draw_loss_landscape(line_loss, lr=1.05 * critical_lr, ax=axes[2])
plt.show()
assert (slow[-1] - best_line).norm() > 0.5, "a small learning rate is still far from the minimum"
assert (default[-1] - best_line).norm() < 0.05, "the default learning rate, below 2/λ_max, converges"
assert line_loss(*unstable[-1]) > line_loss(*unstable[0]), "just above 2/λ_max the loss grows"

# %% [markdown]
# Move the sliders (in a running notebook): find the learning rate at which the path starts to
# zig-zag, the one at which it diverges (compare with $2/\lambda_{\max}$ above), and start points
# from which a small learning rate crawls along the valley floor.

# %%
widgets.loss_landscape_explorer(line_loss)

# %% [markdown]
# ## Summary
#
# - A layer computes $y = f(Wx + b)$; without the non-linear $f$, stacked layers collapse into one.
# - The **MSE** is the negative log-likelihood under Gaussian noise; its gradient is
#   $\frac{2}{N}(\hat y - y)$. Make predictions and targets the same shape: broadcasting silently
#   computes a different loss.
# - The **cross-entropy** is the negative log-likelihood of the labels, $\mathrm{logsumexp}(z) - z_y$,
#   computed stably by subtracting $\max z$ first; its gradient is
#   $(\mathrm{softmax}(z) - \mathrm{onehot}(y))/N$. Class weights, label smoothing and ignored
#   positions change it in the ways `F.cross_entropy` defines.
# - **Backpropagation** is the chain rule from the loss backwards; a gradient has the shape of its
#   parameter. A finite-difference gradient check catches (and locates) a wrong backward pass.
# - `fit(model, batches, supervised(loss), epochs=...)` is the training loop of the whole course; an
#   MLP trained with it classifies over 95% of unseen handwritten digits.
# - Gradient descent on a quadratic converges for learning rates below $2/\lambda_{\max}$, and the
#   condition number sets its speed.
#
# Next, chapter 03 stacks such layers into a Transformer, with attention as the new ingredient.
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
from fmcourse.exercises import losses as exercises

# 1. Backpropagation through a tanh layer: for L = MSE(tanh(x @ W.T + b), y), the mean over all N*K
#    entries, return (dL/dW, dL/db) by the chain rule (no autograd). Shapes: x (N, D), W (K, D), b (K,),
#    y (N, K).
def my_linear_gradients(x, W, b, y):
    ...  # your code here


exercises.linear_layer_gradients.check(my_linear_gradients)

# %%
# 2. A formula. Section 3 derived the gradient of the mean cross-entropy for one-hot targets. Derive
#    it for label smoothing ε, whose target is (1 - ε) onehot(y) + ε/C, and code it without autograd:
#    return dL/dlogits, shape (N, C). `targets` holds class indices, shape (N,).
def my_smoothed_gradient(logits, targets, epsilon):
    ...  # your code here


exercises.smoothed_cross_entropy_gradient.check(my_smoothed_gradient)

# %%
# 3. A number. With label smoothing ε = 0.1 over C = 10 classes, what is the lowest loss (in nats)
#    a classifier can reach on a training example, whatever its logits?
my_lowest_loss = ...

exercises.lowest_smoothed_loss.check(my_lowest_loss)

# %%
# 4. An experiment. Gradient descent on the narrow valley L(w, b) = w² + 25 b² (curvatures 2 and 50,
#    so 2/λ_max = 0.04), from (2, 1). The cell runs 50 steps at lr = 0.02 and prints the loss.
#    Predict first: at lr = 0.038, just below the limit, the steep direction zig-zags. Will the loss
#    after 50 steps be "lower" or "higher" than at lr = 0.02? Then set lr = 0.038, run, and record.
lr = 0.02  # change me
w, b = torch.tensor(2.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
for step in range(50):
    w, b = w - lr * 2 * w, b - lr * 50 * b  # the gradient of w² + 25 b² is (2w, 50b)
print(f"lr = {lr}: loss after 50 steps {exercises.valley(w, b).item():.4g}")

my_prediction = ...  # "lower" or "higher", written down BEFORE running at lr = 0.038
my_measurement = ...  # the loss printed at lr = 0.038
exercises.learning_rate_experiment.check(my_prediction, my_measurement)

# %% [markdown]
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button: click it only when you want to see them (or run
# `exercises.<name>.show_solution()` for one exercise).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.linear_layer_gradients, exercises.smoothed_cross_entropy_gradient,
                      exercises.lowest_smoothed_loss, exercises.learning_rate_experiment)

# %% [markdown]
# ## Further reading
#
# - I. Goodfellow, Y. Bengio, A. Courville, *Deep Learning* (MIT Press, 2016; free at
#   deeplearningbook.org): §5.5 maximum likelihood, §6.2 output units and losses, §6.5
#   back-propagation. This is the 《深度学习》 that the seed's section 7.1 recommends.
# - D. Rumelhart, G. Hinton, R. Williams, "Learning representations by back-propagating errors",
#   *Nature* 323 (1986): the paper that made backpropagation the way networks are trained.
# - P. Blanchard, D. Higham, N. Higham, "Accurately computing the log-sum-exp and softmax functions",
#   *IMA Journal of Numerical Analysis* (2021): the shift by the maximum, analysed.
# - C. Szegedy et al., "Rethinking the Inception architecture" (2016), which introduced label
#   smoothing, and R. Müller, S. Kornblith, G. Hinton, "When does label smoothing help?" (2019).
# - D. Hendrycks, K. Gimpel, "Gaussian error linear units (GELUs)" (2016).
# - I. Loshchilov, F. Hutter, "Decoupled weight decay regularization" (2019): AdamW, the optimizer
#   `fit` uses.
# - PyTorch documentation: "Autograd mechanics" and `torch.autograd.gradcheck`.
