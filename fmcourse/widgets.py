"""Interactive explorers: sliders that redraw a plot, to see how a concept responds to its settings.

Each explorer comes in two parts:

- a plain function ``draw_<name>(..., ax=None)`` that draws one state and returns the numbers behind
  it, so a notebook can call it with defaults (it runs headless, under the test suite too) and
  assert on the result;
- ``<name>_explorer(...)``, the same function behind ipywidgets controls (built with ``explorer``),
  which redraws whenever a slider moves; it needs a live kernel to respond.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm

from fmcourse import env

# A loss of two parameters: takes tensors w and b of one (broadcastable) shape, returns that shape.
Loss2D = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def explorer(draw: Callable[..., object], **controls):
    """``draw`` behind controls: each keyword is an ipywidgets control (a slider) or a fixed value.

    Returns an ``ipywidgets.interactive`` (display it, or leave it as a cell's last line); it calls
    ``draw`` once with the controls' initial values and again whenever one changes. In a notebook
    run headless (the test suite runs notebooks with ``FMCOURSE_HEADLESS=1``) nobody can move a
    slider: it draws the initial state once and returns None.
    """
    import ipywidgets

    if env.in_jupyter() and env.headless():
        # Besides being useless there, widgets can stall notebook runners: nbclient sometimes misses
        # the reply to a cell that opens many widget comms (jupyter/nbclient#312).
        draw(**{name: c.value if isinstance(c, (ipywidgets.ValueWidget, ipywidgets.fixed)) else c
               for name, c in controls.items()})
        plt.show()
        return None

    drawn = []

    def show(**kwargs) -> None:
        drawn.append(kwargs)
        draw(**kwargs)
        plt.show()

    box = ipywidgets.interactive(
        show, **{name: c if isinstance(c, ipywidgets.Widget) else ipywidgets.fixed(c) for name, c in controls.items()}
    )
    if not drawn:  # ipywidgets 8 draws the initial state at once; 7 (Colab's) waits for a change
        box.update()
    return box


# --- loss landscape of a two-parameter model ------------------------------------------------------

def line_fit_loss(x: torch.Tensor, y: torch.Tensor) -> Loss2D:
    """The mean squared error of the line ``y = w x + b`` on data ``x``, ``y`` (N,), as a function of
    ``(w, b)``; ``w`` and ``b`` may be grids of any shape (the loss then has that shape)."""
    if x.dim() != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must both have shape (N,), got {tuple(x.shape)} and {tuple(y.shape)}")

    def loss(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (w.unsqueeze(-1) * x + b.unsqueeze(-1) - y).pow(2).mean(-1)

    return loss


def default_line_problem(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy points on the line ``y = 1.5 x - 0.5``, with x in [-0.5, 2.5]: off-centre inputs make the
    loss bowl a long, tilted valley, where the learning rate matters. Returns x, y, each (n,)."""
    g = torch.Generator().manual_seed(seed)
    x = -0.5 + 3 * torch.rand(n, generator=g, dtype=torch.float64)
    return x, 1.5 * x - 0.5 + 0.2 * torch.randn(n, generator=g, dtype=torch.float64)


def _diverged(p: torch.Tensor, blow_up: float) -> bool:
    return not torch.isfinite(p).all() or p.abs().max().item() > blow_up


def gradient_descent_path(loss_fn: Loss2D, start: tuple[float, float], lr: float, steps: int,
                          blow_up: float = 1e6) -> torch.Tensor:
    """Plain gradient descent ``p <- p - lr * grad L(p)`` on a loss of two parameters, from ``start``.

    Returns the visited points, shape (k + 1, 2) with k <= ``steps``: the path stops early when it
    diverges (a coordinate beyond ``blow_up`` or not finite).
    """
    if lr <= 0 or steps < 0:
        raise ValueError(f"need lr > 0 and steps >= 0, got lr={lr}, steps={steps}")
    p = torch.tensor(start, dtype=torch.float64)
    if p.shape != (2,):
        raise ValueError(f"start must be two numbers (w, b), got {start!r}")
    path = [p]
    for _ in range(steps):
        p = p.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(p[0], p[1]), p)
        p = (p - lr * grad).detach()
        path.append(p)
        if _diverged(p, blow_up):
            break
    return torch.stack(path)


