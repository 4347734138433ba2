"""Plots draw what they are given; explorers redraw on a slider change; gradient descent follows
its closed form on a quadratic."""

import ipywidgets
import matplotlib.pyplot as plt
import pytest
import torch

from fmcourse import env, viz, widgets
from fmcourse.objectives import mse


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# --- explorers ------------------------------------------------------------------------------------

def recorder():
    calls = []

    def draw(a, b):
        calls.append((a, b))

    return calls, draw


def test_explorer_draws_once_then_on_every_change():
    calls, draw = recorder()
    box = widgets.explorer(draw, a=ipywidgets.IntSlider(value=3, min=0, max=9), b="fixed")
    assert isinstance(box, ipywidgets.interactive)
    assert calls == [(3, "fixed")]
    box.children[0].value = 7
    assert calls[-1] == (7, "fixed")


def test_explorer_in_a_headless_notebook_draws_the_initial_state_and_returns_no_widget(monkeypatch):
    monkeypatch.setenv("FMCOURSE_HEADLESS", "1")
    monkeypatch.setattr(env, "in_jupyter", lambda: True)
    calls, draw = recorder()
    assert widgets.explorer(draw, a=ipywidgets.FloatSlider(value=0.5), b=ipywidgets.fixed(2)) is None
    assert calls == [(0.5, 2)]


def test_loss_landscape_explorer_has_its_sliders():
    box = widgets.loss_landscape_explorer()
    sliders = {c.description: c for c in box.children if isinstance(c, ipywidgets.ValueWidget)}
    assert set(sliders) == {"learning rate", "start w", "start b", "steps"}
    sliders["learning rate"].value = 0.01  # redraws without error
    assert box.kwargs["lr"] == pytest.approx(0.01)


# --- gradient descent on a quadratic, against its closed form -------------------------------------

A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)  # the Hessian
OPTIMUM = torch.tensor([1.0, -2.0], dtype=torch.float64)


def quadratic(w, b):
    e = torch.stack([w - OPTIMUM[0], b - OPTIMUM[1]])
    return 0.5 * (e * torch.einsum("ij,j...->i...", A, e)).sum(0)


def test_gradient_descent_matches_the_closed_form():
    lr, start = 0.1, torch.tensor([3.0, 3.0], dtype=torch.float64)
    path = widgets.gradient_descent_path(quadratic, tuple(start.tolist()), lr, steps=5)
    step = torch.eye(2, dtype=torch.float64) - lr * A  # e_{t+1} = (I - lr A) e_t
    expected = [OPTIMUM + torch.linalg.matrix_power(step, t) @ (start - OPTIMUM) for t in range(6)]
    torch.testing.assert_close(path, torch.stack(expected))


def test_gradient_descent_converges_below_two_over_lambda_max_and_diverges_above():
    critical = 2 / torch.linalg.eigvalsh(A).max().item()
    below = widgets.gradient_descent_path(quadratic, (3.0, 3.0), 0.95 * critical, steps=400)
    above = widgets.gradient_descent_path(quadratic, (3.0, 3.0), 1.05 * critical, steps=400)
    torch.testing.assert_close(below[-1], OPTIMUM)
    assert len(above) < 401 and above[-1].abs().max() > 1e6  # stopped early, blown up


def test_gradient_descent_rejects_bad_settings():
    with pytest.raises(ValueError, match="lr > 0"):
        widgets.gradient_descent_path(quadratic, (0.0, 0.0), -0.1, 10)
    with pytest.raises(ValueError, match="two numbers"):
        widgets.gradient_descent_path(quadratic, (0.0, 0.0, 1.0), 0.1, 10)


