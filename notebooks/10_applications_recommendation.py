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
# # 10 · Applications: recommendation
#
# **Seed section 3.4 算法应用领域 (推荐系统).**
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmcourse_unpublished/fmcourse/blob/v0.1.0/notebooks/10_applications_recommendation.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/fmcourse_unpublished/fmcourse/v0.1.0?urlpath=lab/tree/notebooks/10_applications_recommendation.ipynb)
#
# A shop knows what each customer bought, in order. Recommending the next item is predicting the next
# token, with items as tokens: the pretraining task of chapter 04, on purchase sequences instead of
# text. This chapter builds a shop whose customers have known tastes and whose purchases follow each
# other in a known way, so that the best possible recommendation can be computed, and measures a GPT
# over items against the classic methods of recommender systems on it: popularity, an item-to-item
# (bigram) model and matrix factorization, all tuned with the same budget.
#
# **In this notebook you will**
# - generate a world of users with known taste profiles (用户画像) and items with categories and
#   accessories, and compute the best Recall@10 and NDCG@10 that any recommender can reach on it;
# - write the leave-last-out split and the ranking metrics Recall@k and NDCG@k, checked against
#   scikit-learn;
# - train popularity, bigram and matrix-factorization baselines and a GPT over item ids (SASRec), and
#   compare them on held-out next items, with seeds, against the ceiling;
# - read user profiles out of the models' user embeddings with a linear probe and a 2-D map;
# - recommend to new users with only a few purchases (cold start) with the pretrained GPT, without
#   training it again, against matrix factorization that must fit each new user.
#
# **Time on a laptop CPU:** 12 s for the whole notebook.

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
device = env.get_device()
import json

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.metrics import ndcg_score

from fmcourse import checkpoints, metrics, shipped
from fmcourse.data.recsys import ShopWorld, leave_last_out
from fmcourse.finetune import linear_probe
from fmcourse.models import GPT
from fmcourse.models.recommender import ItemBigram, next_item_scores, popularity_scores, user_states
from fmcourse.recommend import WORLD, fit_gpt, fit_mf, method_scores
from fmcourse.viz import embedding_map

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. A shop with known tastes
#
# Recommender systems learn from *implicit feedback*: what people bought or clicked, not what they
# would have liked. Two kinds of regularity make purchases predictable:
#
# - **who likes what.** Each user $u$ has a taste $\theta_u$, a distribution over the $C$ item
#   categories (their profile, 用户画像), drawn from a Dirichlet with a small concentration, so most
#   users care for one or two categories. Within a category $c$, item $j$ has a popularity $w_j$.
# - **what comes next.** Each item $i$ has three *accessories* (a camera, then a memory card), items of
#   any category, bought right after $i$ with probability $A_{ij}$ (weights 0.5, 0.3, 0.2).
#
# After a purchase $i$, user $u$'s next purchase is $j$ with probability
#
# $$p(j \mid u, i) = \rho\, A_{ij} + (1 - \rho)\, \theta_{u, c(j)}\, w_j ,$$
#
# where $\rho$ (`follow`) is the share of purchases that follow the one before. We know $p$ exactly,
# so we will know the best any recommender can do. `ShopWorld.generate` draws the world from a seed.

# %%
world = ShopWorld.generate(**WORLD)
print(f"{world.n_users} users, {world.n_items} items in {world.n_categories} categories, "
      f"{world.sequences.size(1)} purchases each, follow = {world.follow}")
print("user 0 buys:", world.sequences[0].tolist())
print("categories :", world.category[world.sequences[0]].tolist())
print("user 0's taste:", [round(t, 2) for t in world.tastes[0].tolist()])

fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1.3, 1]})
image = axes[0].imshow(world.tastes[:40].T.numpy(), aspect="auto", cmap="Blues", vmin=0, vmax=1)
axes[0].set(xlabel="user", ylabel="category", title="true tastes of 40 users (their profiles)")
fig.colorbar(image, ax=axes[0], label="share of taste")
pairs = torch.stack([world.sequences[:, :-1].flatten(), world.sequences[:, 1:].flatten()])
counts = torch.zeros(world.n_items, world.n_items).index_put_((pairs[0], pairs[1]), torch.ones(pairs.size(1)),
                                                              accumulate=True)
image = axes[1].imshow(counts[:36, :].numpy(), aspect="auto", cmap="magma_r")
axes[1].set(xlabel="next item", ylabel="item (first 36)", title="how often item j follows item i")
fig.colorbar(image, ax=axes[1], label="count")
fig.tight_layout()
plt.show()

# the share of purchases that are an accessory of the one before, against what the law implies:
# follow + (1 - follow) * (chance that a taste-driven purchase lands on an accessory anyway)
prev, nxt = pairs
users = torch.arange(world.n_users).repeat_interleave(world.sequences.size(1) - 1)
taste_law = world.tastes[users] @ world.taste_matrix()                      # (pairs, I)
expected = world.follow + (1 - world.follow) * (taste_law * (world.accessories[prev] > 0)).sum(1).mean().item()
observed = (world.accessories[prev, nxt] > 0).double().mean().item()
print(f"accessory steps: {observed:.3f} observed, {expected:.3f} expected from the law")
assert abs(observed - expected) < 4 * (expected * (1 - expected) / len(nxt)) ** 0.5
assert torch.equal(ShopWorld.generate(**WORLD).sequences, world.sequences)   # seeded: the same world again

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Held-out next items, ranking metrics and the ceiling
#
# **The split.** A recommender is used to predict what a user buys *next*, so it is measured that
# way: for each user, the last purchase is the test item, the one before it the validation item, and
# everything earlier is for training (*leave-last-out*). Settings are chosen on the validation items;
# then each method is trained again on everything but the test item and scored once on it. A random
# split of the purchases would let a model learn from a user's future.
#
# **The metrics.** A model gives every item a score; the held-out item's rank $r$ (1 = the highest
# score) says how good the list is. With one held-out item per user,
#
# $$\text{Recall@}k = \mathbb{1}[r \le k], \qquad \text{NDCG@}k = \frac{\mathbb{1}[r \le k]}{\log_2(r + 1)},$$
#
# averaged over users. Recall@10 asks whether the item is in a list of ten; NDCG@10 also rewards
# putting it near the top (rank 1 counts 1, rank 2 counts 0.63, rank 10 counts 0.29). In general
# NDCG divides the discounted gain by that of the ideal order; with one relevant item the ideal puts
# it first and scores 1, so nothing is left to divide. We write both here and check them against
# `fmcourse.metrics` and scikit-learn's `ndcg_score`.

# %%
split = leave_last_out(world.sequences)
print(f"train {tuple(split.train.shape)}, validation {tuple(split.valid.shape)}, test {tuple(split.test.shape)}")
assert torch.equal(split.history("test"), world.sequences[:, :-1]) and torch.equal(split.test, world.sequences[:, -1])


def my_ndcg(scores, targets, k):
    """Mean NDCG@k: scores (N, I), targets (N,) held-out item ids."""
    rank = (scores > scores.gather(1, targets[:, None])).sum(dim=1) + 1     # (N,): 1 + items scored higher
    return torch.where(rank <= k, 1.0 / torch.log2(rank.double() + 1), 0.0).mean().item()


g = torch.Generator().manual_seed(0)
scores, targets = torch.randn(500, world.n_items, generator=g), torch.randint(0, world.n_items, (500,), generator=g)
relevance = np.zeros((500, world.n_items))
relevance[np.arange(500), targets.numpy()] = 1
print(f"random scores: NDCG@10 mine {my_ndcg(scores, targets, 10):.4f}, fmcourse {metrics.ndcg_at_k(scores, targets, 10):.4f}, "
      f"scikit-learn {ndcg_score(relevance, scores.numpy(), k=10):.4f}; Recall@10 {metrics.recall_at_k(scores, targets, 10):.3f} "
      f"(chance 10/{world.n_items} = {10 / world.n_items:.3f})")
