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
# - go from full-batch gradient descent to the course's training loop one step at a time
#   (minibatches, AdamW, clipping, warm-up, cosine decay), see what each changes, and watch a model
#   overfit;
# - measure what a backward pass costs against the forward pass;
# - train a classifier of handwritten digits with the course's training loop and look at its mistakes;
# - explore a loss landscape and the learning rate with sliders.
#
# **Time on a laptop CPU:** 16 s for the whole notebook.

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
import warnings

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from fmcourse import metrics, objectives, viz, widgets
from fmcourse.train import fit, supervised

env.print_report()
device = env.get_device()

# %% [markdown] slideshow={"slide_type": "slide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### The gradient: softmax minus one-hot
#
# For one example, $\ell = \log\sum_j e^{z_j} - z_y$. Differentiating with respect to the logit $z_k$:
#
# $$\frac{\partial \ell}{\partial z_k} = \frac{e^{z_k}}{\sum_j e^{z_j}} - [k = y] = p_k - y_k,
# \qquad\text{so}\qquad \nabla_z \ell = \mathrm{softmax}(z) - \mathrm{onehot}(y),$$
#
# and for the mean over $N$ examples each row is divided by $N$. This gradient is as simple as it
# gets: it raises the true class's logit by $1 - p_y$ and lowers every other logit by its
# probability, and its entries sum to zero.

# %%
env.seed_everything(3)
logits = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
labels = torch.tensor([0, 3, 1, 1, 2, 0])
objectives.cross_entropy(logits, labels).backward()
by_formula = (objectives.softmax(logits.detach()) - F.one_hot(labels, 4)) / len(labels)
print(f"largest difference between autograd and (softmax - onehot) / N: {(logits.grad - by_formula).abs().max():.1e}")
assert torch.allclose(logits.grad, by_formula), "the gradient of CE is (softmax - onehot) / N"
assert torch.allclose(logits.grad.sum(-1), torch.zeros(6, dtype=torch.float64)), "each row sums to zero"

# %% [markdown] slideshow={"slide_type": "subslide"}
# What matters most is the size of that gradient when the model is **confidently wrong**. Then
# $p_y \to 0$ and the true class's entry is $p_y - 1 \to -1$: the largest it can be. The worse the
# mistake, the stronger the correction, and it never fades away. Compare a sigmoid output
# $\sigma(z)$ trained with the squared error $(\sigma(z) - 1)^2$ on a positive example: its gradient
# $2(\sigma(z) - 1)\,\sigma'(z)$ carries the factor $\sigma'(z) = \sigma(z)(1 - \sigma(z))$, which
# vanishes when the output saturates. A confidently wrong sigmoid ($z \ll 0$) gets almost no
# gradient, and learns slowly exactly where it is most wrong. (For two classes the cross-entropy of
# a sigmoid, $-\log\sigma(z)$, has gradient $\sigma(z) - 1$, the same $p_y - 1$.)

# %%
z_true = torch.linspace(-10, 10, 401, dtype=torch.float64, requires_grad=True)  # logit of the true class
cross_entropy_loss = -F.logsigmoid(z_true)                  # two classes: -log p_y, p_y = sigmoid(z)
squared_error_loss = (torch.sigmoid(z_true) - 1) ** 2       # squared error of the probability
(ce_gradient,) = torch.autograd.grad(cross_entropy_loss.sum(), z_true)
(se_gradient,) = torch.autograd.grad(squared_error_loss.sum(), z_true)

plt.figure(figsize=(7, 3.2))
plt.plot(z_true.detach(), ce_gradient.abs(), label="cross-entropy: $|p_y - 1|$")
plt.plot(z_true.detach(), se_gradient.abs(), label="sigmoid + squared error")
plt.axhline(1, color="grey", ls="--", lw=0.8)
plt.axvspan(-10, -3, color="C3", alpha=0.08, label="confidently wrong ($p_y < 0.05$)")
plt.xlabel("logit of the true class, $z$")
plt.ylabel("size of the gradient")
plt.legend(fontsize=8)
plt.show()
at_wrong = (z_true.detach() == -10).nonzero().item()
print(f"at z = -10 (p_y = {torch.sigmoid(torch.tensor(-10.0)):.1e}): cross-entropy gradient {ce_gradient[at_wrong].abs():.4f}, "
      f"sigmoid + squared error {se_gradient[at_wrong].abs():.1e}")
