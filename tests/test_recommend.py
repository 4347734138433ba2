"""Recommendation: ranking metrics against hand-worked rankings and scikit-learn, the shop world, the
leave-last-out split, and the recommenders."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score

from fmcourse import metrics
from fmcourse.data.recsys import ShopWorld, leave_last_out
from fmcourse.models import GPT, GPTConfig
from fmcourse.models.recommender import (ItemBigram, MatrixFactorization, next_item_scores, popularity_scores,
                                         user_states, with_start)
from fmcourse.recommend import fit_gpt, fit_mf, method_scores


def test_recall_and_ndcg_equal_hand_worked_rankings():
    scores = torch.tensor([[0.9, 0.5, 0.1, 0.7],    # ranking: items 0, 3, 1, 2
                           [0.2, 0.3, 0.8, 0.1],    # ranking: items 2, 1, 0, 3
                           [0.1, 0.2, 0.3, 0.4]])   # ranking: items 3, 2, 1, 0
    targets = torch.tensor([3, 0, 0])                # ranks 2, 3, 4
    assert metrics.recall_at_k(scores, targets, k=1) == 0.0
    assert metrics.recall_at_k(scores, targets, k=2) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(scores, targets, k=3) == pytest.approx(2 / 3)
    assert metrics.ndcg_at_k(scores, targets, k=3) == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 3)
    assert metrics.ndcg_at_k(scores, targets, k=4) == pytest.approx((1 / math.log2(3) + 0.5 + 1 / math.log2(5)) / 3)
    per_user = metrics.ndcg_at_k(scores, targets, k=3, reduce=False)
    assert per_user.tolist() == pytest.approx([1 / math.log2(3), 0.5, 0.0])
    # the held-out item first: NDCG 1
    assert metrics.ndcg_at_k(scores, scores.argmax(1), k=1) == 1.0


def test_ties_count_in_expectation():
    scores = torch.tensor([[1.0, 1.0, 0.0]])           # items 0 and 1 tie for ranks 1 and 2
    assert metrics.recall_at_k(scores, torch.tensor([0]), k=1) == 0.5
    assert metrics.ndcg_at_k(scores, torch.tensor([1]), k=2) == pytest.approx((1 + 1 / math.log2(3)) / 2)


@pytest.mark.parametrize("k", [1, 3, 10, 20])
def test_ndcg_equals_scikit_learn_also_with_ties(k):
    g = torch.Generator().manual_seed(k)
    scores = torch.randn(60, 20, generator=g).double()
    scores[:30, :8] = scores[:30, :8].round()            # many ties in half of the rows
    targets = torch.randint(0, 20, (60,), generator=g)
    relevance = np.zeros((60, 20))
    relevance[np.arange(60), targets.numpy()] = 1
    assert metrics.ndcg_at_k(scores, targets, k) == pytest.approx(ndcg_score(relevance, scores.numpy(), k=k), abs=1e-12)
    # recall@k with one relevant item: the share of held-out items among the top k (no ties in these rows)
    top = scores[30:].topk(k, dim=1).indices
    hits = (top == targets[30:, None]).any(1).double().mean().item()
    assert metrics.recall_at_k(scores[30:], targets[30:], k) == pytest.approx(hits)


def test_ranking_ceiling_is_the_expectation_of_the_best_ranking():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], dtype=torch.float64)
    recall, ndcg = metrics.ranking_ceiling(p, k=2)
    assert recall == pytest.approx((0.8 + 0.9) / 2)
    assert ndcg == pytest.approx((0.5 + 0.3 / math.log2(3) + 0.8 + 0.1 / math.log2(3)) / 2)
    # sampled held-out items ranked by the true probabilities average to the ceiling
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(2 * torch.randn(4000, 30, generator=g, dtype=torch.float64), dim=1)
    targets = torch.multinomial(probs, 1, generator=g).squeeze(1)
    values = metrics.ndcg_at_k(probs, targets, 10, reduce=False)
    assert abs(values.mean().item() - metrics.ranking_ceiling(probs, 10)[1]) < 4 * values.std().item() / 4000**0.5


def test_the_world_is_seeded_and_its_laws_are_distributions():
    a, b = ShopWorld.generate(n_users=50, length=6, seed=4), ShopWorld.generate(n_users=50, length=6, seed=4)
    assert torch.equal(a.sequences, b.sequences) and torch.equal(a.tastes, b.tastes)
    assert torch.equal(a.accessories, b.accessories)
    assert not torch.equal(a.sequences, ShopWorld.generate(n_users=50, length=6, seed=5).sequences)
    assert a.sequences.shape == (50, 6) and a.tastes.shape == (50, 8)
    assert torch.allclose(a.tastes.sum(1), torch.ones(50, dtype=torch.float64))
    assert torch.allclose(a.accessories.sum(1), torch.ones(a.n_items, dtype=torch.float64))
    assert a.accessories.diagonal().eq(0).all()
    p = a.next_item_probabilities(a.tastes, a.sequences[:, -1])
    assert torch.allclose(p.sum(1), torch.ones(50, dtype=torch.float64))
    new = a.new_users(10, 4, seed=9)
    assert torch.equal(new.category, a.category) and new.sequences.shape == (10, 4)


def test_purchases_follow_the_stated_law():
    """The share of transitions i -> j that are accessories of i matches follow plus the taste's part."""
    world = ShopWorld.generate(n_users=3000, length=12, follow=0.4, seed=1)
    seq = world.sequences
    prev, nxt = seq[:, :-1].flatten(), seq[:, 1:].flatten()
    accessory = world.accessories[prev, nxt] > 0
    users = torch.arange(seq.size(0)).repeat_interleave(seq.size(1) - 1)
    taste_part = (world.tastes[users] @ world.taste_matrix())[torch.arange(len(nxt)), nxt]
    expected = 0.4 * world.accessories[prev, nxt] / (0.4 * world.accessories[prev, nxt] + 0.6 * taste_part)
    # P(an accessory step) = follow + (1 - follow) * P(taste step lands on an accessory)
    taste_on_accessory = (world.tastes[users] @ world.taste_matrix() * (world.accessories[prev] > 0)).sum(1)
    share = 0.4 + 0.6 * taste_on_accessory.mean().item()
    se = (share * (1 - share) / len(nxt)) ** 0.5
    assert abs(accessory.double().mean().item() - share) < 4 * se
    assert expected.max() <= 1