assert abs(my_ndcg(scores, targets, 10) - metrics.ndcg_at_k(scores, targets, 10)) < 1e-12
assert abs(metrics.ndcg_at_k(scores, targets, 10) - ndcg_score(relevance, scores.numpy(), k=10)) < 1e-12

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The ceiling.** When the held-out item is drawn from $p(\cdot \mid u, i)$, the best ranking sorts
# the items by $p$: the largest probability then meets the largest discount. Its expected scores are
#
# $$\text{Recall@}k^\star = \sum_{r=1}^{k} p_{(r)}, \qquad \text{NDCG@}k^\star = \sum_{r=1}^{k} \frac{p_{(r)}}{\log_2(r+1)},$$
#
# with $p_{(1)} \ge p_{(2)} \ge \dots$ the sorted probabilities. No model can beat it except by the
# luck of the draw. Two weaker oracles show what each regularity is worth: one that knows every
# user's taste but not the previous purchase, and one that knows the previous purchase and the
# accessory table but not the taste (it uses the average taste).

# %%
truth = world.next_item_probabilities(world.tastes, split.valid)             # (U, I): the law of each test item
ceiling_recall, ceiling_ndcg = metrics.ranking_ceiling(truth, 10)


def expected_ndcg(scores, probabilities, k=10):
    """Mean expected NDCG@k of ranking by scores (U, I) when each target is drawn from probabilities (U, I)."""
    rank = scores.argsort(dim=1, descending=True).argsort(dim=1) + 1
    gain = torch.where(rank <= k, 1.0 / torch.log2(rank.double() + 1), 0.0)
    return (probabilities * gain).sum(1).mean().item()


taste_only = world.tastes @ world.taste_matrix()                                              # knows the taste
order_only = world.next_item_probabilities(world.tastes.mean(0).expand(world.n_users, -1), split.valid)
oracles = {"taste only": expected_ndcg(taste_only, truth), "last item only": expected_ndcg(order_only, truth),
           "both (the ceiling)": ceiling_ndcg}
for name, value in oracles.items():
    print(f"oracle knowing {name:18s}: expected NDCG@10 {value:.3f}")
print(f"ceiling Recall@10 {ceiling_recall:.3f}")
sampled = metrics.ndcg_at_k(truth, split.test, 10, reduce=False)
print(f"the best ranking scored on the drawn test items: NDCG@10 {sampled.mean():.3f} ± {sampled.std() / len(sampled) ** 0.5:.3f}")
assert oracles["taste only"] < ceiling_ndcg and oracles["last item only"] < ceiling_ndcg
assert oracles["last item only"] > oracles["taste only"]     # in this shop, the order is worth more than the taste
assert abs(sampled.mean().item() - ceiling_ndcg) < 4 * sampled.std().item() / len(sampled) ** 0.5

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. The classic recommenders
#
# - **Popularity**: the same list for everyone, the most bought items first. The baseline every
#   recommender must beat.
# - **Item bigram** (the n-gram of recommendation): the next item predicted from the last one,
#   $\hat p(j \mid i) = \frac{n(i \to j) + \alpha\, q_j}{n(i \to \cdot) + \alpha}$ with $q$ the popularity;
#   it reads the order but sees no user.
# - **Matrix factorization** (MF): a vector $p_u$ per user and $q_j$ per item, score
#   $s_{uj} = p_u^\top q_j + b_j$, trained so that $\operatorname{softmax}_j(s_{uj})$ gives the items
#   each user bought high probability (cross-entropy, the same loss as a language model, plus an L2
#   penalty $\lambda(\lVert p_u \rVert^2 + \lVert q_j \rVert^2)$). It learns who likes what, but a
#   user's purchases enter as a bag: the order is invisible to it.
#
# **A fair comparison.** Each tuned method got the same budget, four settings (bigram: $\alpha$; MF:
# dimension and $\lambda$; the GPT below: width and dropout), each chosen on the validation items, in
# `python -m fmcourse.recommend`, whose results ship with the course. We reload its choices, train
# the baselines again here, and check that we get the same validation scores.