assert ce_gradient[at_wrong].abs() > 0.999, "a confident mistake gets a gradient of almost 1"
assert se_gradient[at_wrong].abs() < 1e-3, "a saturated sigmoid with squared error gets almost none"
assert torch.allclose(ce_gradient, torch.sigmoid(z_true.detach()) - 1), "the gradient is p_y - 1"

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "slide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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
left.semilogy(moon_losses, label="training loss")
left.axhline(math.log(2), color="grey", ls="--", lw=0.8, label="uniform guess, ln 2")
left.legend(fontsize=8)
left.set_xlabel("step")
left.set_ylabel("cross-entropy")
left.set_title("training by hand")
filled = right.contourf(grid_x, grid_y, p_upper, levels=20, cmap="RdBu_r", alpha=0.6)
fig.colorbar(filled, ax=right, label="p(class 1)", ticks=[0, 0.25, 0.5, 0.75, 1])
right.contour(grid_x, grid_y, p_upper, levels=[0.5], colors="black")
for label, color in ((0, "tab:blue"), (1, "tab:red")):
    right.scatter(*X_moons[y_moons == label].T, color=color, edgecolor="white", lw=0.6, s=20, label=f"class {label}")
right.legend(loc="lower left", fontsize=8)
right.set_title(f"decision boundary: {moon_accuracy:.1%} of training points right")
plt.show()
assert moon_losses[-1] < 0.1 * moon_losses[0] and moon_accuracy > 0.95

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
# The bug shows up in $W_1$ and $b_1$ only, the layer below the missing derivative: a gradient check
# also says *where* to look. (PyTorch ships the same check as `torch.autograd.gradcheck`, for custom
# autograd functions.) Finite differences cost two forward passes per parameter, so they are for
# testing, never for training.
#
# **What does backpropagation cost?** All the gradients at once, for about **two** forward passes.
# The work is in the matrix products. A layer's forward pass computes $Z = XW^\top$ (for $N$ rows,
# $2NKD$ floating-point operations); its backward pass computes two products of the same size,
# $\partial L/\partial X = \delta W$ to pass the gradient down and $\partial L/\partial W =
# \delta^\top X$ for the weights. Only the first layer skips $\partial L/\partial X$, since nobody
# needs the gradient of the data. One training step (forward and backward) therefore costs about
# three forward passes, the origin of the "6 × parameters × tokens" FLOPs of training a language model
# (2 per parameter and token forward, 4 backward; chapter 11). PyTorch's FLOP counter agrees, on a
# four-layer network:

# %%
from torch.utils.flop_counter import FlopCounterMode

widths = [64, 256, 256, 256, 10]
deep = nn.Sequential(*[m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.ReLU())][:-1])
batch = torch.randn(128, 64)
with FlopCounterMode(display=False) as forward_count:
    loss = objectives.cross_entropy(deep(batch), torch.zeros(128, dtype=torch.long))
with FlopCounterMode(display=False) as backward_count:
    loss.backward()
forward_flops, backward_flops = forward_count.get_total_flops(), backward_count.get_total_flops()
first_layer = 2 * 128 * widths[0] * widths[1]
print(f"forward {forward_flops / 1e6:.1f} MFLOPs, backward {backward_flops / 1e6:.1f} MFLOPs: "
      f"{backward_flops / forward_flops:.2f} forward passes")
