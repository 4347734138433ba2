import math
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fmcourse.train
from fmcourse.train import History, adamw, compile_model, evaluate, fit, lr_at, supervised, to_device


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
    ({"steps": 3, "minutes": 1}, "exactly one of"),
    ({"steps": 0}, "at least 1"),
    ({"minutes": 0}, "positive finite"),
    ({"minutes": math.nan}, "positive finite"),
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


# --- the training-curve plot and stages -------------------------------------------------------------

def _labels(ax) -> dict[float, str]:
    """Visible y tick labels by tick value, major and minor, after drawing."""
    ax.figure.canvas.draw()
    low, high = ax.get_ylim()
    ticks = {}
    for tick in ax.yaxis.get_major_ticks() + ax.yaxis.get_minor_ticks():
        value = tick.get_loc()
        if low <= value <= high and tick.label1.get_visible():
            ticks[round(value, 12)] = tick.label1.get_text()
    return ticks


def test_curve_plot_labels_every_decade_on_a_log_axis():
    import matplotlib.pyplot as plt

    steps = range(300)
    for floor, span in ((0.04, 2), (1e-4, 5)):  # about 2 and 5 decades
        history = History(steps=list(steps), train_loss=[2.3 * 0.96**s + floor for s in steps],
                          val_steps=[99, 199, 299], val_loss=[0.6, 0.1, 0.05])
        ax = history.plot()
        assert ax.get_yscale() == "log"
        labels = _labels(ax)
        low, high = ax.get_ylim()
        decades = [10.0**k for k in range(-6, 3) if low <= 10.0**k <= high]
        assert len(decades) >= span - 1
        for decade in decades:
            assert labels.get(round(decade, 12)) == f"{decade:g}", f"decade {decade} unlabelled: {labels}"
        assert all(text for text in labels.values()), "a tick without its label"
        if span == 2:
            assert labels.get(0.5) == "0.5", "a short span also labels 2 and 5 times a decade"
        else:
            assert set(labels.values()) == {f"{d:g}" for d in decades}, "a long span labels the decades only"
        plt.close(ax.figure)


def test_curve_plot_is_linear_with_labels_for_a_narrow_range():
    import matplotlib.pyplot as plt

    history = History(steps=[0, 1, 2, 3], train_loss=[1.4, 1.3, 1.25, 1.2], val_steps=[3], val_loss=[1.22])
    ax = history.plot()
    assert ax.get_yscale() == "linear"
    assert len([text for text in _labels(ax).values() if text]) >= 3
    plt.close(ax.figure)


def test_curve_plot_shows_raw_and_smoothed_loss_and_each_validation_point_once():
    import matplotlib.pyplot as plt

    model, batches = nn.Linear(2, 1), [(torch.randn(8, 2), torch.randn(8, 1)) for _ in range(4)]
    history = fit(model, batches, supervised(F.mse_loss), steps=20, eval_every=5, val_data=batches[:1],
                  device="cpu", plot=False)
    assert history.val_steps == [4, 9, 14, 19], "the last step is evaluated once, not twice"
    ax = history.plot()
    lines = {line.get_label(): line for line in ax.get_lines()}
    raw, smoothed, validation = lines["train (each step)"], lines["train (smoothed)"], lines["validation"]
    assert list(raw.get_ydata()) == history.train_loss and 0 < raw.get_alpha() < 1
    assert list(smoothed.get_ydata()) == history.smoothed_train_loss()
    assert len(validation.get_xdata()) == len(history.val_steps) == len(set(history.val_steps))
    final = [text for text in ax.texts if text.get_text() == f"{history.val_loss[-1]:.3g}"]
    assert len(final) == 1, "the last validation loss is written once"
    plt.close(ax.figure)