def test_leave_last_out_leaks_no_held_out_item():
    sequences = torch.arange(5 * 7).view(5, 7)          # every purchase a different item
    split = leave_last_out(sequences)
    assert torch.equal(split.valid, sequences[:, -2]) and torch.equal(split.test, sequences[:, -1])
    train_items = set(split.train.flatten().tolist())
    assert not train_items & set(split.valid.tolist()) and not train_items & set(split.test.tolist())
    assert not set(split.history("test").flatten().tolist()) & set(split.test.tolist())
    assert torch.equal(split.history("test"), sequences[:, :-1])
    assert split.train.size(1) == 5


def test_ceiling_is_not_beaten_by_more_than_noise():
    world = ShopWorld.generate(n_users=1500, length=8, seed=2)
    split = leave_last_out(world.sequences)
    _, ceiling = metrics.ranking_ceiling(world.next_item_probabilities(world.tastes, split.valid), 10)
    histories = split.history("test")
    for method, model in (("popularity", None), ("bigram", ItemBigram(histories, world.n_items)),
                          ("mf", fit_mf(histories, world.n_items, dim=8, steps=150))):
        values = metrics.ndcg_at_k(method_scores(method, model, histories, world.n_items), split.test, 10, reduce=False)
        assert values.mean().item() <= ceiling + 3 * values.std().item() / len(values) ** 0.5, method
    truth = world.next_item_probabilities(world.tastes, split.valid)
    oracle = metrics.ndcg_at_k(truth, split.test, 10, reduce=False)
    assert abs(oracle.mean().item() - ceiling) < 4 * oracle.std().item() / len(oracle) ** 0.5


def test_popularity_and_bigram_count():
    histories = torch.tensor([[0, 1, 2], [1, 2, 1]])
    assert popularity_scores(histories, 4).tolist() == [1, 3, 2, 0]
    bigram = ItemBigram(histories, 4, smoothing=1e-9)
    p = bigram.scores(torch.tensor([[3, 1]])).exp()[0]   # after item 1: item 2 twice
    assert p[2].item() == pytest.approx(1.0, abs=1e-6)
    rare = ItemBigram(histories, 4, smoothing=1.0).scores(torch.tensor([[3]])).exp()[0]  # never seen: popularity
    assert rare.tolist() == pytest.approx([1 / 6, 3 / 6, 2 / 6, 0])