def draw_loss_landscape(loss_fn: Loss2D | None = None, w0: float = -1.5, b0: float = 2.5, lr: float = 0.3,
                        steps: int = 40, extent: tuple[float, float, float, float] = (-2.0, 3.0, -2.5, 3.0),
                        ax: Axes | None = None) -> torch.Tensor:
    """Contours of ``loss_fn(w, b)`` over ``extent`` = (w_min, w_max, b_min, b_max) and the path of
    gradient descent from ``(w0, b0)`` with learning rate ``lr``. The default loss is the line fit of
    ``default_line_problem``. Returns the path, shape (k + 1, 2)."""
    loss_fn = loss_fn or line_fit_loss(*default_line_problem())
    w, b = torch.meshgrid(torch.linspace(extent[0], extent[1], 120, dtype=torch.float64),
                          torch.linspace(extent[2], extent[3], 120, dtype=torch.float64), indexing="xy")
    surface = loss_fn(w, b).numpy()
    path = gradient_descent_path(loss_fn, (w0, b0), lr, steps)

    ax = ax or plt.subplots(figsize=(6, 4.5))[1]
    levels = np.geomspace(max(surface.min(), 1e-3 * surface.max()), surface.max(), 15)
    filled = ax.contourf(w.numpy(), b.numpy(), surface, levels=levels, norm=LogNorm(), cmap="viridis", extend="both")
    bar = ax.figure.colorbar(filled, ax=ax, fraction=0.046, label="loss (log scale)")
    decades = [10.0**k for k in range(int(np.ceil(np.log10(levels[0]))), int(np.floor(np.log10(levels[-1]))) + 1)]
    bar.set_ticks(decades, labels=[f"{t:g}" for t in decades])
    bar.minorticks_off()
    ax.contour(w.numpy(), b.numpy(), surface, levels=levels, colors="white", linewidths=0.4)
    # Points far outside the view are pinned just beyond its edge, so a diverging path stays visible.
    low, high = torch.tensor(extent[::2]), torch.tensor(extent[1::2])
    shown = path.nan_to_num(posinf=1e9, neginf=-1e9).clamp(min=low - 1, max=high + 1).numpy()
    ax.plot(shown[:, 0], shown[:, 1], "o-", color="orange", ms=3, lw=1.2, label="gradient descent")
    ax.plot(*shown[0], "s", color="red", ms=8, label="start")
    lowest = np.unravel_index(surface.argmin(), surface.shape)
    ax.plot(w[lowest].item(), b[lowest].item(), "*", color="white", ms=12, label="lowest on grid")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("w (slope)")
    ax.set_ylabel("b (intercept)")
    first, last = (loss_fn(p[0], p[1]).item() for p in (path[0], path[-1]))
    if _diverged(path[-1], 1e6):
        status = f"diverged after {len(path) - 1} steps"
    elif last > first:
        status = f"diverging, loss {first:.3g} → {last:.3g}"
    else:
        status = f"loss {first:.3g} → {last:.3g} in {len(path) - 1} steps"
    ax.set_title(f"η = {lr:.3g}: {status}")
    ax.legend(loc="upper right", fontsize=8)
    return path