# %%
comparison = json.loads(shipped.path("shop_comparison.json").read_text(encoding="utf-8"))
for method, rows in comparison["validation"].items():
    print(f"{method:10s} " + "  ".join(f"{json.dumps(r['settings'])}: {r['ndcg']:.3f}" for r in rows))
chosen = comparison["chosen"]
print("chosen on validation:", chosen)

valid_history, test_history = split.history("valid"), split.history("test")
mf_valid = fit_mf(valid_history, world.n_items, **chosen["mf"])
live_valid = {
    "popularity": metrics.ndcg_at_k(method_scores("popularity", None, valid_history, world.n_items), split.valid),
    "bigram": metrics.ndcg_at_k(ItemBigram(valid_history, world.n_items, **chosen["bigram"]).scores(valid_history),
                                split.valid),
    "mf": metrics.ndcg_at_k(method_scores("mf", mf_valid, valid_history, world.n_items), split.valid),
}
for method, value in live_valid.items():
    stored = next(r["ndcg"] for r in comparison["validation"][method] if r["settings"] == chosen[method])
    print(f"{method:10s} validation NDCG@10: {value:.4f} here, {stored:.4f} in the tuning run")
    assert abs(value - stored) < 0.01
assert live_valid["mf"] > live_valid["popularity"] + 0.05

# trained to convergence: twice the steps give the same loss and the same ranking quality
mf_longer = fit_mf(valid_history, world.n_items, **chosen["mf"], steps=2 * comparison["mf_steps"])
longer_ndcg = metrics.ndcg_at_k(method_scores("mf", mf_longer, valid_history, world.n_items), split.valid)
print(f"MF, {2 * comparison['mf_steps']} steps instead of {comparison['mf_steps']}: loss {mf_longer.final_loss:.4f} "
      f"(was {mf_valid.final_loss:.4f}), validation NDCG@10 {longer_ndcg:.4f}")
assert abs(mf_longer.final_loss - mf_valid.final_loss) < 0.01 and abs(longer_ndcg - live_valid["mf"]) < 0.005

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. A GPT over items
#
# Now the foundation-model recipe: a causal Transformer pretrained to predict the next token, where
# the tokens are item ids (SASRec, Kang and McAuley 2018, is this model). A user's purchases
# $[\text{START}, i_1, \dots, i_T]$ are a sentence; at every position the GPT outputs logits over the
# items, and the loss is the cross-entropy of the item actually bought next,
#
# $$\mathcal{L} = -\frac{1}{T}\sum_{t=1}^{T} \log p_\theta(i_t \mid \text{START}, i_1, \dots, i_{t-1}).$$
#
# It is chapter 03's `GPT`, unchanged, with a vocabulary of the items plus START. Attention over the
# whole history lets it infer the user's taste from all earlier purchases; the last position sees the
# previous item, and so its accessories. A short run here shows the recipe; the model used from here
# on is the tuned one trained for 1000 steps by the same command as the baselines.

# %%
short_gpt, short_history = fit_gpt(valid_history, world.n_items, d_model=32, dropout=0.1, steps=150, seed=0,
                                   device=device)
short_ndcg = metrics.ndcg_at_k(next_item_scores(short_gpt, valid_history, world.n_items), split.valid)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
short_history.plot(ax=axes[0], title=f"a GPT over items, 150 steps here ({short_history.seconds:.1f} s)")
axes[0].axhline(float(np.log(world.n_items)), color="grey", ls="--", lw=1, label="uniform guess: log(I)")
axes[0].legend(fontsize=8)
for row in comparison["test"]["gpt"]:                       # the full runs of the tuning command, per seed
    axes[1].plot(row["loss_curve"]["steps"], row["loss_curve"]["loss"], "o-", ms=3, label=f"seed {row['seed']}")
