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
# # 05 · Contrastive pretraining: SimCLR and CLIP
#
# **Seed section 3.1 对比学习 (contrastive learning: learning better representations by contrasting
# how similar different samples are).**
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmcourse_unpublished/fmcourse/blob/v0.1.0/notebooks/05_contrastive_pretraining.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/fmcourse_unpublished/fmcourse/v0.1.0?urlpath=lab/tree/notebooks/05_contrastive_pretraining.ipynb)
#
# A language model learns from text alone by predicting the next token. Images have no next token,
# but they have something else: we know which pictures show *the same thing*. Two crops of one photo
# show the same object; a photo and its caption describe the same scene. **Contrastive learning**
# trains an encoder so that such *positive pairs* land close together in its vector space and
# everything else, the *negatives*, far apart. No labels are needed, and what the encoder learns
# transfers: the image towers of CLIP and its successors are trained this way, and they are the
# visual backbone of many foundation models.
#
# **In this notebook you will**
# - make positive pairs from one image with data augmentations (crop, rotation, blur, noise, erasing);
# - derive the InfoNCE loss, see that it is a cross-entropy over a similarity matrix, and check an
#   implementation written from its formula against the package's;
# - see what the temperature does, with a slider;
# - pretrain an encoder with SimCLR on handwritten digits *without their labels*, and look at what it
#   learned: embedding maps, linear probes and nearest neighbours against raw pixels and the same
#   encoder untrained;
# - train a CLIP-style image and text encoder on a world of shapes and captions, classify images it has
#   never seen from text alone (zero-shot), and search images with text and text with images.
#
# **Time on a laptop CPU:** 19 s for the whole notebook.

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
import copy
import itertools
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from fmcourse import viz, widgets
from fmcourse.data import Augment, encode_captions, load_digits_split, make_scenes
from fmcourse.data.shapes import ATTRIBUTES, VOCAB, caption
from fmcourse.finetune import extract_features, knn_predict, linear_probe
from fmcourse.metrics import accuracy
from fmcourse.models import CLIP, ConvEncoder, MLPEncoder, SimCLR, TextEncoder
from fmcourse.objectives import clip_loss, cosine_similarities, info_nce, nt_xent
from fmcourse.train import fit

env.print_report()
device = env.get_device()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Positive pairs from one image: data augmentation
#
# Our first data set is scikit-learn's handwritten digits: 1,797 images of 8×8 grey pixels, with
# labels 0–9 that we will hide from the model and use only to evaluate it at the end. We keep 500
# images aside as a test set.
#
# Where do positive pairs come from without labels? From the image itself: a **data augmentation**
# changes an image in ways that should not change what it shows. Two random augmentations of one
# image, two *views*, form a positive pair; views of other images are negatives. The choice of
# augmentations decides what the encoder must ignore, and so what it learns: a digit shifted by a
# pixel, turned by 15°, blurred or partly rubbed out is still the same digit.
#
# `fmcourse.data.Augment` draws all of these for a whole batch at once, in torch, on the device
# the images live on. The random amounts come from a `torch.Generator`: the same seed gives the same
# views.

# %%
env.seed_everything(0)
images, labels, train_idx, test_idx = load_digits_split(test_size=500)   # (1797, 1, 8, 8) in [0, 1]; 0..9
x_train, y_train = images[train_idx].to(device), labels[train_idx]         # 1297 images
x_test, y_test = images[test_idx].to(device), labels[test_idx]             # 500 images
print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}")

no_change = dict(crop_scale=(1.0, 1.0), max_rotation=0, blur_p=0, noise_std=0, erase_p=0)
one_at_a_time = {
    "crop": Augment(**{**no_change, "crop_scale": (0.4, 0.7)}),
    "rotation": Augment(**{**no_change, "max_rotation": 30}),
    "blur": Augment(**{**no_change, "blur_p": 1.0, "blur_sigma": (0.6, 1.0)}),
    "noise": Augment(**{**no_change, "noise_std": 0.15}),
    "erasing": Augment(**{**no_change, "erase_p": 1.0, "erase_area": (0.15, 0.3)}),
}
augment = Augment(crop_scale=(0.5, 1.0), max_rotation=15, blur_p=0.5, blur_sigma=(0.2, 0.8), noise_std=0.1,
                  erase_p=0.25, erase_area=(0.05, 0.2))

g = torch.Generator().manual_seed(0)
digit = x_train[:1].expand(6, -1, -1, -1)                                   # six copies of one image
rows = [digit] + [aug(digit, g) for aug in one_at_a_time.values()] + [augment(digit, g)]
names = ["original"] + list(one_at_a_time) + ["all together"]
viz.image_grid(torch.cat(rows), titles=[name if column == 0 else "" for name in names for column in range(6)],
               ncols=6, size=1.0)
plt.show()

view = augment(x_train[:64], torch.Generator().manual_seed(1))
assert view.shape == x_train[:64].shape and view.dtype == x_train.dtype and view.device == x_train.device
assert torch.equal(view, augment(x_train[:64], torch.Generator().manual_seed(1))), "same seed, same views"
assert not torch.equal(view, augment(x_train[:64], g)), "a new draw gives new views"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Are two views of one digit already close in pixel space? Take 256 images, two views of each, and
# ask, for each view in the first set, which view in the second set is most similar (cosine
# similarity of the raw pixels). If pixels were a good representation, the answer would be its own
# partner. This *view matching* is exactly the task the contrastive loss below sets the encoder.

# %%
def view_matching(encode, x: torch.Tensor, seed: int = 2) -> float:
    """Fraction of images whose first view is most similar to its own second view (among all of x's)."""
    g = torch.Generator().manual_seed(seed)
    a, b = encode(augment(x, g)), encode(augment(x, g))
    return (cosine_similarities(a, b).argmax(1) == torch.arange(len(x), device=a.device)).float().mean().item()