def loss_landscape_explorer(loss_fn: Loss2D | None = None,
                            extent: tuple[float, float, float, float] = (-2.0, 3.0, -2.5, 3.0)):
    """``draw_loss_landscape`` with sliders for the learning rate, the start point and the steps."""
    import ipywidgets as w

    style = dict(continuous_update=False, style={"description_width": "initial"})
    return explorer(
        draw_loss_landscape,
        loss_fn=loss_fn,
        extent=extent,
        lr=w.FloatLogSlider(value=0.3, base=10, min=-3, max=0.5, step=0.05, description="learning rate", **style),
        w0=w.FloatSlider(value=-1.5, min=extent[0], max=extent[1], step=0.1, description="start w", **style),
        b0=w.FloatSlider(value=2.5, min=extent[2], max=extent[3], step=0.1, description="start b", **style),
        steps=w.IntSlider(value=40, min=1, max=200, description="steps", **style),
    )


# --- attention of a trained Transformer ----------------------------------------------------------

def draw_attention(model: torch.nn.Module, idx: torch.Tensor, layer: int = 0, head: int = 0,
                   vocab: Sequence[str] | None = None, ax: Axes | None = None) -> torch.Tensor:
    """Where each position of one sequence looks, in one layer and head of ``model``.

    ``model`` has ``attention_maps(idx) -> (n_layer, B, n_head, T, T)`` (fmcourse's GPT and encoder);
    ``idx``: (T,) token ids; ``vocab``: a string per token id, for the axis labels. Returns the
    weights (T, T), rows = queries, columns = keys.
    """
    if idx.dim() != 1:
        raise ValueError(f"idx must be one sequence of token ids, shape (T,), got {tuple(idx.shape)}")
    maps = model.attention_maps(idx[None].to(next(model.parameters()).device))
    n_layer, _, n_head, T, _ = maps.shape
    if not (0 <= layer < n_layer and 0 <= head < n_head):
        raise ValueError(f"the model has layers 0..{n_layer - 1} and heads 0..{n_head - 1}, got layer {layer}, head {head}")
    weights = maps[layer, 0, head].cpu()
    labels = [vocab[i] for i in idx.tolist()] if vocab is not None else [str(i) for i in idx.tolist()]
    ax = ax or plt.subplots(figsize=(0.3 * T + 2, 0.3 * T + 1.5))[1]
    image = ax.imshow(weights.numpy(), cmap="Blues", vmin=0, vmax=1)
    plt.colorbar(image, ax=ax, fraction=0.046, label="attention weight")
    ax.set_xticks(range(T), labels)
    ax.set_yticks(range(T), labels)
    ax.set_xlabel("key (looked at)")
    ax.set_ylabel("query (looking)")
    ax.set_title(f"layer {layer}, head {head}")
    return weights


def attention_explorer(model: torch.nn.Module, examples: dict[str, torch.Tensor],
                       vocab: Sequence[str] | None = None):
    """``draw_attention`` with a menu of ``examples`` (name -> (T,) token ids) and layer/head sliders."""
    import ipywidgets as w

    def draw(example: str, layer: int, head: int) -> torch.Tensor:
        return draw_attention(model, examples[example], layer, head, vocab)

    style = dict(continuous_update=False, style={"description_width": "initial"})
    return explorer(
        draw,
        example=w.Dropdown(options=list(examples), description="input", style=style["style"]),
        layer=w.IntSlider(value=0, min=0, max=model.config.n_layer - 1, description="layer", **style),
        head=w.IntSlider(value=0, min=0, max=model.config.n_head - 1, description="head", **style),
    )


# --- temperature of a contrastive softmax --------------------------------------------------------

DEFAULT_SIMILARITIES = (0.8, 0.6, 0.4, 0.2, 0.1, 0.0, -0.1, -0.3)