assert backward_flops == 2 * forward_flops - first_layer, "two products per layer, one for the first"
assert 1.8 < backward_flops / forward_flops <= 2
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

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### From gradient descent to `fit`, one change at a time
#
# The model is two layers $y = f(Wx+b)$ like the one of section 4, wider: 64 pixels → 128 hidden
# units → 10 logits. Section 4 trained by *full-batch gradient descent*: every step used all the
# training data. Every later chapter trains with `fit`, the course's one training loop, which adds
# five things to that. We add them one at a time to the loop below and look at what each changes:
#
# 1. **minibatches**: each step uses a random batch of 64 examples, not all of them;
# 2. **AdamW** instead of the plain step $\theta \leftarrow \theta - \eta g$;
# 3. **gradient clipping**: a gradient longer than 1 is shortened to length 1;
# 4. **warm-up**: the learning rate grows from almost 0 over the first steps;
# 5. **cosine decay**: after the warm-up it falls along half a cosine to a tenth of its peak.
#
# `lr_at(step, total, lr, warmup_steps, min_ratio)` from `fmcourse.train` gives the learning rate at
# each step (with `min_ratio=1` it stays constant after the warm-up). For a fair comparison every
# variant gets the same budget (15 passes over the training data, *epochs*) and the same tuning: five
# learning rates a factor of about 3 apart, around where it works (SGD and AdamW work at scales a
# hundred times apart), and we keep the one with the lowest validation loss, never the test loss.

# %%
from fmcourse.train import lr_at

flat = images.view(len(images), 64)
X_train, y_train, X_val, y_val = flat[train_idx], labels[train_idx], flat[val_idx], labels[val_idx]
EPOCHS = 15


def digits_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def batches_of(size, seed=0):
    """The training set in shuffled batches of `size` (a new order every epoch, the same for a seed)."""
    return DataLoader(TensorDataset(X_train, y_train), batch_size=size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


def train_loop(model, batches, lr, optimizer="sgd", epochs=EPOCHS, grad_clip=None, warmup_steps=0, min_lr_ratio=1.0):
    """Section 4's loop with fit's additions. Returns per-step losses, gradient norms (before clipping),
    learning rates and sizes of the update, and the validation loss after every epoch."""
    make = torch.optim.SGD if optimizer == "sgd" else torch.optim.AdamW
    opt = make(model.parameters(), lr=lr, weight_decay=0.0)
    total = epochs * len(batches)
    record = {"loss": [], "grad_norm": [], "lr": [], "update": [], "val_loss": []}
    for epoch in range(epochs):
        for inputs, targets in batches:
            step = len(record["loss"])
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, lr, warmup_steps, min_lr_ratio)      # the schedule
            loss = objectives.cross_entropy(model(inputs), targets)                   # forward
            opt.zero_grad()
            loss.backward()                                                           # backward
            norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip or math.inf)
            before = [p.detach().clone() for p in model.parameters()]
            opt.step()                                                                # update
            record["update"].append(math.sqrt(sum(((p - b) ** 2).sum().item() for p, b in zip(model.parameters(), before))))
            record["loss"].append(loss.item())
            record["grad_norm"].append(norm.item())
            record["lr"].append(opt.param_groups[0]["lr"])
        with torch.no_grad():
            record["val_loss"].append(objectives.cross_entropy(model(X_val), y_val).item())
    return record


def best_of(runs):
    """The learning rate whose run ends with the lowest validation loss (a diverged run counts as inf)."""
    final = {lr: run["val_loss"][-1] if math.isfinite(run["val_loss"][-1]) else math.inf for lr, run in runs.items()}
    return min(final, key=final.get)


SGD_GRID = [0.03, 0.1, 0.3, 1.0, 3.0]
full_batch = {lr: train_loop(digits_mlp(), batches_of(len(X_train)), lr) for lr in SGD_GRID}
minibatch = {lr: train_loop(digits_mlp(), batches_of(64), lr) for lr in SGD_GRID}
best_full, best_mini = best_of(full_batch), best_of(minibatch)

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.6))
for runs, best, name in ((full_batch, best_full, "full batch"), (minibatch, best_mini, "minibatches of 64")):
    left.plot(range(1, EPOCHS + 1), runs[best]["val_loss"], "o-", ms=3, label=f"{name}, η = {best}")
    right.plot(SGD_GRID, [runs[lr]["val_loss"][-1] for lr in SGD_GRID], "o-", label=name)
for ax in (left, right):
    ax.axhline(math.log(10), color="grey", ls="--", lw=0.8, label="uniform guess, ln 10")
    ax.set(yscale="log", ylabel="validation loss")