axes[1].set(xlabel="step", ylabel="training loss (smoothed)", title="the shipped runs level off")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()
print(f"after 150 steps: validation NDCG@10 {short_ndcg:.3f} (popularity {live_valid['popularity']:.3f})")
assert short_history.train_loss[-1] < np.log(world.n_items) - 0.5
assert short_ndcg > live_valid["popularity"] + 0.05
for row in comparison["test"]["gpt"]:   # the last 30% of each full run lowers the loss by less than 2%
    late = row["loss_curve"]["loss"]
    assert late[int(0.7 * len(late)) - 1] - late[-1] < 0.02 * late[-1]

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. All methods on the test items
#
# Each method, with its chosen settings, is trained on everything but the test items and scored on
# them: popularity, bigram and MF live here, the GPT loaded from the course's shipped checkpoint
# (trained by `python -m fmcourse.recommend`). The tuning run also trained MF and the GPT with three
# seeds; the error bars are the spread over seeds (the bigram and popularity have no randomness).

# %%
gpt, _ = checkpoints.load(shipped.path("gpt_shop"), GPT)
models = {"popularity": None, "bigram": ItemBigram(test_history, world.n_items, **chosen["bigram"]),
          "mf": fit_mf(test_history, world.n_items, **chosen["mf"]), "gpt": gpt}
names = {"popularity": "popularity", "bigram": "item bigram", "mf": "matrix factorization", "gpt": "GPT over items"}
results = {}
for method, model in models.items():
    scores = method_scores(method, model, test_history, world.n_items)
    results[method] = {"recall": metrics.recall_at_k(scores, split.test, 10),
                       "ndcg": metrics.ndcg_at_k(scores, split.test, 10, reduce=False)}
se = {m: r["ndcg"].std().item() / len(split.test) ** 0.5 for m, r in results.items()}
seeds = {m: [row["ndcg"] for row in comparison["test"][m]] for m in results}

print(f"{'method':22s} {'Recall@10':>9s} {'NDCG@10':>8s}  {'± s.e.':>6s}  {'seeds (tuning run)':s}")
for method, r in results.items():
    print(f"{names[method]:22s} {r['recall']:9.3f} {r['ndcg'].mean():8.3f}  {se[method]:6.3f}  "
          + ", ".join(f"{v:.3f}" for v in seeds[method]))