pixel_matching = view_matching(lambda v: v.flatten(1), x_test[:256])
print(f"raw pixels: a view's nearest view is its own partner for {pixel_matching:.0%} of 256 images "
      f"(chance {1 / 256:.1%})")
assert pixel_matching < 0.9, "augmentations move images far in pixel space: there is something to learn"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. The InfoNCE loss
#
# Take a batch of $N$ pairs: *queries* $q_1, \dots, q_N$ and *keys* $k_1, \dots, k_N$, where $k_i$ is
# the positive partner of $q_i$ and the other $N-1$ keys are its negatives. Measure closeness with
# the cosine similarity $s_{ij} = \frac{q_i \cdot k_j}{\lVert q_i\rVert\,\lVert k_j\rVert} \in [-1, 1]$,
# divided by a **temperature** $\tau > 0$. Asking each query to pick out its partner among the $N$ keys
# gives the InfoNCE loss (van den Oord et al., 2018):
#
# $$\mathcal{L}_i = -\log \frac{e^{s_{ii}/\tau}}{\sum_{j=1}^{N} e^{s_{ij}/\tau}}, \qquad
# \mathcal{L} = \frac{1}{N} \sum_{i=1}^{N} \mathcal{L}_i .$$
#
# Read it as a classifier: row $i$ of the matrix $S/\tau$ holds the logits of an $N$-way
# classification whose right answer is class $i$. So InfoNCE is the **cross-entropy of the
# similarity matrix with targets $0, 1, \dots, N-1$**: the diagonal. The numerator pulls the pair
# together, the denominator pushes the negatives away. A model that cannot tell keys apart scores
# $\log N$; the loss also bounds the mutual information between the two views from below,
# $I(q; k) \ge \log N - \mathcal{L}$, which is one reason large batches help.
#
# Below, the formula written with loops, the cross-entropy over the matrix, and the package's
# `info_nce` agree.

# %%
g = torch.Generator().manual_seed(0)
N, D, tau = 6, 5, 0.2
q, k = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)


def cos(a, b):
    return (a @ b / (a.norm() * b.norm())).item()


by_loops = 0.0
for i in range(N):  # the formula, one term at a time
    denominator = sum(math.exp(cos(q[i], k[j]) / tau) for j in range(N))
    by_loops += -math.log(math.exp(cos(q[i], k[i]) / tau) / denominator) / N

S = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T                          # (N, N) cosine similarities
as_cross_entropy = F.cross_entropy(S / tau, torch.arange(N))                # row i's answer: column i

fig, ax = plt.subplots(figsize=(4.2, 3.2))
fig.colorbar(ax.imshow(S, cmap="coolwarm", vmin=-1, vmax=1), ax=ax, label="cosine similarity")
ax.set(xlabel="key j", ylabel="query i", title="similarities; targets on the diagonal")
plt.show()
print(f"loops {by_loops:.6f}   cross-entropy {as_cross_entropy.item():.6f}   "
      f"fmcourse {info_nce(q, k, tau).item():.6f}   (log N = {math.log(N):.4f})")
assert math.isclose(by_loops, as_cross_entropy.item(), rel_tol=1e-5)
assert torch.allclose(info_nce(q, k, tau), as_cross_entropy, atol=1e-6)

# %% [markdown] slideshow={"slide_type": "subslide"}
# **SimCLR's version, NT-Xent.** SimCLR (Chen et al., 2020) makes two views of each of $N$ images,
# $2N$ views in all, and treats *every* view as an anchor: its positive is the other view of the same
# image, its negatives are the remaining $2N-2$ views. The loss of one anchor is InfoNCE over its
# $2N-1$ candidates (itself left out), and NT-Xent ("normalised temperature-scaled cross-entropy")
# averages the $2N$ anchors. Because every candidate plays the same role, shuffling the batch (the
# same permutation for both views) cannot change the loss.

# %%
z1, z2 = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)
z = torch.cat([z1, z2])                                                     # (2N, D): anchors 0..2N-1
loop_total = 0.0
for a in range(2 * N):
    partner = (a + N) % (2 * N)
    candidates = [b for b in range(2 * N) if b != a]
    denominator = sum(math.exp(cos(z[a], z[b]) / tau) for b in candidates)
    loop_total += -math.log(math.exp(cos(z[a], z[partner]) / tau) / denominator) / (2 * N)

shuffle = torch.randperm(N, generator=g)
print(f"NT-Xent: loops {loop_total:.6f}   fmcourse {nt_xent(z1, z2, tau).item():.6f}   "
      f"shuffled batch {nt_xent(z1[shuffle], z2[shuffle], tau).item():.6f}")
assert math.isclose(loop_total, nt_xent(z1, z2, tau).item(), rel_tol=1e-5)
assert torch.allclose(nt_xent(z1[shuffle], z2[shuffle], tau), nt_xent(z1, z2, tau), atol=1e-6)

# %% [markdown] slideshow={"slide_type": "subslide"}
# The losses refuse input they cannot mean: one pair has no negatives to contrast with (its loss
# would be 0 whatever the model does), the two sides of a pair must come in equal numbers, and the
# temperature divides, so it must be positive.

# %%
for bad in (lambda: info_nce(q[:1], k[:1]), lambda: nt_xent(z1, z2[:4]), lambda: info_nce(q, k, temperature=0.0)):
    try:
        bad()
    except ValueError as error:
        print("ValueError:", error)
    else:
        raise AssertionError("bad input was accepted")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. The temperature