left.set(xlabel="epoch (passes over the training set)", title="best learning rate of each")
right.set(xscale="log", xlabel="learning rate η", title=f"after {EPOCHS} epochs, every η of the grid")
left.legend(fontsize=8)
right.legend(fontsize=8)
plt.show()
print(f"full batch: {EPOCHS} steps, best validation loss {full_batch[best_full]['val_loss'][-1]:.3f} (η = {best_full}); "
      f"minibatches: {len(minibatch[best_mini]['loss'])} steps, {minibatch[best_mini]['val_loss'][-1]:.3f} (η = {best_mini})")
assert best_full not in (SGD_GRID[0], SGD_GRID[-1]) and best_mini not in (SGD_GRID[0], SGD_GRID[-1]), \
    "the best learning rate lies inside the grid (else widen it)"
assert minibatch[best_mini]["val_loss"][-1] < 0.5 * full_batch[best_full]["val_loss"][-1], \
    "for the same passes over the data, minibatches train much further"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Minibatches.** A pass over the data costs the same either way, but cut into batches of 64 it
# gives 17 updates instead of one. Each minibatch gradient is a noisy estimate of the full gradient
# (its average over random batches is the full gradient), and many noisy steps beat one exact step:
# for the same compute the minibatch runs are far ahead. The noise also shows in the loss curves of
# `fit` below, which wiggle from batch to batch.
#
# **AdamW** (Loshchilov and Hutter, 2019, built on Adam by Kingma and Ba, 2015) keeps two running
# averages per parameter, of the gradient and of its square, and divides one by the root of the other:
#
# $$m \leftarrow \beta_1 m + (1-\beta_1)\,g,\quad v \leftarrow \beta_2 v + (1-\beta_2)\,g^2,\quad
# \theta \leftarrow \theta - \eta\left(\frac{\hat m}{\sqrt{\hat v} + \epsilon} + \lambda\theta\right),$$
#
# with $\hat m, \hat v$ the averages corrected for starting at zero, $\beta_1 = 0.9$,
# $\beta_2 = 0.999$, and the weight decay $\lambda$ (0 here; the "W" says it is applied to the
# weights directly rather than added to the gradient). The ratio is about $\pm 1$ for a parameter
# whose gradient keeps its sign, whatever the gradient's scale, so every parameter moves at a speed
# set by $\eta$, not by how large its gradient happens to be. On the very first step
# $\hat m / \sqrt{\hat v} = g/|g|$ exactly: every weight moves by $\eta$. We check this, then tune
# AdamW on its own five-point grid and compare it with the tuned minibatch SGD over three seeds.

# %%
model = digits_mlp()
start = [p.detach().clone() for p in model.parameters()]
first_step = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.0)
objectives.cross_entropy(model(X_train[:64]), y_train[:64]).backward()
first_step.step()
# every weight whose gradient is not tiny (Adam adds ε = 1e-8 to the denominator, which matters only then)
moved = torch.cat([(p.detach() - s).abs().flatten()[p.grad.flatten().abs() > 1e-5]
                   for p, s in zip(model.parameters(), start)])
print(f"first AdamW step, η = 0.01: {len(moved):,} weights moved by {moved.min():.5f} to {moved.max():.5f}")
assert torch.allclose(moved, torch.full_like(moved, 0.01), rtol=1e-2), "Adam's first step is η · sign(g)"

ADAMW_GRID = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
adamw = {lr: train_loop(digits_mlp(), batches_of(64), lr, "adamw") for lr in ADAMW_GRID}
best_adamw = best_of(adamw)
assert best_adamw not in (ADAMW_GRID[0], ADAMW_GRID[-1]), "the best learning rate lies inside the grid"
SEEDS = [0, 1, 2]
seeded = {  # the chosen learning rate of each optimiser, three seeds (initialisation and batch order)
    f"SGD, η = {best_mini}": [minibatch[best_mini]] + [train_loop(digits_mlp(s), batches_of(64, s), best_mini)
                                                          for s in SEEDS[1:]],
    f"AdamW, η = {best_adamw}": [adamw[best_adamw]] + [train_loop(digits_mlp(s), batches_of(64, s), best_adamw, "adamw")
                                                       for s in SEEDS[1:]],
}
fig, ax = plt.subplots(figsize=(7, 3.6))
for k, (name, runs) in enumerate(seeded.items()):
    for i, run in enumerate(runs):
        ax.plot(range(1, EPOCHS + 1), run["val_loss"], color=f"C{k}", alpha=0.8, label=name if i == 0 else None)