def draw_temperature(similarities: Sequence[float] = DEFAULT_SIMILARITIES, temperature: float = 0.5,
                     ax: Axes | None = None) -> torch.Tensor:
    """The softmax ``exp(s_j / t) / sum_k exp(s_k / t)`` over one anchor's cosine similarities as bars:
    the first is its positive, the rest negatives. Returns the probabilities (len(similarities),);
    the InfoNCE loss of this anchor is ``-log`` of the first."""
    s = torch.as_tensor(similarities, dtype=torch.float64)
    if s.dim() != 1 or len(s) < 2:
        raise ValueError(f"need one positive and at least one negative similarity, got {list(similarities)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p = torch.softmax(s / temperature, dim=0)
    ax = ax or plt.subplots(figsize=(6, 3))[1]
    ax.bar(range(len(s)), p.numpy(), color=["C2"] + ["C0"] * (len(s) - 1))
    ax.set_xticks(range(len(s)), ["positive"] + [f"{v:+.1f}" for v in s[1:].tolist()], fontsize=8)
    ax.set_xlabel("candidate (its cosine similarity to the anchor)")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_title(f"t = {temperature:.3g}: loss -log p(positive) = {-p[0].log().item():.3f}")
    return p


def temperature_explorer(similarities: Sequence[float] = DEFAULT_SIMILARITIES):
    """``draw_temperature`` with a logarithmic slider for the temperature."""
    import ipywidgets as w

    slider = w.FloatLogSlider(value=0.5, base=10, min=-2, max=1, step=0.05, description="temperature",
                              continuous_update=False, style={"description_width": "initial"})
    return explorer(draw_temperature, similarities=similarities, temperature=slider)


# --- LoRA: rank and learning rate against accuracy and trainable parameters -------------------

Sweep = dict[tuple[int, float], tuple[float, int]]  # (rank, learning rate) -> (accuracy, trainable parameters)


def draw_lora_sweep(sweep: Sweep, rank: int, lr: float, references: dict[str, tuple[float, int]] | None = None,
                    ax: Axes | None = None) -> tuple[float, int]:
    """Accuracy against trainable parameters (log scale) for every rank of a LoRA sweep, one line per
    learning rate, with the run at ``(rank, lr)`` marked; ``references`` (name -> (accuracy,
    parameters)), such as full fine-tuning, are drawn as stars. Returns that run's (accuracy, parameters)."""
    if (rank, lr) not in sweep:
        raise ValueError(f"no run with rank={rank}, lr={lr:g} in the sweep; it has ranks "
                         f"{sorted({r for r, _ in sweep})} and learning rates {sorted({rate for _, rate in sweep})}")
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for i, rate in enumerate(sorted({rate for _, rate in sweep})):
        ranks = sorted(r for r, other in sweep if other == rate)
        accuracies, sizes = zip(*(sweep[r, rate] for r in ranks))
        ax.plot(sizes, accuracies, "o-", color=f"C{i}", label=f"LoRA, lr {rate:g}")
        for r, x, y in zip(ranks, sizes, accuracies):
            ax.annotate(f"r={r}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    for j, (name, (accuracy, size)) in enumerate((references or {}).items()):
        ax.plot(size, accuracy, "*", ms=14, color=f"C{7 + j}", label=name)
    accuracy, size = sweep[rank, lr]
    ax.plot(size, accuracy, "o", ms=16, mfc="none", mec="black", mew=2, label="selected")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"rank {rank}, lr {lr:g}: accuracy {accuracy:.1%} with {size:,} trainable parameters")
    ax.legend(fontsize=8, loc="best")
    return accuracy, size


def lora_sweep_explorer(sweep: Sweep, references: dict[str, tuple[float, int]] | None = None):
    """``draw_lora_sweep`` with a slider over the sweep's ranks and one over its learning rates."""
    import ipywidgets as w

    ranks, rates = sorted({r for r, _ in sweep}), sorted({rate for _, rate in sweep})
    style = dict(continuous_update=False, style={"description_width": "initial"})
    return explorer(
        draw_lora_sweep,
        sweep=sweep,
        references=references,
        rank=w.SelectionSlider(options=ranks, value=ranks[len(ranks) // 2], description="LoRA rank", **style),
        lr=w.SelectionSlider(options=rates, value=rates[-1], description="learning rate", **style),
    )


# --- detection: confidence and NMS thresholds against precision and recall -------------------------


def draw_detection_thresholds(outputs: torch.Tensor, images: torch.Tensor, truths: Sequence[tuple[torch.Tensor, torch.Tensor]],
                              image_size: int, class_names: Sequence[str], confidence: float = 0.5,
                              iou_threshold: float = 0.5, shown: int = 4) -> dict[str, float]:
    """Precision and recall (IoU >= 0.5 with a true box of the same class) of a grid detector's
    ``outputs`` ``(N, G, G, 5 + C)`` kept at ``confidence`` and ``iou_threshold``, as a point on the
    precision-recall curve of every confidence, with the boxes drawn over ``shown`` of the ``images``.
    Returns ``{"precision", "recall", "detections"}``."""
    from fmcourse.boxes import Detections, decode_boxes, match_detections, nms
    from fmcourse.viz import boxes_plot  # viz sits a floor below the explorers

    def found_at(threshold: float) -> list[Detections]:
        boxes = decode_boxes(outputs[..., 1:5], image_size).flatten(1, 2)
        class_p, classes = outputs[..., 5:].softmax(-1).max(-1)
        scores = (outputs[..., 0].sigmoid() * class_p).flatten(1)
        kept = []
        for b in range(len(outputs)):
            mine = scores[b] >= threshold
            keep = nms(boxes[b][mine], scores[b][mine], iou_threshold, labels=classes.flatten(1)[b][mine])
            kept.append(Detections(boxes[b][mine][keep], scores[b][mine][keep], classes.flatten(1)[b][mine][keep]))
        return kept

    def precision_recall(found: list[Detections]) -> tuple[float, float, int]:
        hits = total = predicted = 0
        for f, (boxes, labels) in zip(found, truths):
            for c in range(len(class_names)):
                mine = f.labels == c
                hits += int(match_detections(f.boxes[mine], f.scores[mine], boxes[labels == c]).sum())
            total += len(boxes)
            predicted += len(f.boxes)
        return hits / max(predicted, 1), hits / max(total, 1), predicted

    curve = [precision_recall(found_at(t))[:2] for t in np.linspace(0.02, 0.98, 13)]
    found = found_at(confidence)
    precision, recall, predicted = precision_recall(found)
    fig = plt.figure(figsize=(3.2 + 1.9 * shown, 2.8))
    grid = fig.add_gridspec(1, shown + 2)
    ax = fig.add_subplot(grid[0, :2])
    ax.plot([r for _, r in curve], [p for p, _ in curve], ".-", color="C0", lw=1, label="every confidence")
    ax.plot([recall], [precision], "o", color="C1", ms=9, label=f"confidence {confidence:.2f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"NMS at IoU {iou_threshold:.2f}", fontsize=9)
    for k in range(shown):
        f = found[k]
        boxes_plot(images[k], f.boxes, [f"{class_names[int(c)]} {s:.2f}" for c, s in zip(f.labels, f.scores)],
                   truths[k][0], ax=fig.add_subplot(grid[0, k + 2]), title=f"{len(f.boxes)} found, {len(truths[k][0])} true")
    fig.tight_layout()
    return {"precision": precision, "recall": recall, "detections": predicted}


def detection_explorer(outputs: torch.Tensor, images: torch.Tensor, truths: Sequence[tuple[torch.Tensor, torch.Tensor]],
                       image_size: int, class_names: Sequence[str]):
    """``draw_detection_thresholds`` with sliders for the confidence and the NMS IoU threshold."""
    import ipywidgets as w

    confidence = w.FloatSlider(value=0.5, min=0.02, max=0.98, step=0.02, description="confidence", continuous_update=False)
    overlap = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="NMS IoU", continuous_update=False)
    return explorer(draw_detection_thresholds, outputs=outputs, images=images, truths=truths, image_size=image_size,
                    class_names=class_names, confidence=confidence, iou_threshold=overlap)
