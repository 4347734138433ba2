"""Contrastive losses against explicit loops and F.cross_entropy, their invariances and errors; the
SimCLR and CLIP models; the probes against scikit-learn."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from fmcourse.data.shapes import VOCAB, encode_captions
from fmcourse.finetune import extract_features, knn_predict, linear_probe
from fmcourse.models import CLIP, ConvEncoder, MLPEncoder, SimCLR, TextEncoder
from fmcourse.objectives import clip_loss, cosine_similarities, info_nce, nt_xent

CASES = [(2, 3, 1.0), (5, 4, 0.1), (9, 16, 0.5), (32, 8, 0.07)]


def pairs(n, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.rand(n, 1, generator=g, dtype=torch.float64) * 3 + 0.2
    a = torch.randn(n, d, generator=g, dtype=torch.float64) * lengths
    return a.to(dtype), torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)


def cos(u, v):
    return (u @ v / (u.norm() * v.norm())).item()


def info_nce_by_loops(q, k, t):
    losses = []
    for i in range(len(q)):
        denominator = sum(math.exp(cos(q[i], k[j]) / t) for j in range(len(k)))
        losses.append(-math.log(math.exp(cos(q[i], k[i]) / t) / denominator))
    return losses


def nt_xent_by_loops(z1, z2, t):
    z, n, losses = torch.cat([z1, z2]), len(z1), []
    for a in range(2 * n):
        denominator = sum(math.exp(cos(z[a], z[b]) / t) for b in range(2 * n) if b != a)
        losses.append(-math.log(math.exp(cos(z[a], z[(a + n) % (2 * n)]) / t) / denominator))
    return losses


@pytest.mark.parametrize("n, d, t", CASES)
def test_info_nce_equals_the_formula_and_a_cross_entropy(n, d, t):
    q, k = pairs(n, d)
    np.testing.assert_allclose(info_nce(q, k, t, reduction="none").numpy(), info_nce_by_loops(q, k, t), rtol=1e-10)
    logits = F.cosine_similarity(q[:, None], k[None], dim=-1) / t
    torch.testing.assert_close(info_nce(q, k, t), F.cross_entropy(logits, torch.arange(n)))


@pytest.mark.parametrize("n, d, t", CASES)
def test_nt_xent_equals_the_formula(n, d, t):
    z1, z2 = pairs(n, d, seed=1)
    np.testing.assert_allclose(nt_xent(z1, z2, t, reduction="none").numpy(), nt_xent_by_loops(z1, z2, t), rtol=1e-10)
    assert math.isclose(nt_xent(z1, z2, t).item(), np.mean(nt_xent_by_loops(z1, z2, t)), rel_tol=1e-10)


@pytest.mark.parametrize("n, d, t", CASES)
def test_clip_loss_is_the_mean_of_both_directions(n, d, t):
    images, texts = pairs(n, d, seed=2)
    logits = F.normalize(images, dim=1) @ F.normalize(texts, dim=1).T / t
    expected = (F.cross_entropy(logits, torch.arange(n)) + F.cross_entropy(logits.T, torch.arange(n))) / 2
    torch.testing.assert_close(clip_loss(images, texts, t), expected)
    torch.testing.assert_close(clip_loss(texts, images, t), expected)  # symmetric


def test_gradients_match_the_cross_entropy_form():
    q, k = pairs(6, 5, seed=3)
    q1, k1 = q.clone().requires_grad_(), k.clone().requires_grad_()
    q2, k2 = q.clone().requires_grad_(), k.clone().requires_grad_()
    info_nce(q1, k1, 0.2).backward()
    F.cross_entropy(F.normalize(q2, dim=1) @ F.normalize(k2, dim=1).T / 0.2, torch.arange(6)).backward()
    torch.testing.assert_close(q1.grad, q2.grad)
    torch.testing.assert_close(k1.grad, k2.grad)


def test_invariances():
    z1, z2 = pairs(10, 6, seed=4)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    scale = torch.rand(10, 1, dtype=torch.float64) * 5 + 0.1
    for loss in (info_nce, nt_xent, clip_loss):
        reference = loss(z1, z2, 0.3)
        torch.testing.assert_close(loss(z1[order], z2[order], 0.3), reference)  # the same shuffle for both sides
        torch.testing.assert_close(loss(z1 * scale, z2, 0.3), reference)  # only directions count
    torch.testing.assert_close(nt_xent(z2, z1, 0.3), nt_xent(z1, z2, 0.3))  # the views play the same role
    # shuffling one side only breaks the pairs: the loss rises
    assert info_nce(z1, z1[order], 0.3) > info_nce(z1, z1, 0.3)


def test_chance_levels_of_an_encoder_that_tells_nothing_apart():
    same = torch.ones(7, 3)
    assert math.isclose(info_nce(same, same, 0.1).item(), math.log(7), rel_tol=1e-6)
    assert math.isclose(nt_xent(same, same, 0.1).item(), math.log(13), rel_tol=1e-6)
    assert math.isclose(clip_loss(same, same, 0.1).item(), math.log(7), rel_tol=1e-6)


def test_half_precision_is_computed_in_float32():
    q, k = pairs(8, 4, seed=5)
    got = info_nce(q.to(torch.bfloat16), k.to(torch.bfloat16), 0.5)
    assert got.dtype == torch.bfloat16
    assert abs(got.float().item() - info_nce(q, k, 0.5).item()) < 0.05


def test_cosine_similarities_match_torch():
    a, b = pairs(5, 3, seed=6)
    torch.testing.assert_close(cosine_similarities(a, b[:4]), F.cosine_similarity(a[:, None], b[None, :4], dim=-1))
    with pytest.raises(ValueError, match=r"same D, got shapes \(5, 3\) and \(3,\)"):
        cosine_similarities(a, b[0])


@pytest.mark.parametrize("loss", [info_nce, nt_xent, clip_loss])
def test_bad_input_is_refused_clearly(loss):
    q, k = pairs(4, 3)
    with pytest.raises(ValueError, match="at least 2 pairs.*no negatives"):
        loss(q[:1], k[:1], 0.5)
    with pytest.raises(ValueError, match="has 4 rows but .* has 3.*same batch size"):
        loss(q, k[:3], 0.5)
    with pytest.raises(ValueError, match="dimension 3 but .* has 2"):
        loss(q, k[:, :2], 0.5)
    for temperature in (0.0, -1.0, float("nan"), torch.tensor(0.0)):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            loss(q, k, temperature)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        loss(q[None], k[None], 0.5)
    with pytest.raises(TypeError, match="floating-point"):
        loss(q.long(), k, 0.5)


# --- models ---------------------------------------------------------------------------------------

def test_encoders_give_features_of_the_asked_size_and_refuse_wrong_images():
    torch.manual_seed(0)
    assert MLPEncoder((1, 8, 8), hidden=32, dim=16)(torch.rand(5, 1, 8, 8)).shape == (5, 16)
    assert ConvEncoder(3, 16, widths=(4, 8), dim=12)(torch.rand(5, 3, 16, 16)).shape == (5, 12)
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\), got \(5, 1, 16, 16\)"):
        ConvEncoder(3, 16)(torch.rand(5, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        MLPEncoder((1, 8, 8))(torch.rand(5, 64))
    with pytest.raises(ValueError, match="divisible"):
        ConvEncoder(3, 12, widths=(4, 8, 16))


def test_simclr_loss_is_nt_xent_of_its_projections():
    torch.manual_seed(0)
    model = SimCLR(MLPEncoder((1, 8, 8), hidden=32, dim=16), projection_dim=8, temperature=0.3).eval()
    v1, v2 = torch.rand(6, 1, 8, 8), torch.rand(6, 1, 8, 8)
    assert model(v1).shape == (6, 8) and model.encoder(v1).shape == (6, 16)
    torch.testing.assert_close(model.loss(v1, v2), nt_xent(model(v1), model(v2), 0.3))
    with pytest.raises(ValueError, match="same shape"):
        model.loss(v1, v2[:5])
    with pytest.raises(ValueError, match="temperature"):
        SimCLR(MLPEncoder((1, 8, 8)), temperature=0)


def tiny_clip(learn_temperature=True):
    torch.manual_seed(0)
    return CLIP(ConvEncoder(3, 16, widths=(4, 8), dim=16), TextEncoder(len(VOCAB), 8, d_model=16, n_layer=1, n_head=2),
                embed_dim=8, temperature=0.1, learn_temperature=learn_temperature)


def test_text_encoder_ignores_padding():
    model = tiny_clip().text_encoder.eval()
    short, _ = encode_captions(["a red circle"])
    padded, is_token = encode_captions(["a red circle", "a small red circle at the top left"])
    torch.testing.assert_close(model(short), model(padded[:1], is_token[:1]), atol=1e-6, rtol=1e-5)


def test_clip_logits_loss_and_temperature():
    model = tiny_clip()
    images = torch.rand(4, 3, 16, 16)
    texts = ["a red circle", "a blue square at the top left", "a cross", "a small green triangle"]
    ids, is_token = encode_captions(texts)
    logits = model(images, ids[:3], is_token[:3])
    assert logits.shape == (4, 3)
    image_emb, text_emb = model.image_embeddings(images), model.text_embeddings(ids, is_token)
    torch.testing.assert_close(image_emb.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(logits, image_emb @ text_emb[:3].T / 0.1)
    loss = model.loss(images, ids, is_token)
    torch.testing.assert_close(loss, clip_loss(image_emb, text_emb, 0.1))
    loss.backward()
    assert model.log_temperature.grad is not None, "the temperature is learned"
    fixed = tiny_clip(learn_temperature=False)
    assert "log_temperature" not in dict(fixed.named_parameters())
    with pytest.raises(ValueError, match="4 rows but text_embeddings has 3"):
        model.loss(images, ids[:3], is_token[:3])


def test_zero_shot_logits_add_up_each_class_prompts():
    model = tiny_clip().eval()
    images = torch.rand(5, 3, 16, 16)
    prompts = ["a red circle", "a small red circle", "a square", "a blue square at the top left", "a cross"]
    ids, is_token = encode_captions(prompts)
    prompt_class = torch.tensor([0, 0, 1, 1, 2])
    log_p = model.zero_shot_logits(images, ids, is_token, prompt_class)
    with torch.no_grad():
        p = torch.softmax(model(images, ids, is_token), dim=1)  # (5 images, 5 prompts)
    expected = torch.stack([p[:, :2].sum(1), p[:, 2:4].sum(1), p[:, 4]], 1).log()
    torch.testing.assert_close(log_p, expected)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(5))
    # one prompt per class: the class of the most similar prompt, as in CLIP
    single = model.zero_shot_logits(images, ids[[0, 2, 4]], is_token[[0, 2, 4]], torch.arange(3))
    assert torch.equal(single.argmax(1), model(images, ids[[0, 2, 4]], is_token[[0, 2, 4]]).argmax(1))
    with pytest.raises(ValueError, match="one class index per prompt"):
        model.zero_shot_logits(images, ids, is_token, prompt_class[:4])
    with pytest.raises(ValueError, match=r"classes \[1\] have no prompt"):
        model.zero_shot_logits(images, ids, is_token, torch.tensor([0, 0, 2, 2, 2]))


# --- probes -----------------------------------------------------------------------------------------

def blobs(n=120, d=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g, dtype=torch.float64) * 2
    labels = torch.arange(n) % classes
    return centres[labels] + torch.randn(n, d, generator=g, dtype=torch.float64) * 1.5, labels


@pytest.mark.parametrize("l2", [1e-1, 1e-2])
def test_linear_probe_equals_scikit_learn_logistic_regression(l2):
    x, y = blobs()
    probe = linear_probe(x, y, l2=l2)
    scaler = StandardScaler().fit(x.numpy())
    reference = LogisticRegression(C=1 / (l2 * len(x)), tol=1e-10, max_iter=10_000)
    reference.fit(scaler.transform(x.numpy()), y.numpy())
    test_x, _ = blobs(seed=1)
    ours = torch.softmax(probe(test_x), dim=1).numpy()
    np.testing.assert_allclose(ours, reference.predict_proba(scaler.transform(test_x.numpy())), atol=1e-5)


def test_knn_equals_scikit_learn():
    x, y = blobs(n=90, seed=2)
    queries, _ = blobs(n=40, seed=3)
    for k in (1, 4, 7):
        reference = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(x.numpy(), y.numpy())
        np.testing.assert_array_equal(knn_predict(x, y, queries, k=k).numpy(), reference.predict(queries.numpy()))


def test_extract_features_batches_and_restores_the_mode():
    torch.manual_seed(0)
    encoder = MLPEncoder((1, 8, 8), hidden=16, dim=4).train()
    x = torch.rand(10, 1, 8, 8)
    features = extract_features(encoder, x, batch_size=3)
    assert encoder.training, "the encoder's mode is restored"
    with torch.no_grad():
        torch.testing.assert_close(features, encoder.eval()(x))
    assert not features.requires_grad


def test_probes_refuse_bad_input():
    x, y = blobs()
    with pytest.raises(ValueError, match=r"labels must be integer class indices of shape \(120,\)"):
        linear_probe(x, y[:100])
    with pytest.raises(ValueError, match="l2 must be > 0"):
        linear_probe(x, y, l2=0)
    with pytest.raises(TypeError, match=r"\(N, D\)"):
        linear_probe(x[:, 0], y)
    with pytest.raises(ValueError, match="k must be between 1 and the number of training rows"):
        knn_predict(x, y, x, k=0)
    with pytest.raises(ValueError, match=r"shape \(M, 6\)"):
        knn_predict(x, y, x[:, :5])
    with pytest.raises(ValueError, match=r"shape \(N, 6\)"):
        linear_probe(x, y)(x[:, :5])


# --- plots and widgets ------------------------------------------------------------------------------

def test_temperature_widget_draws_the_softmax():
    import matplotlib.pyplot as plt

    from fmcourse import widgets

    similarities = [0.9, 0.5, -0.2]
    p = widgets.draw_temperature(similarities, temperature=0.25)
    torch.testing.assert_close(p, torch.softmax(torch.tensor(similarities, dtype=torch.float64) / 0.25, dim=0))
    assert f"{-p[0].log().item():.3f}" in plt.gca().get_title()
    plt.close("all")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        widgets.draw_temperature(similarities, temperature=0)
    with pytest.raises(ValueError, match="at least one negative"):
        widgets.draw_temperature([0.5])
    assert widgets.temperature_explorer() is not None


def test_embedding_map_plots_the_principal_components():
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    from fmcourse import viz

    x, y = blobs(n=60, d=5, classes=3)
    ax = viz.embedding_map(x, y)
    plotted = np.concatenate([collection.get_offsets() for collection in ax.collections])
    order = np.concatenate([np.nonzero(y.numpy() == label)[0] for label in range(3)])
    expected = PCA(2).fit_transform(x.numpy())[order]
    np.testing.assert_allclose(np.abs(plotted), np.abs(expected), atol=1e-8)  # components have no fixed sign
    plt.close("all")
    with pytest.raises(ValueError, match=r"features must be \(N, D\)"):
        viz.embedding_map(x, y[:10])


# --- the augmentation ablation that chapter 05 loads -------------------------------------------


def _bench_module(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path.parent / "results"


def test_the_augmentation_ablation_results_match_its_script_and_the_chapter():
    import json

    from fmcourse.data import Augment

    from fmcourse import shipped

    bench, _ = _bench_module("simclr_augmentations")
    stored = json.loads(shipped.path("simclr_augmentations.json").read_text(encoding="utf-8"))
    expected = bench.settings()
    assert list(stored["settings"]) == list(expected), "rerun bench/simclr_augmentations.py"
    for name, row in stored["settings"].items():
        as_built = {k: tuple(v) if isinstance(v, list) else v for k, v in row["augment"].items()}
        assert as_built == expected[name], name
        Augment(**as_built)  # every stored setting is a valid augmentation
        assert len(row["h"]) == len(row["z"]) == len(row["knn_all"]) == stored["seeds"]
        assert all(0 <= a <= 1 for key in ("h", "z", "knn_all") for a in row[key])
    none = expected["none"]
    assert none["crop_scale"] == (1.0, 1.0) and none["max_rotation"] == 0 and none["blur_p"] == 0
    assert none["noise_std"] == 0 and none["erase_p"] == 0
    build, _ = _bench_module("../data/build_simclr")
    assert bench.ALL == build.AUGMENT, "the ablation's full augmentation is the chapter's"