ax.axhline(math.log(10), color="grey", ls="--", lw=0.8, label="uniform guess, ln 10")
ax.set(yscale="log", xlabel="epoch", ylabel="validation loss", title="minibatches of 64, three seeds each")
ax.legend(fontsize=8)
plt.show()
final = {name: [run["val_loss"][-1] for run in runs] for name, runs in seeded.items()}
for name, values in final.items():
    print(f"{name:>16}: final validation loss {sum(values) / 3:.3f}, range {min(values):.3f}–{max(values):.3f}")
(sgd_final, adamw_final) = final.values()
print("AdamW lower than SGD on every seed" if max(adamw_final) < min(sgd_final) else
      "the ranges overlap: with three seeds, no clear winner")
assert sum(adamw_final) < sum(sgd_final), "tuned AdamW ends lower on average than tuned SGD"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Each tuned the same way, AdamW ends lower on average on this small problem (the ranges above say by
# how much, and whether the seeds overlap). Its larger advantage is in Transformers, whose parameters
# (embeddings, attention, LayerNorm scales) receive gradients of very different sizes, and it is what
# every later chapter uses.
#
# **Gradient clipping** rescales the whole gradient $g$ (all parameters together) when its length
# exceeds a threshold $c$: $g \leftarrow g \cdot \min(1, c / \lVert g \rVert)$. The direction is kept,
# only the length is capped. It is a safety net against a rare huge gradient (a bad batch, a loss
# spike in a large language model) that would throw the weights far away in one step. How often does
# it act here, with `fit`'s threshold $c = 1$?

# %%
clipped = train_loop(digits_mlp(), batches_of(64), best_adamw, "adamw", grad_clip=1.0)
norms = torch.tensor(clipped["grad_norm"])

model = digits_mlp()
objectives.cross_entropy(model(X_train[:64]), y_train[:64]).backward()
gradient = torch.cat([p.grad.flatten() for p in model.parameters()])
length = nn.utils.clip_grad_norm_(model.parameters(), 0.1)  # a threshold this gradient exceeds
after = torch.cat([p.grad.flatten() for p in model.parameters()])

plt.figure(figsize=(7, 3))
plt.semilogy(norms, lw=0.8, label="gradient norm before clipping")
plt.axhline(1.0, color="C3", ls="--", label="threshold c = 1")
plt.xlabel("step")
plt.legend(fontsize=8)
plt.title(f"AdamW, η = {best_adamw}: clipped at {(norms > 1).float().mean():.0%} of the steps")
plt.show()
print(f"validation loss with clipping {clipped['val_loss'][-1]:.3f}, without {adamw[best_adamw]['val_loss'][-1]:.3f}")
assert abs(after.norm().item() - 0.1) < 1e-6 and length > 0.1, "clipping sets the length to the threshold"
assert torch.allclose(after, gradient * 0.1 / length), "and keeps the direction"
assert (norms[:50] > 1).sum() >= 0.8 * (norms > 1).sum(), "here the long gradients come in the first steps"
assert abs(clipped["val_loss"][-1] - adamw[best_adamw]["val_loss"][-1]) < max(adamw_final) - min(adamw_final), \
    "and clipping them changes the result by less than the seed spread"

# %% [markdown] slideshow={"slide_type": "subslide"}
# On this problem the gradient's norm exceeds 1 almost only in the first steps, and clipping
# changes the final loss by less than the spread between seeds. It matters when a large model meets
# a rare outlier batch; it costs almost nothing, so `fit` always does it (`grad_clip=None` turns it
# off).
#
# **Warm-up.** At step 1 the weights are random and AdamW moves every one of them by the full
# $\eta$, whatever its gradient says (checked above). With a large $\eta$ that first jump can throw
# the network far off. Warm-up raises the learning rate linearly over the first steps, so the first
# updates are small. Here at $\eta = 0.1$, above the grid's best, for three seeds:

# %%
warm = {w: [train_loop(digits_mlp(s), batches_of(64, s), 0.1, "adamw", epochs=3, warmup_steps=w) for s in SEEDS]
        for w in (0, 20)}
plt.figure(figsize=(7, 3.2))
for k, w in enumerate(warm):
    for i, run in enumerate(warm[w]):
        plt.plot(run["loss"][:40], color=f"C{k}", alpha=0.8,
                 label=("no warm-up" if w == 0 else f"warm-up over {w} steps") if i == 0 else None)
plt.axhline(math.log(10), color="grey", ls="--", lw=0.8, label="uniform guess, ln 10")
plt.xlabel("step")
plt.ylabel("training loss (batch)")
plt.legend(fontsize=8)
plt.title("AdamW at η = 0.1: the first 40 steps")
plt.show()
peaks = {w: [max(run["loss"][:40]) for run in warm[w]] for w in warm}
print("highest loss in the first 40 steps:", {("no warm-up" if w == 0 else "warm-up"): [round(v, 2) for v in p]
                                               for w, p in peaks.items()})
assert min(peaks[0]) > math.log(10) + 1, "without warm-up the loss jumps above the uniform guess"
assert max(peaks[20]) < math.log(10) + 0.1, "with warm-up it never rises above its starting value"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Cosine decay.** With a constant $\eta$, minibatch noise keeps the weights jittering around a
# minimum. Lowering $\eta$ towards the end lets them settle: `fit` follows half a cosine from the
# peak down to a tenth of it. Below, the chosen AdamW learning rate with all of `fit`'s choices
# (warm-up over 10 steps, cosine decay, clipping at 1), three seeds, against the constant rate:

# %%
recipe = [train_loop(digits_mlp(s), batches_of(64, s), best_adamw, "adamw", grad_clip=1.0, warmup_steps=10,
                     min_lr_ratio=0.1) for s in SEEDS]
constant = seeded[f"AdamW, η = {best_adamw}"]
last_epoch = len(batches_of(64))
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.4))
left.plot(constant[0]["lr"], label="constant")
left.plot(recipe[0]["lr"], label="warm-up + cosine (fit)")
left.set(xlabel="step", ylabel="learning rate")
left.legend(fontsize=8)
for k, (name, runs) in enumerate((("constant", constant), ("warm-up + cosine + clipping", recipe))):
    for i, run in enumerate(runs):
        right.plot(range(1, EPOCHS + 1), run["val_loss"], color=f"C{k}", label=name if i == 0 else None)