#
# Dividing by $\tau$ before the softmax sharpens or flattens it. With anchor similarities $s_j$, the
# probability the loss gives candidate $j$ is $p_j = e^{s_j/\tau} / \sum_k e^{s_k/\tau}$, and the
# gradient of $\mathcal{L} = -\log p_{+}$ with respect to a negative's similarity is
#
# $$\frac{\partial \mathcal{L}}{\partial s_j} = \frac{p_j}{\tau} .$$
#
# So each negative is pushed away in proportion to its probability. A **large** $\tau$ spreads the
# probability evenly: all negatives are pushed about equally, and the loss hardly rises above
# $\log(\text{number of candidates})$. A **small** $\tau$ concentrates it on the *hard negatives*, those
# most similar to the anchor, which is where the information is, but too small a $\tau$ chases
# a few (possibly mislabelled) negatives and trains unstably. SimCLR uses $\tau \approx 0.1$–$0.5$;
# CLIP learns $\tau$, starting at 0.07.
#
# Move the slider (in a live kernel) to see one anchor's softmax: the green bar is its positive, the
# others its negatives, labelled with their similarities.

# %%
widgets.temperature_explorer()        # run headless (as in the tests), it draws the default once

# %%
similarities = torch.tensor(widgets.DEFAULT_SIMILARITIES, requires_grad=True)
temperatures = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
hardest_share, entropies = [], []
for t in temperatures:
    p = torch.softmax(similarities / t, dim=0)
    (grad,) = torch.autograd.grad(-p[0].log(), similarities)               # grad = p_j / t on negatives
    assert torch.allclose(grad[1:], p[1:].detach() / t, atol=1e-6)
    hardest_share.append((grad[1] / grad[1:].sum()).item())               # push on the hardest negative
    entropies.append(-(p * p.log()).sum().item())

fig, axes = plt.subplots(1, 2, figsize=(10, 3))
axes[0].plot(temperatures, hardest_share, "o-")
axes[0].axhline(1 / (len(similarities) - 1), color="grey", lw=0.8, label="equal shares")
axes[0].set(xscale="log", ylim=(0, 1), xlabel="temperature", ylabel="share of the push",
            title="the hardest negative's share")
axes[0].legend()
axes[1].plot(temperatures, entropies, "o-")
axes[1].axhline(math.log(len(similarities)), color="grey", lw=0.8, label="uniform")
axes[1].set(xscale="log", xlabel="temperature", ylabel="entropy (nats)", title="how spread the softmax is")
axes[1].legend()
fig.tight_layout()
plt.show()
assert all(a > b for a, b in zip(hardest_share, hardest_share[1:])), "colder: more of the push on the hardest negative"
assert all(a < b for a, b in zip(entropies, entropies[1:])), "colder: a sharper softmax"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. SimCLR: pretraining an encoder without labels
#
# The model has two parts:
#
# - an **encoder** $f$ that turns an image into the *features* $h = f(x)$ we keep: here a small
#   multilayer perceptron on the 64 pixels, with batch normalisation, $h \in \mathbb{R}^{128}$;
# - a **projection head** $g$, a two-layer MLP, that maps $h$ to $z = g(h) \in \mathbb{R}^{64}$ where
#   NT-Xent compares the views. The head is thrown away afterwards: the loss makes $z$ ignore
#   everything the augmentations change, and the head absorbs much of that loss of information, so
#   the features $h$ one layer below stay richer.
#
# Each training step draws 256 images (the labels stay unused), makes two views of each, and takes a
# gradient step on NT-Xent with $\tau = 0.5$. We keep an untouched copy of the encoder as it was before
# training, to compare with. At the start the loss is near $\log(2N-1) = \log 511 \approx 6.24$, the
# loss of an encoder that cannot tell views apart.

# %%
batch_size = 256


def pretrain_simclr(augmentation: Augment, seed: int = 0, plot: bool = True) -> tuple:
    """SimCLR on the training digits (no labels) with ``augmentation``: the trained model, a copy of its
    encoder before training, and the training history. ``seed`` sets the initial weights and the views."""
    env.seed_everything(seed)
    simclr = SimCLR(MLPEncoder((1, 8, 8), hidden=256, dim=128), projection_dim=64, temperature=0.5)
    before = copy.deepcopy(simclr.encoder).to(device).eval()                 # the same network, never trained
    views = torch.Generator().manual_seed(1 + 1000 * seed)

    def two_views():
        """A batch of 256 training images (no labels), two random views of each, on the device."""
        chosen = torch.randint(len(x_train), (batch_size,), generator=views)
        x = x_train[chosen.to(device)]
        return augmentation(x, views), augmentation(x, views)

    history = fit(simclr, two_views, lambda model, batch: model.loss(*batch), steps=200, lr=5e-3, warmup_steps=20,
                  plot=plot)
    return simclr, before, history


simclr, untrained, history = pretrain_simclr(augment)
encoder = simclr.encoder
start, end = history.train_loss[0], history.smoothed_train_loss()[-1]
print(f"NT-Xent {start:.2f} → {end:.2f} in {history.seconds:.1f} s (chance level {math.log(2 * batch_size - 1):.2f})")
assert end < math.log(2 * batch_size - 1) - 1, "the encoder learned to tell the views of different images apart"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. What did the encoder learn?
#
# First, the task it was trained on: view matching on *test* images it never saw. Then a picture:
# the features of the 500 test images projected onto their two main directions (PCA), coloured by
# the digit each shows. The encoder never saw a label; if digits of one class cluster, it found that
# structure by itself.

# %%
with torch.no_grad():  # both in eval mode: fit leaves the trained encoder so, and the copy was set so above
    matching = {"raw pixels": pixel_matching, "untrained encoder": view_matching(untrained, x_test[:256]),
                "SimCLR encoder": view_matching(encoder, x_test[:256])}
print("view matching on 256 test images:", ", ".join(f"{name} {value:.0%}" for name, value in matching.items()))
features = {"raw pixels": (x_train.flatten(1), x_test.flatten(1)),
            "untrained encoder": (extract_features(untrained, x_train), extract_features(untrained, x_test)),
            "SimCLR encoder": (extract_features(encoder, x_train), extract_features(encoder, x_test))}

fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
for ax, (name, (_, test_features)) in zip(axes, features.items()):
    viz.embedding_map(test_features, y_test, ax=ax, title=f"{name}: view matching {matching[name]:.0%}")
fig.tight_layout()
plt.show()


def map_neighbours_agree(f: torch.Tensor, labels: torch.Tensor, k: int = 5) -> float:
    """How well a 2-D map separates the classes: the share of points whose k nearest points on the map
    (leaving the point itself out) mostly carry its own label."""
    centred = f.double() - f.double().mean(0)
    points = centred @ torch.linalg.svd(centred, full_matrices=False).Vh[:2].T  # the map's (N, 2) coordinates
    distances = torch.cdist(points, points).fill_diagonal_(float("inf"))
    votes = labels[distances.topk(k, largest=False).indices.cpu()]                # (N, k)
    return (votes.mode(dim=1).values == labels).float().mean().item()


on_map = {name: map_neighbours_agree(test_features.cpu(), y_test) for name, (_, test_features) in features.items()}
print("the 5 nearest points on the map mostly share the label:", ", ".join(f"{n} {v:.0%}" for n, v in on_map.items()))
assert matching["SimCLR encoder"] > max(matching["raw pixels"], matching["untrained encoder"]) + 0.1
assert on_map["SimCLR encoder"] > on_map["untrained encoder"] + 0.05 and on_map["SimCLR encoder"] > on_map["raw pixels"]

# %% [markdown] slideshow={"slide_type": "subslide"}
# How to read the three maps. Each shows only two of the many directions of its features (64 for
# the pixels, 128 for the encoders): the two along which the 500 test images vary most, with the
# share of the variance they keep on the axes. In **raw pixels** a few digits with a shape of their
# own (0, 4 and 6, for example) already gather at the edges, while most of the others pile up in the
# middle: the directions of greatest pixel variance are only partly about which digit it is. The
# **untrained encoder** is a random function of the pixels; it keeps much of their structure but
# blurs it (its map separates the digits less well than the pixels' map), and it matches views no
# better than the pixels do. After **SimCLR**, the two main directions keep more of the variance,
# and some digits (1, 4, 0 for example) form tighter groups of their own. The count above puts a
# number on the eye's impression: among each image's 5 nearest points *on the map*, its own digit
# is the majority a little more often than on the pixels' map, and clearly more often than on the
# untrained encoder's. Several digits still overlap in the middle. That does not mean the encoder
# mixes them up: two directions out of 128 cannot show everything, and a map is a picture, not a
# measurement; the next section measures with all the directions.
#
# ## 6. Measuring features: linear probes and nearest neighbours
#
# A picture is not a measurement. The standard tests of a pretrained encoder keep it **frozen** and
# put the simplest possible classifier on its features:
#
# - a **linear probe**: multinomial logistic regression on the (standardised) features,
#   $\min_{W, b} \frac{1}{n}\sum_i \mathrm{CE}(W h_i + b, y_i) + \frac{\lambda}{2}\lVert W\rVert^2$.
#   The objective is convex, so `fmcourse.finetune.linear_probe` solves it to convergence with L-BFGS
#   (no learning rate, no seed), and the tests check that it equals scikit-learn's
#   `LogisticRegression`. It asks: *is the class linearly readable from the features?*
# - **$k$-nearest neighbours**: a test image gets the majority label of the $k = 5$ labelled images
#   with the most similar features (cosine). It asks: *are images of one class close together?*
#
# The point of pretraining is to need few labels, so we give the probes only a few labelled images
# per class (drawn three times at random, results averaged), and also all 1,297, and compare three
# representations: raw pixels, the encoder before training, and the encoder after SimCLR.

# %%
def labelled_subset(per_class: int, seed: int) -> torch.Tensor:
    """Indices of `per_class` random training images of each digit."""
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for digit in range(10):
        of_digit = torch.nonzero(y_train == digit).flatten()
        chosen.append(of_digit[torch.randperm(len(of_digit), generator=g)[:per_class]])
    return torch.cat(chosen)


budgets = [2, 5, 20, None]                                                  # labelled images per class; None: all
probe_accuracy = {name: {"linear": [], "kNN": []} for name in features}
for name, (train_features, test_features) in features.items():
    for per_class in budgets:
        subsets = [labelled_subset(per_class, seed) for seed in range(3)] if per_class else [torch.arange(len(y_train))]
        linear, knn = [], []
        for chosen in subsets:
            f, y = train_features[chosen.to(device)], y_train[chosen]
            linear.append(accuracy(linear_probe(f, y)(test_features), y_test))
            knn.append(accuracy(knn_predict(f, y, test_features, k=5), y_test))
        probe_accuracy[name]["linear"].append(sum(linear) / len(linear))
        probe_accuracy[name]["kNN"].append(sum(knn) / len(knn))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
ticks = [str(b) if b else f"all (~{len(y_train) // 10})" for b in budgets]
for ax, kind in zip(axes, ("linear", "kNN")):
    for name, style in zip(features, ("s:", "o--", "o-")):
        ax.plot(ticks, probe_accuracy[name][kind], style, label=name)
    ax.set(xlabel="labelled images per class", title=f"{kind} probe on frozen features, 500 test images")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("test accuracy (chance: 0.1)")
axes[0].legend()
fig.tight_layout()
plt.show()
for name in features:
    print(f"{name:>18}: 5 labels per class: linear {probe_accuracy[name]['linear'][1]:.1%}, "
          f"kNN {probe_accuracy[name]['kNN'][1]:.1%};  all labels: linear {probe_accuracy[name]['linear'][-1]:.1%}")