def test_stages_continue_the_step_axis():
    import matplotlib.pyplot as plt

    model, batches = nn.Linear(2, 1), [(torch.randn(8, 2), torch.randn(8, 1)) for _ in range(4)]
    history = fit(model, batches, supervised(F.mse_loss), steps=10, val_data=batches[:1], device="cpu", plot=False)
    seconds = history.seconds
    same = fit(model, batches, supervised(F.mse_loss), steps=6, lr=1e-4, val_data=batches[:1], device="cpu",
               plot=False, history=history, stage="lower lr")
    fit(model, batches, supervised(F.mse_loss), steps=4, device="cpu", plot=False, history=history)
    assert same is history
    assert history.steps == list(range(20)) and len(history.train_loss) == len(history.lr) == 20
    assert history.stage_starts == [(10, "lower lr"), (16, "stage 3")]
    assert history.val_steps == sorted(set(history.val_steps)) and history.val_steps[-1] == 15
    assert history.lr[10] < history.lr[9], "each stage has its own schedule"
    assert history.seconds >= seconds
    ax = history.plot()
    assert max(ax.get_lines()[0].get_xdata()) == 19
    assert [t.get_text() for t in ax.texts if t.get_text() in ("lower lr", "stage 3")] == ["lower lr", "stage 3"]
    plt.close(ax.figure)


def test_fused_adamw_takes_the_same_steps_as_the_default_one():
    torch.manual_seed(0)
    _, _, batches = regression_data()
    trained = []
    for make in (lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.01), lambda p: adamw(p, lr=0.05, weight_decay=0.01)):
        model = nn.Linear(3, 1)
        model.load_state_dict(nn.Linear(3, 1).state_dict() if not trained else trained[0][1])
        start = {k: v.clone() for k, v in model.state_dict().items()}
        fit(model, batches, supervised(F.mse_loss), steps=30, optimizer=make(model.parameters()), device="cpu", plot=False)
        trained.append((model, start))
    assert adamw(nn.Linear(2, 2).parameters()).defaults["fused"], "fused where torch has the kernel"
    for name, value in trained[0][0].state_dict().items():
        torch.testing.assert_close(trained[1][0].state_dict()[name], value, rtol=1e-5, atol=1e-6)


def test_a_time_budget_run_stops_near_its_budget_and_ends_at_the_lowest_rate():
    torch.manual_seed(0)
    W, b, batches = regression_data()
    adamw(nn.Linear(1, 1).parameters())  # the optimizer's first use imports much of torch: not the run's time
    seconds = 1.5
    started = time.perf_counter()
    history = fit(nn.Linear(3, 1), batches, supervised(F.mse_loss), minutes=seconds / 60, lr=0.05, warmup_steps=20,
                  min_lr_ratio=0.1, val_data=batches[:2], device="cpu", plot=False)
    wall = time.perf_counter() - started
    assert abs(wall - seconds) <= 0.1 * seconds, f"stopped after {wall:.2f} s of a {seconds} s budget"
    assert len(history.steps) > 100, "many steps fit in the budget"
    assert history.lr[-1] == pytest.approx(0.1 * 0.05), "the schedule ends at the minimum learning rate"
    assert history.lr[:20] == pytest.approx([0.05 * (s + 1) / 20 for s in range(20)]), "the warm-up keeps its steps"
    assert max(history.lr) == pytest.approx(0.05)
    assert history.val_steps[-1] == history.steps[-1] and len(history.val_steps) >= 5, "validated over the run and at its end"


def test_a_time_budget_state_does_not_resume_a_run_of_steps(tmp_path):
    _, _, batches = regression_data()
    state = tmp_path / "state.pt"
    fit(nn.Linear(3, 1), batches, supervised(F.mse_loss), minutes=0.002, device="cpu", plot=False, checkpoint=state)
    with pytest.raises(ValueError, match="saved by a run of 0.002 minutes, not steps"):
        fit(nn.Linear(3, 1), batches, supervised(F.mse_loss), steps=5, device="cpu", plot=False, checkpoint=state, resume=True)


def test_compiling_without_a_compiler_warns_and_trains_uncompiled(monkeypatch):
    monkeypatch.setattr(fmcourse.train, "_cannot_compile", lambda device: "no C++ compiler (g++ or clang++) is installed")
    _, _, batches = regression_data()
    model = nn.Linear(3, 1)
    with pytest.warns(UserWarning, match="torch.compile is not used: no C\\+\\+ compiler"):
        history = fit(model, batches, supervised(F.mse_loss), steps=5, device="cpu", plot=False, compile=True)
    assert len(history.steps) == 5 and getattr(model, "_compiled_call_impl", None) is None
    with pytest.warns(UserWarning, match="torch.compile is not used"):
        assert compile_model(nn.Linear(3, 1)) is False