print(f"{'ceiling':22s} {ceiling_recall:9.3f} {ceiling_ndcg:8.3f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for ax, metric, ceiling in ((axes[0], "recall", ceiling_recall), (axes[1], "ndcg", ceiling_ndcg)):
    values = [results[m][metric].mean().item() if metric == "ndcg" else results[m][metric] for m in results]
    spread = [np.std([row[metric] for row in comparison["test"][m]]) for m in results]
    ax.bar([names[m] for m in results], values, yerr=spread, capsize=4, color=["C7", "C2", "C1", "C0"])
    ax.axhline(ceiling, color="k", ls="--", lw=1.2, label="ceiling (best possible ranking)")
    ax.axhline(10 / world.n_items if metric == "recall" else oracles["taste only"], color="grey", ls=":", lw=1.2,
               label="random list" if metric == "recall" else "oracle knowing the taste only")
    ax.set_ylabel(f"{'Recall' if metric == 'recall' else 'NDCG'}@10 on the test items")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
plt.show()

gap = results["gpt"]["ndcg"] - results["mf"]["ndcg"]           # paired: the same users and test items
over_bigram = results["gpt"]["ndcg"] - results["bigram"]["ndcg"]
print(f"GPT - MF: {gap.mean():.3f} ± {gap.std() / len(gap) ** 0.5:.3f} NDCG@10 (paired s.e.); "
      f"GPT - bigram: {over_bigram.mean():.3f} ± {over_bigram.std() / len(gap) ** 0.5:.3f}")
assert gap.mean() > 4 * gap.std() / len(gap) ** 0.5                              # the GPT beats MF
assert over_bigram.mean() > 2 * over_bigram.std() / len(gap) ** 0.5              # and the bigram, by less
assert min(seeds["gpt"]) > max(seeds["mf"]) and min(seeds["gpt"]) > seeds["popularity"][0]
assert results["gpt"]["ndcg"].mean() < ceiling_ndcg + 3 * se["gpt"]             # and never beats the ceiling
print(f"MF reaches {results['mf']['ndcg'].mean() / oracles['taste only']:.0%} of the taste-only oracle's NDCG@10, "
      f"the GPT {results['gpt']['ndcg'].mean() / ceiling_ndcg:.0%} of the ceiling")
assert results["mf"]["ndcg"].mean() > 0.8 * oracles["taste only"]                # MF learned the tastes

# %% [markdown] slideshow={"slide_type": "subslide"}
# **Why the Transformer wins.** Matrix factorization sees each user's purchases as a bag: it learns
# the taste well (it comes close to the oracle that knows the taste exactly, printed in section 2),
# but the taste is only part of what decides the next purchase. The accessory of the item just
# bought is invisible to it, because the order of the purchases is not in its input. The bigram sees
# exactly that and nothing else: the last item, with no user. The GPT reads the whole sequence in
# order, so it can do both: infer the taste from all earlier purchases and read the accessories off
# the last one. In a world without order (follow = 0) the previous purchase carries no information
# and the taste-only oracle is the ceiling; the more the purchases depend on each other, the more
# there is that only a sequence model can use (exercise 4 measures how the ceiling moves).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. User profiles inside the models
#
# A recommender that ranks well must have found out what each user likes. Do its user embeddings
# hold the true profile? For MF the embedding is $p_u$; for the GPT it is the hidden state at the last
# position of the user's history (what its output head reads). A linear probe (a logistic
# regression, chapter 06) trained on 1500 users predicts each of the other 500 users' favourite
# category from the embedding; chance is the share of the most common favourite.

# %%
favourite = world.tastes.argmax(dim=1)                                           # (U,): the true top category
embeddings = {"matrix factorization": models["mf"].users.weight.detach(),
              "GPT over items": user_states(gpt, test_history, world.n_items)}
train_users, test_users = torch.arange(1500), torch.arange(1500, world.n_users)
chance = torch.bincount(favourite[test_users]).max().item() / len(test_users)
probe_accuracy = {}
for name, features in embeddings.items():
    probe = linear_probe(features[train_users], favourite[train_users])
    probe_accuracy[name] = metrics.accuracy(probe(features[test_users]), favourite[test_users])
    print(f"{name:22s}: favourite category of unseen users from the embedding {probe_accuracy[name]:.3f} "
          f"(chance {chance:.3f})")

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, (name, features) in zip(axes, embeddings.items()):
    embedding_map(features[test_users], favourite[test_users], ax=ax, title=f"{name}: users, coloured by favourite category")
fig.tight_layout()
plt.show()
assert min(probe_accuracy.values()) > max(0.5, 3 * chance)   # the stated bound: half right, three times chance

# %% [markdown] slideshow={"slide_type": "subslide"}
# Both embeddings hold the profile: a linear read-out names the favourite category of users it never
# saw, far above chance, and the 2-D maps group users by it. Neither model was told the categories;
# they found them because items of one category are bought by the same users. The GPT's state is
# not a profile only: it must also carry what the last purchase calls for next.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. New users: the pretrained model, used as it is
#
# A foundation model is pretrained once and then serves new cases. Here the new cases are users the
# models never saw, with only a few purchases (*cold start*). The GPT needs no training for them:
# their purchases are a short prompt. MF has no vector for them and must fit one from their few
# purchases with the items fixed (*fold-in*); the bigram needs only the last item; popularity needs
# nothing. We draw 1000 new users from the same shop and predict their purchase number $n + 1$ from
# the first $n$. To see the trend through the noise of single draws, each model's list is scored by
# its *expected* NDCG@10 under the true law of that purchase (`expected_ndcg` from section 2), the
# quantity the ceiling is the best value of.

# %%
new = world.new_users(1000, length=9, seed=123)
lengths = [1, 2, 4, 8]
cold = {m: [] for m in names} | {"ceiling": []}
for n in lengths:
    seen = new.sequences[:, :n]
    law = new.next_item_probabilities(new.tastes, seen[:, -1])          # (1000, I): the next purchase's true law
    vectors = models["mf"].fold_in(seen, weight_decay=chosen["mf"]["weight_decay"])
    cold["popularity"].append(expected_ndcg(popularity_scores(test_history, world.n_items).expand(len(seen), -1), law))
    cold["bigram"].append(expected_ndcg(models["bigram"].scores(seen), law))
    cold["mf"].append(expected_ndcg(models["mf"].scores_of(vectors), law))
    cold["gpt"].append(expected_ndcg(next_item_scores(gpt, seen, world.n_items), law))
    cold["ceiling"].append(metrics.ranking_ceiling(law, 10)[1])

fig, ax = plt.subplots(figsize=(7, 3.8))
for method, style in (("gpt", "o-"), ("mf", "s-"), ("bigram", "^-"), ("popularity", "x-")):
    ax.plot(lengths, cold[method], style, label=names[method] + (" (fold-in)" if method == "mf" else ""))
ax.plot(lengths, cold["ceiling"], "k--", label="ceiling")
ax.set(xscale="log", xticks=lengths, xticklabels=lengths, xlabel="purchases known for the new user",
       ylabel="expected NDCG@10 of the next purchase", title="1000 new users, never seen in training")
ax.minorticks_off()
ax.legend(fontsize=8)
plt.show()
for method in ("gpt", "mf", "bigram", "popularity", "ceiling"):
    print(f"{method:10s} " + "  ".join(f"n={n}: {v:.3f}" for n, v in zip(lengths, cold[method])))
assert all(g > m + 0.05 for g, m in zip(cold["gpt"], cold["mf"]))   # no training for the GPT, and far ahead of MF
assert cold["gpt"][-1] > cold["gpt"][0] + 0.005                    # more purchases, a better profile
assert cold["gpt"][-1] - cold["bigram"][-1] > cold["gpt"][0] - cold["bigram"][0]

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What the curves say.** The GPT was never trained on these users, yet from their first purchases
# on it ranks far better than MF, which fitted a vector to each of them. With one purchase it knows
# no more than the bigram does (the last item), and scores about the same; every further purchase
# tells it more about the user's taste, which the bigram cannot use, and it pulls ahead. The same
# pretrained model serves old users, new users and any length of history: this is what makes it a
# foundation model for the shop. MF gains only slowly: a vector fitted to a handful of purchases is
# a poor profile.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - **Recommendation is next-token prediction** when the tokens are items. The GPT of chapter 03,
#   trained with the loss of chapter 04 on purchase sequences, is a recommender (SASRec).
# - **Measure it as it is used**: leave-last-out, settings chosen on the second-to-last item, one
#   score on the last; Recall@10 (is the item in the list) and NDCG@10 (how high).
# - **A world with known answers** gives the ceiling, the expected score of ranking by the true
#   probabilities, and oracles that show what the taste and the order are each worth.
# - **The baselines, tuned with the same budget**: popularity is far below everything that
#   personalises; MF learns the tastes but cannot see the order; the item bigram sees the order but
#   not the user. The GPT reads both out of the sequence and comes closest to the ceiling: far ahead
#   of MF (the gap is many times the spread over seeds), ahead of the bigram by less, since in this
#   shop the last item is worth more than the taste (compare the two oracles).
# - **Profiles**: the user embeddings of both MF and the GPT hold the users' favourite categories,
#   readable by a linear probe on users the probe never saw.
# - **Cold start**: the pretrained GPT serves new users from a handful of purchases with no training,
#   far ahead of MF, which must fit each new user's vector first; it matches the bigram after one
#   purchase and pulls ahead as more purchases reveal the taste.
#
# Next, chapter 11 measures how models like these scale, and how to make them cheaper.
#
# ## Exercises
#
# Each exercise has an automatic check: replace the `...` with your answer and run the cell. The
# check prints ✓, or what is wrong (the likely mistake, when it can tell) and a hint. The experiment
# asks you to predict first, then change something, run it and record what you measured.

# %%
from fmcourse.exercises import recommendation as exercises

# 1. A formula. Mean NDCG@k with one held-out item per user, without fmcourse.metrics: scores (N, I)
#    from a model, targets (N,) the held-out item ids (no ties in the checks).
def my_ndcg_at_k(scores, targets, k):
    ...  # your code here


exercises.ndcg_formula.check(my_ndcg_at_k)

# %%
# 2. Code. The leave-last-out split: sequences (U, L), each row a user's purchases oldest first.
#    Return (train, valid, test): train (U, L - 2), valid (U,), test (U,).
def my_split(sequences):
    ...  # your code here


exercises.leave_last_out_split.check(my_split)

# %%
# 3. Code. The popularity baseline: from training purchases (U, T), return one score per item,
#    shape (n_items,), higher for items bought more often.
def my_popularity(train, n_items):
    ...  # your code here


exercises.popularity_baseline.check(my_popularity)

# %%
# 4. An experiment. The cell prints the ceiling (the expected NDCG@10 of the best possible ranking)
#    of the test items of a 500-user shop with follow = 0.3. Predict first: if purchases follow the one
#    before twice as often (follow = 0.6), is the ceiling "higher" or "lower"? Then set follow = 0.6,
#    run, and record the value it prints.
follow = 0.3  # change me
shop = ShopWorld.generate(n_users=exercises.CEILING_USERS, follow=follow)
shop_split = leave_last_out(shop.sequences)
shop_ceiling = metrics.ranking_ceiling(shop.next_item_probabilities(shop.tastes, shop_split.valid), 10)[1]
print(f"follow = {follow}: ceiling NDCG@10 {shop_ceiling:.4f}")

my_prediction = ...   # "higher" or "lower", written down BEFORE running with follow = 0.6
my_measurement = ...  # the ceiling printed with follow = 0.6
exercises.ceiling_experiment.check(my_prediction, my_measurement)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button: click it only when you want to see them (or run
# `exercises.<name>.show_solution()` for one exercise).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.ndcg_formula, exercises.leave_last_out_split, exercises.popularity_baseline,
                      exercises.ceiling_experiment)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Further reading
#
# - W.-C. Kang and J. McAuley, "Self-attentive sequential recommendation" (SASRec), ICDM 2018: a
#   causal Transformer over item ids, leave-last-out evaluation with Hit@10 and NDCG@10.
# - F. Sun et al., "BERT4Rec: sequential recommendation with bidirectional encoder representations
#   from Transformer", CIKM 2019: the masked-item objective of chapter 04's encoder, for items.
# - Y. Koren, R. Bell and C. Volinsky, "Matrix factorization techniques for recommender systems",
#   IEEE Computer 2009; Y. Hu, Y. Koren and C. Volinsky, "Collaborative filtering for implicit feedback
#   datasets", ICDM 2008.
# - K. Järvelin and J. Kekäläinen, "Cumulated gain-based evaluation of IR techniques", ACM TOIS 2002:
#   (N)DCG.
# - S. Rendle, W. Krichene, L. Zhang and J. Anderson, "Neural collaborative filtering vs. matrix
#   factorization revisited", RecSys 2020: why baselines must be tuned as carefully as the new model.