few = {name: probe_accuracy[name]["linear"][1] for name in features}     # 5 labels per class
assert few["SimCLR encoder"] > few["untrained encoder"] + 0.04, "pretraining beats the same encoder untrained"
assert few["SimCLR encoder"] > few["raw pixels"] + 0.03, "... and raw pixels"
assert probe_accuracy["SimCLR encoder"]["kNN"][1] > probe_accuracy["untrained encoder"]["kNN"][1] + 0.04
knn_all = {name: probe_accuracy[name]["kNN"][-1] for name in features}
print(f"kNN with all labels: raw pixels {knn_all['raw pixels']:.1%}, SimCLR encoder {knn_all['SimCLR encoder']:.1%}")
assert knn_all["raw pixels"] > knn_all["SimCLR encoder"], "with every label, neighbours in pixel space win"

# %% [markdown] slideshow={"slide_type": "subslide"}
# With five labels per class, the SimCLR features are read far better than raw pixels or random
# features of the same network: the encoder learned, without a single label, that a digit stays the
# same digit when moved, turned or smudged, which is much of what telling digits apart needs. With
# all the labels the gap shrinks: 8×8 digits are an easy problem, and enough labels make up for a
# weaker representation. This is the promise of seed section 2.3 in miniature: pretraining pays most
# where labels are scarce.
#
# And where pretraining does not pay: with all ~130 labels per class, the nearest neighbours in
# **raw pixel** space are right more often than the nearest neighbours in SimCLR's space (the
# numbers above; the ablation below finds the same for each of its 24 pretraining runs). With
# that many labelled images, almost every test digit has a near copy, written in much the same way,
# among the labelled ones, and pixels find it. SimCLR's features were trained to ignore small
# shifts, turns and smudges; that helps when few examples must stand for a whole class, and costs a
# little when there is an example for nearly everything.
#
# ### Why throw the projection head away?
#
# Section 4 claimed that the features $h$ below the head keep more than the projections $z = g(h)$
# on which the loss was computed. Measure it: the same probes on $z$ as on $h$.

# %%
with torch.no_grad():
    z_train, z_test = simclr.projection(features["SimCLR encoder"][0]), simclr.projection(features["SimCLR encoder"][1])
head_accuracy = {"h (encoder)": [], "z (projection head)": []}
for name, (train_features, test_features) in (("h (encoder)", features["SimCLR encoder"]),
                                              ("z (projection head)", (z_train, z_test))):
    for per_class in (5, None):
        subsets = [labelled_subset(per_class, seed) for seed in range(3)] if per_class else [torch.arange(len(y_train))]
        head_accuracy[name].append(sum(accuracy(linear_probe(train_features[c.to(device)], y_train[c])(test_features),
                                                y_test) for c in subsets) / len(subsets))
for name, (few_labels, all_labels) in head_accuracy.items():
    print(f"linear probe on {name:>19}: 5 labels per class {few_labels:.1%}, all labels {all_labels:.1%}")
assert head_accuracy["h (encoder)"][0] > head_accuracy["z (projection head)"][0], "h keeps more than z"

# %% [markdown] slideshow={"slide_type": "subslide"}
# The probe reads $h$ better than $z$, but on these digits, with these augmentations, the difference
# is small: one to two points, with five labels per class or with all of them. The next experiment
# shows when it grows.
#
# ### Which augmentations matter? An ablation
#
# The augmentations decide what the encoder learns to ignore. Which of the five does the work? An
# **ablation** takes the recipe apart: pretrain again with one augmentation left out, with the crop
# alone, and with none at all (the two views are then the same image), and score each encoder the
# same way, by the linear probe with 5 labels per class (three draws of the labelled images,
# averaged). Pretraining has its own randomness, so each setting is pretrained with 3 seeds, and
# the plot shows the mean and the range. That is 24 pretraining runs, about two minutes, so
# `bench/simclr_augmentations.py` makes them once and ships its results with the package
# (`fmcourse/shipped/simclr_augmentations.json`); here we load them and rerun one setting live.

# %%
import json

from fmcourse import shipped

ablation = json.loads(shipped.path("simclr_augmentations.json").read_text(encoding="utf-8"))
rows = ablation["settings"]

# The live part: the chapter's own run is seed 0 of "all five"; rerun seed 0 of "none" as well.
none_augment = Augment(**{k: tuple(v) if isinstance(v, list) else v for k, v in rows["none"]["augment"].items()})
none_simclr, _, _ = pretrain_simclr(none_augment, seed=0, plot=False)
none_h = (extract_features(none_simclr.encoder, x_train), extract_features(none_simclr.encoder, x_test))
with torch.no_grad():
    none_z = tuple(none_simclr.projection(f) for f in none_h)
live = {}
for name, (train_features, test_features) in (("h", none_h), ("z", none_z)):
    subsets = [labelled_subset(5, seed) for seed in range(3)]
    live[name] = sum(accuracy(linear_probe(train_features[c.to(device)], y_train[c])(test_features), y_test)
                     for c in subsets) / len(subsets)

names = list(rows)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
for ax, kind, title in ((axes[0], "h", "probe on h (encoder)"), (axes[1], "z", "probe on z (projection head)")):
    means = [sum(rows[n][kind]) / len(rows[n][kind]) for n in names]
    low = [m - min(rows[n][kind]) for m, n in zip(means, names)]
    high = [max(rows[n][kind]) - m for m, n in zip(means, names)]
    ax.barh(names, means, xerr=[low, high], color=["C2"] + ["C0"] * (len(names) - 1), capsize=3,
            label="mean of 3 seeds, range")
    ax.scatter([few["SimCLR encoder"] if kind == "h" else head_accuracy["z (projection head)"][0], live[kind]],
               ["all five", "none"], color="black", marker="x", zorder=3, label="run live here (seed 0)")
    ax.axvline(few["raw pixels"], color="C1", ls="--", label="raw pixels")
    ax.axvline(few["untrained encoder"], color="C3", ls="-.", label="untrained encoder")
    ax.set(xlim=(0.4, 0.96), xlabel="test accuracy (chance: 0.1)", title=title)
    ax.grid(axis="x", alpha=0.3)