def test_matrix_factorization_learns_who_likes_what_and_folds_in():
    histories = torch.tensor([[0, 0, 1, 0], [2, 3, 3, 2]] * 10)
    mf = fit_mf(histories, 4, dim=2, weight_decay=0.0, steps=200)
    scores = mf(torch.tensor([0, 1]))
    assert set(scores[0].topk(2).indices.tolist()) == {0, 1} and set(scores[1].topk(2).indices.tolist()) == {2, 3}
    folded = mf.scores_of(mf.fold_in(torch.tensor([[3, 2, 2]]), steps=100))
    assert set(folded[0].topk(2).indices.tolist()) == {2, 3}
    assert torch.equal(mf.fold_in(torch.zeros(3, 0, dtype=torch.long)), torch.zeros(3, 2))


def test_gpt_recommender_reads_start_then_items():
    inputs = with_start(torch.tensor([[4, 2], [0, 1]]), 5)
    assert inputs.tolist() == [[5, 4, 2], [5, 0, 1]]
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=6, context_length=3, n_layer=1, n_head=1, d_model=8))
    scores = next_item_scores(gpt, torch.tensor([[4, 2], [0, 1]]), 5)
    with torch.no_grad():
        assert torch.allclose(scores, gpt(inputs)[:, -1, :5])
    assert user_states(gpt, torch.zeros(2, 0, dtype=torch.long), 5).shape == (2, 8)
    # a history longer than the context keeps START and the latest items
    long = next_item_scores(gpt, torch.tensor([[1, 1, 4, 2]]), 5)
    assert torch.allclose(long, scores[:1])


def test_a_short_gpt_run_learns_a_deterministic_successor():
    """Items 0 -> 1 -> 2 -> 3 -> 0 ...: after a few steps the GPT ranks the successor first."""
    histories = (torch.arange(6)[None] + torch.arange(40)[:, None]) % 4
    gpt, _ = fit_gpt(histories, 4, d_model=16, dropout=0.0, n_layer=1, steps=80, lr=1e-2, batch_size=16)
    scores = next_item_scores(gpt, histories[:, :-1], 4)
    assert metrics.recall_at_k(scores, histories[:, -1], k=1) == 1.0


def test_bad_inputs_get_clear_errors():
    scores, targets = torch.randn(3, 5), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="k must be an int in"):
        metrics.ndcg_at_k(scores, targets, k=0)
    with pytest.raises(ValueError, match="k must be an int in"):
        metrics.recall_at_k(scores, targets, k=6)
    with pytest.raises(ValueError, match="unknown item id 7"):
        metrics.ndcg_at_k(scores, torch.tensor([0, 7, 1]), k=2)
    with pytest.raises(ValueError, match="no users"):
        metrics.ndcg_at_k(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long), k=2)
    with pytest.raises(ValueError, match="unknown item id"):
        popularity_scores(torch.tensor([[0, 9]]), 5)
    with pytest.raises(ValueError, match="empty"):
        ItemBigram(torch.zeros(2, 0, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="unknown user id 4"):
        MatrixFactorization(4, 5)(torch.tensor([4]))
    with pytest.raises(ValueError, match="at least 3 purchases"):
        leave_last_out(torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="follow"):
        ShopWorld.generate(follow=1.0)


def test_the_shipped_gpt_scores_what_its_comparison_claims():
    import json

    from fmcourse import checkpoints, shipped
    from fmcourse.recommend import WORLD

    results = json.loads(shipped.path("shop_comparison.json").read_text(encoding="utf-8"))
    assert results["world"] == WORLD
    gpt, _ = checkpoints.load(shipped.path("gpt_shop"), GPT)
    world = ShopWorld.generate(**WORLD)
    split = leave_last_out(world.sequences)
    ndcg = metrics.ndcg_at_k(next_item_scores(gpt, split.history("test"), world.n_items), split.test)
    assert ndcg == pytest.approx(results["test"]["gpt"][0]["ndcg"], abs=2e-3)   # rounding may reorder a near-tie
    assert ndcg <= results["ceiling"]["ndcg"] + 0.03   # never above the ceiling by more than noise (3 s.e.)