right.axhline(math.log(10), color="grey", ls="--", lw=0.8, label="uniform guess, ln 10")
right.set(yscale="log", xlabel="epoch", ylabel="validation loss", title="three seeds each")
right.legend(fontsize=8)
plt.show()
step_size = {name: sum(sum(run["update"][-last_epoch:]) / last_epoch for run in runs) / 3
             for name, runs in (("constant", constant), ("cosine", recipe))}
for name, runs in (("constant", constant), ("fit's schedule", recipe)):
    values = [run["val_loss"][-1] for run in runs]
    print(f"{name:>15}: final validation loss {sum(values) / 3:.3f}, range {min(values):.3f}–{max(values):.3f}")
print(f"average update in the last epoch: {step_size['constant']:.4f} with a constant rate, {step_size['cosine']:.4f} at the end of the cosine")
assert step_size["cosine"] < 0.3 * step_size["constant"], "at the end of the cosine the updates are several times smaller"
means = {name: sum(run["val_loss"][-1] for run in runs) / 3 for name, runs in (("constant", constant), ("cosine", recipe))}
spread = max(max(run["val_loss"][-1] for run in runs) - min(run["val_loss"][-1] for run in runs) for runs in (constant, recipe))
assert abs(means["cosine"] - means["constant"]) < spread, "on this problem the two end within the seed spread"