axes[0].invert_yaxis()
fig.suptitle("linear probe with 5 labels per class on encoders pretrained with each set of augmentations")
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncols=4, fontsize=9, bbox_to_anchor=(0.5, -0.08))
fig.tight_layout()
plt.show()
print(f"live, seed 0: all five h {few['SimCLR encoder']:.1%}, none h {live['h']:.1%} / z {live['z']:.1%}")
print(f"bench, seed 0: all five h {rows['all five']['h'][0]:.1%}, none h {rows['none']['h'][0]:.1%} / "
      f"z {rows['none']['z'][0]:.1%}")
for name, value in (("all five", few["SimCLR encoder"]), ("none", live["h"])):
    assert abs(value - rows[name]["h"][0]) < 0.02, f"the live run of {name!r} repeats the bench's seed 0"
mean = {n: sum(rows[n]["h"]) / len(rows[n]["h"]) for n in names}
assert all(mean[n] > mean["all five"] - 0.05 for n in names if n.startswith("without")), "no single one is vital"
assert mean["crop only"] < mean["all five"] and mean["none"] < few["raw pixels"] - 0.05
assert all(sum(rows[n]["h"]) >= sum(rows[n]["z"]) for n in names), "h is read better than z in every setting"
best_knn = max(max(rows[n]["knn_all"]) for n in names)
print(f"kNN with all labels: raw pixels {ablation['raw_pixels']['knn_all']:.1%}, the best of the 24 SimCLR "
      f"encoders {best_knn:.1%}")
assert best_knn < ablation["raw_pixels"]["knn_all"], "with every label, pixel neighbours beat every run"
assert live["h"] < few["raw pixels"], "without augmentations, SimCLR learns less than the pixels hold"

# %% [markdown] slideshow={"slide_type": "subslide"}
# What the ablation shows (the numbers are in `bench/results/simclr_augmentations.md`):
#
# - **No single augmentation is vital.** Leaving one out costs at most a few points: rotation the
#   most (its range no longer overlaps that of all five), the crop and the noise about a point,
#   blur and erasing nothing measurable (without erasing the probe is even slightly better, by
#   less than a point). The augmentations are partly redundant: each makes two views of one digit
#   differ, and the crop alone already gets most of the way.
# - **Without augmentations, contrastive learning fails.** The two views are then the same image,
#   the task is solved by any detail of the pixels, and the encoder learns nothing about digits:
#   its features are read *worse* than raw pixels or the untrained network. The positive pairs
#   are the whole teaching signal; the loss only says "these two are the same thing".
# - **The projection head matters most where the loss pulls hardest on what the task needs.** On
#   $z$ the probe is never better than on $h$: about a point lower with all five augmentations and
#   twenty lower without any. What the loss makes $z$ ignore or overfit, $h$, one layer below,
#   still keeps.
#
# On photographs, SimCLR's authors found one composition essential, random crops with colour
# distortion; on grey 8×8 digits there is no colour, and a small turn matters most. Which changes a
# model should ignore depends on the data and on the tasks to come: that choice is where the
# knowledge goes into self-supervised learning.
#
#
# ## 7. CLIP: images and text in one space
#
# SimCLR's positives come from augmentations we chose. CLIP (Radford et al., 2021) takes them from
# the world: 400 million images with the captions people wrote for them. Two encoders, one for
# images and one for text, map each into a shared space, and the **symmetric** contrastive loss asks
# each image to pick its caption among the batch's $N$ captions and each caption to pick its image:
#
# $$\mathcal{L}_{\text{CLIP}} = \tfrac{1}{2}\left[\mathrm{InfoNCE}(\text{images} \to \text{texts})
# + \mathrm{InfoNCE}(\text{texts} \to \text{images})\right],$$
#
# the cross-entropy of the rows and of the columns of one $N \times N$ similarity matrix. The
# temperature is a parameter the model learns.

# %%
g = torch.Generator().manual_seed(3)
images_emb, texts_emb = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)
S = F.normalize(images_emb, dim=1) @ F.normalize(texts_emb, dim=1).T          # (N, N): image i, text j
rows, columns = F.cross_entropy(S / tau, torch.arange(N)), F.cross_entropy(S.T / tau, torch.arange(N))
print(f"image → text {rows.item():.4f}, text → image {columns.item():.4f}, "
      f"CLIP loss {clip_loss(images_emb, texts_emb, tau).item():.4f}")
assert torch.allclose(clip_loss(images_emb, texts_emb, tau), (rows + columns) / 2, atol=1e-6)

# %% [markdown] slideshow={"slide_type": "subslide"}
# Our stand-in for the web is `fmcourse.data.make_scenes`, a world of 16×16 images with one shape
# each, in one of 4 shapes, 5 colours, 2 sizes and 4 positions, and the caption that says exactly
# that: 160 possible captions. To test whether the model *composes* words rather than memorising
# captions, two combinations never appear in training: blue triangles and yellow circles.

# %%
colours = tuple(ATTRIBUTES["colour"])
held_out = [("triangle", "blue"), ("circle", "yellow")]


def unseen_combination(scenes) -> torch.Tensor:
    """(N,) bool: True where a scene's shape and colour are one of the held-out combinations."""
    mask = torch.zeros(len(scenes), dtype=torch.bool)
    for shape, colour in held_out:
        mask |= (scenes.shape == ATTRIBUTES["shape"].index(shape)) & (scenes.colour == colours.index(colour))
    return mask


