"""Interpretability, fairness and privacy tools against references (captum, opacus, scikit-learn) and
known answers."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmcourse import fairness, interpret, metrics, privacy
from fmcourse.data import best_shape_only_accuracy, shortcut_world
from fmcourse.models import GPT, GPTConfig
from fmcourse.tokenizers import CharTokenizer


def small_classifier(seed=0, d=6, c=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 8), nn.Tanh(), nn.Linear(8, c))


# --- attribution ---------------------------------------------------------------------------------

def test_integrated_gradients_are_complete():
    model = small_classifier()
    x = torch.randn(5, 6, dtype=torch.float64)
    model.double()
    baseline = torch.randn(1, 6, dtype=torch.float64)
    ig = interpret.integrated_gradients(model, x, 2, baseline=baseline, steps=400)
    with torch.no_grad():
        gap = model(x)[:, 2] - model(baseline.expand_as(x))[:, 2]
    assert torch.allclose(ig.sum(1), gap, atol=1e-5)


def test_integrated_gradients_equal_captum():
    captum = pytest.importorskip("captum.attr")
    model = small_classifier(1)
    x = torch.randn(4, 6)
    target = torch.tensor([0, 1, 2, 1])
    mine = interpret.integrated_gradients(model, x, target, steps=20)
    theirs = captum.IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target,
                                                           n_steps=20, method="riemann_middle")
    assert torch.allclose(mine, theirs, atol=1e-5)


def test_integrated_gradients_on_images_keep_the_shape_and_are_linear_exact():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(2, 1, 4, 4)
    ig = interpret.integrated_gradients(model, x, 1, steps=3)
    expected = x * model[1].weight[1].view(1, 1, 4, 4)        # a linear model: IG = x * w exactly
    assert ig.shape == x.shape and torch.allclose(ig, expected, atol=1e-6)
    assert torch.allclose(interpret.gradient_times_input(model, x, 1), expected, atol=1e-6)


@pytest.mark.parametrize("target", [3, -1, torch.tensor([0, 5])])
def test_an_attribution_target_out_of_range_is_refused(target):
    with pytest.raises(ValueError, match="out of range"):
        interpret.integrated_gradients(small_classifier(), torch.randn(2, 6), target)


def test_a_float_target_is_refused():
    with pytest.raises(TypeError, match="class indices"):
        interpret.gradient_times_input(small_classifier(), torch.randn(2, 6), torch.tensor([0.0, 1.0]))


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=11, context_length=12, n_layer=2, n_head=4, d_model=16))


def test_the_residual_stream_ends_where_the_model_reads():
    gpt = tiny_gpt().eval()
    idx = torch.randint(0, 11, (3, 9))
    states = interpret.residual_stream(gpt, idx)
    assert states.shape == (3, 3, 9, 16)
    assert torch.allclose(gpt.norm(states[-1]), gpt.hidden(idx), atol=1e-6)


def test_ablating_a_head_equals_zeroing_its_slice_of_the_output_projection():
    gpt = tiny_gpt().eval()
    idx = torch.randint(0, 11, (2, 10))
    with torch.no_grad():
        plain = gpt(idx)
        with interpret.ablate_heads(gpt, [(1, 2)]):
            ablated = gpt(idx)
        edited = tiny_gpt().eval()
        edited.blocks[1].attn.out.weight[:, 8:12] = 0
        reference = edited(idx)
    assert torch.allclose(ablated, reference, atol=1e-6)
    assert not torch.allclose(plain, ablated)
    with torch.no_grad():
        assert torch.allclose(gpt(idx), plain)                # the hook is gone after the with
    with pytest.raises(ValueError, match="does not exist"):
        with interpret.ablate_heads(gpt, [(2, 0)]):
            pass


# --- fairness ----------------------------------------------------------------------------------------

def test_the_shortcut_world_plants_its_correlation():
    train = shortcut_world(4000, agreement=0.9, seed=0)
    test = shortcut_world(4000, agreement=0.5, seed=1)
    assert abs((train.colours == train.labels).float().mean() - 0.9) < 0.02
    assert abs((test.colours == test.labels).float().mean() - 0.5) < 0.03
    assert torch.equal(train.groups, 2 * train.labels + train.colours)
    # reading the shape alone with the Bayes rule (sum of the shape numbers) gives the stated accuracy
    shape_says = (train.features[:, :10].sum(1) > 0).long()
    assert abs(metrics.accuracy(shape_says, train.labels) - best_shape_only_accuracy()) < 0.02


def test_group_accuracies_and_weights():
    predictions = torch.tensor([0, 0, 1, 1, 1, 0])
    labels = torch.tensor([0, 1, 1, 1, 0, 0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    assert fairness.group_accuracies(predictions, labels, groups, 3).tolist() == [0.5, 1.0, 0.5]
    assert fairness.worst_group_accuracy(predictions, labels, groups, 3) == 0.5
    weights = fairness.group_balanced_weights(torch.tensor([0, 0, 0, 1]), 2)
    assert torch.allclose(weights, torch.tensor([2 / 3, 2 / 3, 2 / 3, 2.0]))
    assert math.isclose(float(weights[:3].sum()), float(weights[3:].sum()))


def test_reweighting_raises_the_worst_group():
    train, test = shortcut_world(2000, 0.95, seed=0), shortcut_world(2000, 0.5, seed=1)
    worst = {}
    for method in fairness.METHODS:
        model = fairness.train_grouped(train.features, train.labels, train.groups, 4, method, steps=200)
        with torch.no_grad():
            worst[method] = fairness.worst_group_accuracy(model(test.features), test.labels, test.groups, 4)
    assert worst["erm"] < 0.5 < 0.65 < min(worst["reweight"], worst["group_dro"])


def hand_weat(x, y, a, b):
    def cos(u, v):
        return float(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v))

    def s(w):
        return np.mean([cos(w, ai) for ai in a]) - np.mean([cos(w, bi) for bi in b])

    sx, sy = [s(w) for w in x], [s(w) for w in y]
    return (np.mean(sx) - np.mean(sy)) / np.std(sx + sy, ddof=1), sum(sx) - sum(sy)


def test_weat_effect_size_and_p_value_on_hand_made_vectors():
    rng = np.random.default_rng(0)
    names = {k: [f"{k}{i}" for i in range(4)] for k in "xyab"}
    vectors = {w: torch.tensor(rng.normal(size=5)) for ws in names.values() for w in ws}
    for w in names["x"]:
        vectors[w] = vectors[w] + torch.tensor([2.0, 0, 0, 0, 0])
    for w in names["a"]:
        vectors[w] = vectors[w] + torch.tensor([2.0, 0, 0, 0, 0])
    arrays = {k: [vectors[w].numpy() for w in ws] for k, ws in names.items()}
    d, statistic = hand_weat(arrays["x"], arrays["y"], arrays["a"], arrays["b"])
    result = fairness.association_test(names["x"], names["y"], names["a"], names["b"], vectors)
    assert math.isclose(result.effect_size, d, rel_tol=1e-9) and math.isclose(result.statistic, statistic, rel_tol=1e-9)
    assert math.isclose(fairness.effect_size(*(torch.tensor(np.array(arrays[k])) for k in "xyab")), d, rel_tol=1e-9)
    # exact p-value: of the 70 re-partitions of 8 words into two sets of 4, the share with S >= observed
    s = {w: result.scores[w] for w in names["x"] + names["y"]}
    words = list(s)
    import itertools
    count = sum(2 * sum(s[w] for w in chosen) - sum(s.values()) >= statistic - 1e-12
                for chosen in itertools.combinations(words, 4))
    assert result.exact and math.isclose(result.p_value, count / 70)
    assert result.p_value <= 2 / 70  # x is built to sit next to a: only the observed split (and its like) reach it
    sampled = fairness.association_test(names["x"], names["y"], names["a"], names["b"], vectors, permutations=50)
    assert not sampled.exact and 0 < sampled.p_value < 0.1


def test_weat_refuses_unequal_lists_and_unknown_words():
    vectors = {w: torch.randn(3) for w in "abcdefgh"}
    with pytest.raises(ValueError, match="equal sizes"):
        fairness.association_test(["a", "b"], ["c"], ["e", "f"], ["g", "h"], vectors)
    with pytest.raises(ValueError, match="equal sizes"):
        fairness.association_test(["a", "b"], ["c", "d"], ["e", "f"], ["g"], vectors)
    with pytest.raises(ValueError, match="no vector"):
        fairness.association_test(["a", "z"], ["c", "d"], ["e", "f"], ["g", "h"], vectors)


class FakeTokenizer:
    unk_token_id = 100

    def __call__(self, word, add_special_tokens=False):
        return {"input_ids": [100] * len(word) if not word.isascii() else [1] * len(word)}


class FakeEncoder:
    tokenizer = FakeTokenizer()

    def encode(self, words, convert_to_tensor=True, show_progress_bar=False):
        return torch.stack([torch.tensor([len(w), 1.0]) for w in words])


def test_encode_words_refuses_what_the_encoder_cannot_read():
    assert set(fairness.encode_words(FakeEncoder(), ["tulip", "ant", "tulip"])) == {"tulip", "ant"}
    with pytest.raises(ValueError, match="cannot embed"):
        fairness.encode_words(FakeEncoder(), ["tulip", "☃☃"])
    with pytest.raises(ValueError, match="non-empty"):
        fairness.encode_words(FakeEncoder(), ["tulip", " "])


# --- membership inference ---------------------------------------------------------------------------

def test_roc_auc_equals_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (300,), generator=g).float()    # many ties
    truth = torch.rand(300, generator=g) < 0.4
    assert math.isclose(metrics.roc_auc(scores, truth), roc_auc_score(truth.numpy(), scores.numpy()), rel_tol=1e-12)
    with pytest.raises(ValueError, match="positives and negatives"):
        metrics.roc_auc(scores, torch.ones(300, dtype=torch.bool))


def test_membership_auc_equals_scikit_learn():
    from sklearn.metrics import roc_auc_score

    member, other = torch.rand(50) * 0.8, torch.rand(70)
    expected = roc_auc_score(np.r_[np.ones(50), np.zeros(70)], -np.r_[member.numpy(), other.numpy()])
    assert math.isclose(privacy.loss_threshold_auc(member, other), expected, rel_tol=1e-12)
    model = small_classifier()
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    losses = F.cross_entropy(model(x), y, reduction="none").detach()
    auc = privacy.membership_auc(model, (x[:20], y[:20]), (x[20:], y[20:]))
    assert math.isclose(auc, roc_auc_score(np.r_[np.ones(20), np.zeros(20)], -losses.numpy()), rel_tol=1e-9)


# --- canaries and exposure ---------------------------------------------------------------------------

def test_candidate_log_probs_equal_full_sequence_scores():
    gpt = tiny_gpt(3).eval()
    prefix, alphabet = [10, 1], [0, 1, 2]
    fast = privacy.candidate_log_probs(gpt, prefix, alphabet, 3)
    assert fast.shape == (27,)
    for index in (0, 5, 26):
        digits = [alphabet[index // 9], alphabet[index // 3 % 3], alphabet[index % 3]]
        seq = torch.tensor([prefix + digits])
        with torch.no_grad():
            lp = gpt(seq[:, :-1]).log_softmax(-1)[0, len(prefix) - 1:].gather(1, seq[0, len(prefix):, None]).sum()
        assert math.isclose(fast[index].item(), lp.item(), rel_tol=1e-5)


def test_exposure_of_a_never_seen_canary_is_near_zero():
    tok = CharTokenizer("0123456789 abcdefghijklmnopqrstuvwxyz")
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=tok.vocab_size, context_length=32, n_layer=1, n_head=2, d_model=16)).eval()
    values = [privacy.exposure(gpt, tok, "the pin is ", privacy.random_secret(3, seed=s)) for s in range(40)]
    # an untrained model ranks any secret at random: mean exposure 1 / ln 2 = 1.44 bits, far below log2(1000)
    assert np.mean(values) < 3 < math.log2(1000)
    # a uniform model ties every candidate: the mid-rank gives about 1 bit
    assert math.isclose(privacy.exposure_from_log_probs(torch.zeros(1000), 7), math.log2(1000 / 500.5))
    assert privacy.exposure_from_log_probs(torch.arange(1000.0), 999) == math.log2(1000)


def test_planted_canaries_appear_as_often_as_asked():
    text = "\n".join(f"line {i}" for i in range(100))
    planted = privacy.plant_canaries(text, {"pin of a ": "123", "pin of b ": "456"}, {"pin of a ": 3, "pin of b ": 0})
    assert planted.count("pin of a 123") == 3 and "pin of b" not in planted
    assert planted.replace("pin of a 123\n", "").replace("\npin of a 123", "") == text


# --- DP-SGD ------------------------------------------------------------------------------------------

def test_per_example_gradients_equal_single_example_backward_passes():
    model = small_classifier(2)
    x, y = torch.randn(7, 6), torch.randint(0, 3, (7,))
    fast = privacy.per_example_gradients(model, F.cross_entropy, x, y)
    for i in range(7):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        for name, p in model.named_parameters():
            assert torch.allclose(fast[name][i], p.grad, atol=1e-6), name


def test_clipping_bounds_every_norm_and_the_noise_has_the_stated_scale():
    g = torch.Generator().manual_seed(0)
    per_example = {"w": torch.randn(64, 10, 5, generator=g) * 3, "b": torch.randn(64, 5, generator=g)}
    clipped, norms = privacy.clip_and_noise(per_example, clip_norm=1.0, noise_multiplier=0.0)
    scale = (1.0 / norms).clamp(max=1)
    for name, grads in per_example.items():
        assert torch.allclose(clipped[name], (grads * scale.view(-1, *[1] * (grads.dim() - 1))).sum(0), atol=1e-5)
    rescaled = torch.cat([(g * scale.view(-1, *[1] * (g.dim() - 1))).flatten(1) for g in per_example.values()], 1)
    assert rescaled.norm(dim=1).max() <= 1.0 + 1e-5 and norms.max() > 1.0
    # the noise: the private sum minus the clipped sum, for zero gradients, has std sigma * C
    zeros = {"w": torch.zeros(4, 200, 100)}
    noisy, _ = privacy.clip_and_noise(zeros, clip_norm=0.5, noise_multiplier=2.0, generator=g)
    assert abs(noisy["w"].std().item() - 1.0) < 0.02 and abs(noisy["w"].mean().item()) < 0.02


@pytest.mark.parametrize("q, sigma, steps", [(0.01, 1.1, 1000), (0.05, 0.8, 300), (0.2, 2.0, 50), (1.0, 3.0, 10)])
def test_the_accountant_agrees_with_opacus(q, sigma, steps):
    analysis = pytest.importorskip("opacus.accountants.analysis.rdp")
    orders = list(range(2, 64))
    mine = privacy.rdp(q, sigma, steps, orders)
    theirs = analysis.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=[float(a) for a in orders])
    assert np.allclose(mine, theirs, rtol=1e-8)
    eps, _ = analysis.get_privacy_spent(orders=[float(a) for a in orders], rdp=theirs, delta=1e-5)
    assert math.isclose(privacy.epsilon(q, sigma, steps, 1e-5, orders), eps, rel_tol=1e-8)


def test_noise_for_epsilon_inverts_epsilon():
    sigma = privacy.noise_for_epsilon(2.0, 0.05, 200, 1e-5)
    assert privacy.epsilon(0.05, sigma, 200, 1e-5) <= 2.0 < privacy.epsilon(0.05, sigma * 0.99, 200, 1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda: privacy.noise_for_epsilon(0.0, 0.05, 10, 1e-5), "target_epsilon must be a positive"),
    (lambda: privacy.noise_for_epsilon(-1.0, 0.05, 10, 1e-5), "target_epsilon must be a positive"),
    (lambda: privacy.clip_and_noise({"w": torch.zeros(2, 3)}, 0.0, 1.0), "clip_norm must be a positive"),
    (lambda: privacy.dp_sgd(small_classifier(), torch.zeros(4, 6), torch.zeros(4, dtype=torch.long), clip_norm=-1.0,
                            noise_multiplier=1.0, sample_rate=0.5, steps=1, lr=0.1), "clip_norm must be a positive"),
    (lambda: privacy.epsilon(0.0, 1.0, 10, 1e-5), "sample_rate"),
    (lambda: privacy.epsilon(0.1, 1.0, 10, 0.0), "delta"),
])
def test_bad_privacy_settings_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_dp_sgd_without_noise_learns_and_with_noise_stays_seeded():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g)
    y = (x[:, 0] > 0).long()
    model = privacy.dp_sgd(small_classifier(c=2), x, y, clip_norm=1.0, noise_multiplier=0.0, sample_rate=0.1,
                           steps=100, lr=0.5)
    assert metrics.accuracy(model(x), y) > 0.9
    a = privacy.dp_sgd(small_classifier(c=2), x, y, clip_norm=1.0, noise_multiplier=1.0, sample_rate=0.1, steps=5, lr=0.5)
    b = privacy.dp_sgd(small_classifier(c=2), x, y, clip_norm=1.0, noise_multiplier=1.0, sample_rate=0.1, steps=5, lr=0.5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_reversal_batches_hold_the_reversed_digits():
    from fmcourse.data import reversal_batch

    inputs, targets = reversal_batch(5, n_digits=4, generator=torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (5, 8)
    assert (inputs[:, 4] == 10).all() and (targets[:, :4] == -100).all()
    assert torch.equal(targets[:, 4:], inputs[:, :4].flip(1))
    assert torch.equal(inputs[:, 5:], targets[:, 4:7])