# %% [markdown] slideshow={"slide_type": "subslide"}
# The last updates are several times smaller, so the weights settle instead of jittering. What that
# is worth depends on the problem: on this small one the final validation losses of the two
# schedules lie within each other's seed spread (the ranges above). Its value grows with long runs
# of large models, where a decayed learning rate is the standard choice; `fit` uses it by default.
#
# **`fit` is this loop.** It takes the model, the batches, a loss and a length (`epochs` or
# `steps`), runs AdamW with warm-up, cosine decay and clipping, and on top moves model and data to
# the device, shows a progress bar and live loss curves, and returns the history. `supervised(loss)`
# turns a loss of `(outputs, targets)` into the `loss_fn(model, batch)` that `fit` calls. Given the
# same model, batches and settings as the first seed above, it must produce the same losses, step for
# step.

# %%
model = digits_mlp(0)
history = fit(model, batches_of(64, 0), supervised(objectives.cross_entropy), epochs=EPOCHS, lr=best_adamw,
              warmup_steps=10, val_data=[(X_val, y_val)])
val_batches = [(X_val, y_val)]
print(f"first training loss {history.train_loss[0]:.3f} (ln 10 = {math.log(10):.3f}), "
      f"final validation loss {history.val_loss[-1]:.3f}, {history.seconds:.1f} s")
assert abs(history.train_loss[0] - math.log(10)) < 0.3, "an untrained classifier starts near ln 10"
assert history.val_loss[-1] < 0.3, "the validation loss fell far below ln 10"
assert all(math.isclose(a, lr_at(step, len(history.lr), best_adamw, warmup_steps=10))
           for step, a in enumerate(history.lr)), "fit followed lr_at: warm-up, then cosine"
if device.type == "cpu":  # on a GPU, fit computes in bfloat16 and the numbers differ slightly
    assert torch.allclose(torch.tensor(history.train_loss), torch.tensor(recipe[0]["loss"]), atol=1e-5), \
        "fit = minibatches + AdamW + clipping + warm-up + cosine"

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
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

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Overfitting: when the training loss is no longer the goal
#
# The training loss measures the examples the model learns from; what we want is a low loss on
# examples it has never seen. With enough capacity and too few examples a model can *memorise* its
# training set: the training loss keeps falling towards 0 while the validation loss, after a while,
# rises again. Here the same MLP, twice as wide, learns from only 10 images per class (100 in all)
# with full-batch AdamW, and we measure both losses as it trains:

# %%
few = torch.cat([torch.nonzero(y_train == c)[:10, 0] for c in range(10)])  # 10 images of each digit
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
checked, train_curve, val_curve, val_accuracy = [], [], [], []
for step in range(301):
    loss = objectives.cross_entropy(model(X_train[few]), y_train[few])
    if step % 5 == 0:
        with torch.no_grad():
            val_logits = model(X_val)
        checked.append(step)
        train_curve.append(loss.item())
        val_curve.append(objectives.cross_entropy(val_logits, y_val).item())
        val_accuracy.append(metrics.accuracy(val_logits, y_val))
    opt.zero_grad()
    loss.backward()
    opt.step()
best = min(range(len(val_curve)), key=val_curve.__getitem__)

plt.figure(figsize=(7, 3.4))
plt.plot(checked, train_curve, label="training loss (100 images)")
plt.plot(checked, val_curve, label=f"validation loss ({len(y_val)} images)")
plt.plot(checked[best], val_curve[best], "o", color="C1")
plt.axvline(checked[best], color="grey", ls=":", label=f"lowest validation loss, step {checked[best]}")
plt.axhline(math.log(10), color="grey", ls="--", lw=0.8, label="uniform guess, ln 10")
plt.xlabel("step")
plt.ylabel("cross-entropy")
plt.ylim(0, 1.0)
plt.legend(fontsize=8)
plt.title("memorising 100 images (the first steps start near ln 10, above the plot)")
plt.show()
print(f"validation loss: lowest {val_curve[best]:.3f} at step {checked[best]}, {val_curve[-1]:.3f} at step {checked[-1]}; "
      f"training loss then {train_curve[best]:.3f} and {train_curve[-1]:.1e}; validation accuracy "
      f"{val_accuracy[best]:.1%} and {val_accuracy[-1]:.1%}")