world = make_scenes(5000, seed=0)
train_scenes = world[~unseen_combination(world)]
test_scenes = make_scenes(1000, seed=1)                                     # new scenes, every combination
print(f"{len(train_scenes)} training scenes, {len(test_scenes)} test scenes; e.g. {train_scenes.captions[0]!r}")
fig = viz.image_grid(train_scenes.images[:16], ncols=8, size=1.3,
                     titles=[c.removeprefix("a ").replace(" at the ", "\n") for c in train_scenes.captions[:16]])
plt.show()
assert not unseen_combination(train_scenes).any() and unseen_combination(test_scenes).sum() > 50

# %% [markdown] slideshow={"slide_type": "subslide"}
# The image encoder is a small CNN (two stages of convolution and pooling; its features are the
# flattened last map, so they keep *where* the shape is); the text encoder is the chapter-03
# Transformer encoder with one block, its outputs averaged over the words. Each has a linear
# projection into a 64-dimensional shared space. Batches of 128 (image, caption) pairs.

# %%
env.seed_everything(0)
clip = CLIP(ConvEncoder(3, 16, widths=(8, 16), dim=128),
            TextEncoder(len(VOCAB), context_length=8, d_model=32, n_layer=1, n_head=2),
            embed_dim=64, temperature=0.07)
scene_images = train_scenes.images.to(device)
caption_ids, caption_is_token = (t.to(device) for t in encode_captions(train_scenes.captions))
pairs = torch.Generator().manual_seed(0)


def caption_batch():
    chosen = torch.randint(len(train_scenes), (128,), generator=pairs).to(device)
    return scene_images[chosen], caption_ids[chosen], caption_is_token[chosen]


history = fit(clip, caption_batch, lambda model, batch: model.loss(*batch), steps=300, lr=4e-3, warmup_steps=20)
print(f"CLIP loss {history.train_loss[0]:.2f} → {history.smoothed_train_loss()[-1]:.2f} in {history.seconds:.1f} s; "
      f"learned temperature {clip.temperature.item():.3f}")
assert history.smoothed_train_loss()[-1] < math.log(128) - 3, "images and captions found each other"

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Zero-shot classification
#
# To classify with CLIP you need no classifier, only words. Write a text for each class and embed
# it; the softmax of an image's similarities to these texts, over the learned temperature, is a
# probability over the classes, and the most similar text wins.
#
# Our captions always say all four things, so a question such as "which shape?" has many texts per
# class: the 40 captions that name a circle, in every colour, size and position. The probability
# that an image's caption names a circle is the sum of the probabilities of those 40 captions;
# `CLIP.zero_shot_logits` computes it for every class (as log-probabilities). Real CLIP, whose
# prompts for one class differ only in wording ("a photo of a {}.", "a blurry photo of a {}."),
# averages their embeddings instead. The model never trained on a classification task, and the
# 1,000 test scenes are new images.

# %%
all_captions = [caption(*values) for values in itertools.product(*ATTRIBUTES.values())]   # the 160 captions
prompt_ids, prompt_is_token = (t.to(device) for t in encode_captions(all_captions))
test_images = test_scenes.images.to(device)
zero_shot = {}
for name, values in ATTRIBUTES.items():
    prompt_class = torch.tensor([values.index(dict(zip(ATTRIBUTES, combo))[name])
                                 for combo in itertools.product(*ATTRIBUTES.values())])
    log_p = clip.zero_shot_logits(test_images, prompt_ids, prompt_is_token, prompt_class)   # (1000, classes)
    zero_shot[name] = (accuracy(log_p, test_scenes.attribute(name)), 1 / len(values))

fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(list(zero_shot), [a for a, _ in zero_shot.values()], label="zero-shot accuracy")
ax.scatter(list(zero_shot), [c for _, c in zero_shot.values()], color="black", marker="_", s=800, label="chance")
ax.set(ylim=(0, 1.25), yticks=[0, 0.25, 0.5, 0.75, 1], ylabel="accuracy on 1,000 new scenes",
       title="classifying by description alone")
ax.legend(loc="upper center", ncols=2)
plt.show()
print(", ".join(f"{name} {a:.1%} (chance {c:.0%})" for name, (a, c) in zero_shot.items()))
for name, (acc, chance) in zero_shot.items():
    assert acc > chance + (1 - chance) / 2, f"{name}: zero-shot closes at least half the gap from chance to perfect"

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Retrieval, both ways
#
# The same similarity matrix answers two search questions. **Image → text**: for each test image,
# the most similar of the 160 captions (green when exactly right). **Text → image**: for a caption,
# the most similar test images. The second caption below describes a combination the model never saw.

# %%
with torch.no_grad():
    image_embeddings = clip.image_embeddings(test_images)                      # (1000, 64)
    caption_embeddings = clip.text_embeddings(prompt_ids, prompt_is_token)    # (160, 64)
similarity = image_embeddings @ caption_embeddings.T                        # (1000, 160) cosine similarities
best = similarity.argmax(1).cpu()
truth = torch.tensor([all_captions.index(c) for c in test_scenes.captions])
right = best == truth
shown = range(8)
viz.image_grid(test_scenes.images[:8], ncols=8, size=1.5,
               titles=[all_captions[best[i]].removeprefix("a ").replace(" at the ", "\n") for i in shown],
               title_colors=["green" if right[i] else "red" for i in shown])
plt.show()

for query in ("a large red square at the top right", "a small blue triangle at the bottom left"):
    ranked = similarity[:, all_captions.index(query)].argsort(descending=True)[:8].cpu()
    viz.image_grid(test_scenes.images[ranked], ncols=8, size=1.1)
    plt.suptitle(f"text → image: {query!r}", y=1.05)
    plt.show()

