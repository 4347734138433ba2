import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmcourse.train import History, evaluate, fit, lr_at, supervised, to_device


def regression_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.tensor([[2.0, -3.0, 0.5]])
    b = torch.tensor([1.5])
    x = torch.randn(n, 3, generator=g)
    y = x @ W.T + b + 0.01 * torch.randn(n, 1, generator=g)
    return W, b, [(x[i : i + 32], y[i : i + 32]) for i in range(0, n, 32)]


def test_fit_recovers_known_weights_and_bias():
    torch.manual_seed(0)
    W, b, batches = regression_data()
    model = nn.Linear(3, 1)
    history = fit(model, batches, supervised(F.mse_loss), epochs=40, lr=0.05, device="cpu", plot=False, val_data=batches[:2])
    assert torch.allclose(model.weight.detach(), W, atol=0.02)
    assert torch.allclose(model.bias.detach(), b, atol=0.02)
    assert history.train_loss[-1] < history.train_loss[0] / 100
    assert len(history.steps) == 40 * len(batches)
    assert history.val_steps[-1] == history.steps[-1]  # evaluated at the end


def test_fit_with_a_batch_function_and_steps():
    torch.manual_seed(0)
    W, b, _ = regression_data()

    def batch():
        x = torch.randn(16, 3)
        return x, x @ W.T + b

    model = nn.Linear(3, 1)
    fit(model, batch, supervised(F.mse_loss), steps=600, lr=0.05, device="cpu", plot=False)
    assert evaluate(model, batch, supervised(F.mse_loss), batches=5) < 1e-3


def test_supervised_flattens_sequence_logits_like_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    targets = torch.randint(0, 7, (2, 5))
    model = nn.Identity()
    expected = F.cross_entropy(logits.reshape(10, 7), targets.reshape(10))
    assert torch.allclose(supervised()(model, (logits, targets)), expected)


def test_lr_schedule_warms_up_then_decays_to_floor():
    lrs = [lr_at(s, 100, 1.0, warmup_steps=10, min_ratio=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))  # monotone decay after warm-up
    assert lr_at(100, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(55, 100, 1.0, 10, 0.0) == pytest.approx(0.5)  # half way through the cosine


def test_fit_applies_the_schedule_to_the_optimizer():
    _, _, batches = regression_data()
    history = fit(nn.Linear(3, 1), batches, supervised(F.mse_loss), steps=20, lr=0.1, warmup_steps=5, device="cpu", plot=False)
    assert history.lr == pytest.approx([lr_at(s, 20, 0.1, 5) for s in range(20)])


def test_gradient_clipping_bounds_the_update():
    model = nn.Linear(1, 1, bias=False)
    model.weight.data.fill_(0.0)
    x, y = torch.ones(1, 1), torch.full((1, 1), 1e6)  # a huge gradient
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    fit(model, [(x, y)], supervised(F.mse_loss), steps=1, optimizer=opt, grad_clip=1.0, device="cpu", plot=False)
    assert model.weight.abs().item() == pytest.approx(1.0, rel=1e-4)  # lr * clipped norm


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of"),
    ({"steps": 3, "epochs": 1}, "exactly one of"),
    ({"steps": 0}, "at least 1"),
])
def test_fit_rejects_bad_length(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit(nn.Linear(1, 1), [(torch.ones(1, 1), torch.ones(1, 1))], **kwargs, device="cpu", plot=False)


def test_fit_rejects_frozen_model_and_empty_data():
    frozen = nn.Linear(1, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(frozen, [(torch.ones(1, 1), torch.ones(1, 1))], steps=1, device="cpu", plot=False)
    with pytest.raises(ValueError, match="no batches"):
        fit(nn.Linear(1, 1), [], steps=1, device="cpu", plot=False)


def test_divergence_is_reported_not_hidden():
    x, y = torch.ones(1, 1), torch.full((1, 1), math.inf)
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(nn.Linear(1, 1), [(x, y)], supervised(F.mse_loss), steps=1, device="cpu", plot=False)


def test_to_device_rejects_non_tensors():
    with pytest.raises(TypeError, match="tensor"):
        to_device({"x": torch.ones(1)}, torch.device("cpu"))


def test_history_smoothing_is_bias_corrected():
    h = History(train_loss=[2.0, 2.0, 2.0])
    assert h.smoothed_train_loss() == pytest.approx([2.0, 2.0, 2.0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda_matches_cpu_closely():
    _, _, batches = regression_data()
    results = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = nn.Linear(3, 1)
        fit(model, batches, supervised(F.mse_loss), epochs=20, lr=0.05, device=device, plot=False)
        results.append(model.weight.detach().cpu())
    assert torch.allclose(*results, atol=0.05)