def test_line_fit_loss_is_the_mse_of_the_line_on_a_grid():
    x, y = widgets.default_line_problem(n=30)
    loss = widgets.line_fit_loss(x, y)
    w, b = torch.meshgrid(torch.linspace(-1, 2, 4, dtype=torch.float64), torch.linspace(0, 1, 3, dtype=torch.float64),
                          indexing="ij")
    surface = loss(w, b)
    assert surface.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            assert surface[i, j].item() == pytest.approx(mse(w[i, j] * x + b[i, j], y).item())
    with pytest.raises(ValueError, match=r"\(N,\)"):
        widgets.line_fit_loss(x[:, None], y)


def test_draw_loss_landscape_returns_the_path_it_draws():
    x, y = widgets.default_line_problem()
    path = widgets.draw_loss_landscape(lr=0.2, steps=15)
    torch.testing.assert_close(path, widgets.gradient_descent_path(widgets.line_fit_loss(x, y), (-1.5, 2.5), 0.2, 15))


# --- plots ----------------------------------------------------------------------------------------

def test_confusion_matrix_plot_writes_every_nonzero_count():
    matrix = torch.tensor([[5, 0, 1], [0, 7, 0], [2, 0, 4]])
    ax = viz.confusion_matrix_plot(matrix, class_names=["a", "b", "c"])
    assert sorted(t.get_text() for t in ax.texts) == sorted(["5", "1", "7", "2", "4"])
    assert "16 of 19 right" in ax.get_title()
    with pytest.raises(ValueError, match=r"\(C, C\)"):
        viz.confusion_matrix_plot(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="3 classes but 2 class names"):
        viz.confusion_matrix_plot(matrix, class_names=["a", "b"])


@pytest.mark.parametrize("shape", [(5, 8, 8), (5, 1, 8, 8), (5, 3, 8, 8), (5, 8, 8, 3)])
def test_image_grid_accepts_the_usual_layouts(shape):
    fig = viz.image_grid(torch.rand(shape), titles=list("abcde"), ncols=3)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 5 and len(fig.axes) == 6  # 2 rows of 3, the last panel empty
    assert [ax.get_title() for ax in shown] == list("abcde")


def test_image_grid_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        viz.image_grid(torch.rand(8, 8))
    with pytest.raises(ValueError, match="5 images but 2 titles"):
        viz.image_grid(torch.rand(5, 8, 8), titles=["a", "b"])


def test_layer_diagram_draws_one_line_per_weight():
    ax = viz.layer_diagram(torch.randn(3, 4), torch.zeros(3))
    assert len(ax.lines) == 12
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        viz.layer_diagram(torch.randn(3, 4), torch.zeros(4))


# --- detection -----------------------------------------------------------------------------------

def test_detection_thresholds_trade_precision_for_recall_on_perfect_and_noisy_outputs():
    from fmcourse.data.shapes import SHAPES, make_detection_scenes
    from fmcourse.models import detection_targets

    scenes = make_detection_scenes(20, seed=0)
    t = detection_targets(scenes.boxes, scenes.labels, 32, 4)
    g = torch.Generator().manual_seed(0)
    # objectness logits: +2 where an object is, noise elsewhere; exact boxes and classes
    obj = t.has_object.float() * 4 - 2 + torch.randn(t.has_object.shape, generator=g)
    classes = torch.nn.functional.one_hot(t.classes, 4).float() * 20
    outputs = torch.cat([obj[..., None], t.codes, classes], -1)
    truths = list(zip(scenes.boxes, scenes.labels))
    strict = widgets.draw_detection_thresholds(outputs, scenes.images, truths, 32, SHAPES, confidence=0.9)
    loose = widgets.draw_detection_thresholds(outputs, scenes.images, truths, 32, SHAPES, confidence=0.05)
    assert loose["recall"] == 1.0 and loose["detections"] > strict["detections"], "a low threshold finds every box"
    assert strict["precision"] >= loose["precision"] and strict["recall"] <= loose["recall"]
    ax = viz.boxes_plot(scenes.images[0], scenes.boxes[0], ["a"] * len(scenes.boxes[0]), scenes.boxes[0])
    assert len(ax.patches) == 2 * len(scenes.boxes[0])