unseen = unseen_combination(test_scenes)
seen_accuracy, unseen_accuracy = right[~unseen].float().mean().item(), right[unseen].float().mean().item()
print(f"exact caption among 160 (chance {1 / 160:.1%}): combinations seen in training {seen_accuracy:.1%}, "
      f"never seen {unseen_accuracy:.1%} ({int(unseen.sum())} scenes)")
assert seen_accuracy > 0.6, "most images retrieve their exact caption among 160"
assert unseen_accuracy > 0.15, "new combinations of known words work far above chance"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Captions for combinations that never occurred in training still find their images far more often
# than chance, though less often than familiar ones: the text encoder has learned words that it can
# combine, partly, and partly it has memorised which combinations exist. Real CLIP shows both sides
# too: remarkable zero-shot transfer, and weak *compositional* understanding (which object is which
# colour, left of what), a known limitation of contrastive image–text models.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - Contrastive learning turns "these two belong together" into a training signal: positives are
#   pulled together, the rest of the batch pushed apart. No labels are needed, only a way to make
#   positive pairs: augmentations of one image (SimCLR) or an image and its caption (CLIP).
# - InfoNCE is a cross-entropy over a matrix of cosine similarities whose targets are the diagonal;
#   NT-Xent uses both views of every image as anchors; CLIP's loss is InfoNCE over the rows and the
#   columns. An encoder that cannot tell examples apart scores $\log(\text{candidates})$.
# - The temperature sets how hard the loss leans on the most similar negatives: the gradient on a
#   negative is $p_j / \tau$.
# - A SimCLR encoder pretrained on unlabelled digits is read much better by a linear probe or by
#   nearest neighbours than raw pixels or the same network untrained, most of all with few labels;
#   with all the labels, nearest neighbours in raw pixels do slightly better.
# - The augmentations are the teaching signal: without them SimCLR learns less than the pixels
#   hold; no single one of the five is vital on digits. Probes read the features $h$ at least as
#   well as the projections $z$, and much better when the augmentations are weak.
# - A CLIP-style dual encoder classifies images it never saw from text alone, retrieves images by
#   text and text by images, and partly generalises to word combinations it never saw.
#
# Next, chapter 06 fine-tunes pretrained encoders, with linear probes, full fine-tuning and LoRA,
# and measures how many labels pretraining saves.
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
from fmcourse.exercises import contrastive as exercises

# 1. Uniformity (Wang and Isola, 2020) measures how evenly embeddings spread over the sphere: the log
#    of the mean of exp(-2 ||u_i - u_j||²) over all pairs i != j of the normalised embeddings u.
#    Lower is more uniform. Return it as a number for embeddings z of shape (N, D).
def my_uniformity(z):
    ...  # your code here


exercises.uniformity.check(my_uniformity)

# %%
# 2. A formula. What is the LOWEST InfoNCE loss that N pairs of unit vectors can reach at temperature τ
#    (with D ≥ N - 1 dimensions)? Each query should match its key exactly; how far apart can the
#    other N - 1 keys be? Return it as a function of n and temperature.
def my_lowest_info_nce(n, temperature):
    ...  # your code here


exercises.lowest_info_nce.check(my_lowest_info_nce)

# %%
# 3. Retrieval recall@k: `similarity` (N, N) holds query i (row) against candidate j (column), and the
#    right candidate of query i is candidate i. Return the fraction of queries whose right candidate
#    is among their k most similar candidates.
def my_recall_at_k(similarity, k):
    ...  # your code here


exercises.recall_at_k.check(my_recall_at_k)

# %%
# 4. An experiment. An untrained encoder gives unrelated embeddings to the two views of an image. The
#    cell prints the InfoNCE loss of 64 such pairs at temperature 1, close to log N. Predict first: at
#    temperature 0.05, is the loss "above" or "below" log N? Then set temperature = 0.05, run, and record.
from fmcourse.objectives import info_nce

temperature = 1.0  # change me
g = torch.Generator().manual_seed(0)
queries, keys = torch.randn(64, 32, generator=g), torch.randn(64, 32, generator=g)  # (N, D): unrelated
loss = info_nce(queries, keys, temperature).item()
print(f"temperature {temperature:g}: InfoNCE of unrelated pairs {loss:.4f} (log N = {math.log(64):.3f})")

my_prediction = ...  # "above" or "below", written down BEFORE running at temperature 0.05
my_measurement = ...  # the loss printed at temperature 0.05
exercises.temperature_experiment.check(my_prediction, my_measurement)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button: click it only when you want to see them (or run
# `exercises.<name>.show_solution()` for one exercise).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.uniformity, exercises.lowest_info_nce, exercises.recall_at_k,
                      exercises.temperature_experiment)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Further reading
#
# - T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A simple framework for contrastive learning of
#   visual representations" (SimCLR), ICML 2020: NT-Xent, the projection head, the role of
#   augmentations and of the batch size.
# - A. Radford et al., "Learning transferable visual models from natural language supervision" (CLIP),
#   ICML 2021: the symmetric loss, the learned temperature, prompt templates and zero-shot transfer.
# - A. van den Oord, Y. Li, O. Vinyals, "Representation learning with contrastive predictive coding",
#   2018: InfoNCE and its bound on mutual information.
# - K. He et al., "Momentum contrast for unsupervised visual representation learning" (MoCo), CVPR
#   2020: many negatives without huge batches.
# - T. Wang, P. Isola, "Understanding contrastive representation learning through alignment and
#   uniformity on the hypersphere", ICML 2020.
# - F. Wang, H. Liu, "Understanding the behaviour of contrastive loss", CVPR 2021: the temperature and
#   hard negatives.
# - M. Yuksekgonul et al., "When and why vision-language models behave like bags-of-words, and what to
#   do about it", ICLR 2023: the compositional limits of CLIP-style models.
# - X. Zhai et al., "Sigmoid loss for language image pre-training" (SigLIP), ICCV 2023: a pairwise
#   alternative to the softmax over the batch.