assert train_curve[-1] < 0.01 * train_curve[best], "the training loss keeps falling ..."
assert val_curve[-1] > 1.2 * val_curve[best] and checked[best] < 100, "... while the validation loss turns up again"

# %% [markdown] slideshow={"slide_type": "subslide"}
# After the turn the model keeps pushing its training examples towards probability 1, and grows more
# confident on the validation images it gets wrong, so their loss grows; the accuracy moves less.
# The remedies: more data (compare the runs on all 1,078 training images above), stopping
# at the lowest validation loss (*early stopping*), weight decay (`fit(..., weight_decay=...)`), or
# data augmentation (chapter 05). This is why every chapter keeps a validation set apart from the
# training data, and a test set apart from both.

# %% [markdown] slideshow={"slide_type": "slide"}
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
zigzag = widgets.draw_loss_landscape(line_loss, lr=0.9 * critical_lr, ax=axes[1])
unstable = widgets.draw_loss_landscape(line_loss, lr=1.05 * critical_lr, ax=axes[2])
fig.tight_layout()
plt.show()
default = widgets.gradient_descent_path(line_loss, (-1.5, 2.5), lr=0.3, steps=40)  # where the explorer starts
assert (slow[-1] - best_line).norm() > 0.5, "a small learning rate is still far from the minimum"
assert line_loss(*zigzag[-1]) < line_loss(*zigzag[0]), "just below 2/λ_max it still descends, zig-zagging"
assert (default[-1] - best_line).norm() < 0.05, "the explorer's starting learning rate, below 2/λ_max, converges"
assert line_loss(*unstable[-1]) > line_loss(*unstable[0]), "just above 2/λ_max the loss grows"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Move the sliders (in a running notebook): find the learning rate at which the path starts to
# zig-zag, the one at which it diverges (compare with $2/\lambda_{\max}$ above), and start points
# from which a small learning rate crawls along the valley floor.

# %%
widgets.loss_landscape_explorer(line_loss)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - A layer computes $y = f(Wx + b)$; without the non-linear $f$, stacked layers collapse into one.
# - The **MSE** is the negative log-likelihood under Gaussian noise; its gradient is
#   $\frac{2}{N}(\hat y - y)$. Make predictions and targets the same shape: broadcasting silently
#   computes a different loss.
# - The **cross-entropy** is the negative log-likelihood of the labels, $\mathrm{logsumexp}(z) - z_y$,
#   computed stably by subtracting $\max z$ first; its gradient is
#   $(\mathrm{softmax}(z) - \mathrm{onehot}(y))/N$, whose size approaches 1 for a confident mistake
#   (a sigmoid with squared error gets almost none there). Class weights, label smoothing and ignored
#   positions change it in the ways `F.cross_entropy` defines.
# - **Backpropagation** is the chain rule from the loss backwards; a gradient has the shape of its
#   parameter. A finite-difference gradient check catches (and locates) a wrong backward pass. The
#   backward pass costs about two forward passes (two matrix products per layer).
# - `fit(model, batches, supervised(loss), epochs=...)` is the training loop of the whole course:
#   full-batch gradient descent plus minibatches (many more updates per pass), AdamW (every weight
#   moves at a speed set by $\eta$), gradient clipping, warm-up (no jump at the start) and cosine
#   decay (small last steps), each tuned or measured above. An MLP trained with it classifies over
#   95% of unseen handwritten digits.
# - With few examples a model memorises them: the training loss falls towards 0 while the
#   validation loss turns up. A validation set tells.
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

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button: click it only when you want to see them (or run
# `exercises.<name>.show_solution()` for one exercise).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.linear_layer_gradients, exercises.smoothed_cross_entropy_gradient,
                      exercises.lowest_smoothed_loss, exercises.learning_rate_experiment)

# %% [markdown] slideshow={"slide_type": "slide"}
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
