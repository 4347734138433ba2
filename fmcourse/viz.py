"""Plots the chapters share.

Every function draws into ``ax`` when one is given (a new figure otherwise) and returns what it drew
on, so plots compose into subplots: ``fig, (a, b) = plt.subplots(1, 2); confusion_matrix_plot(m, ax=a)``.
Inputs may be torch tensors or NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from fmcourse.metrics import Calibration


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def confusion_matrix_plot(matrix, class_names: Sequence[str] | None = None, ax: Axes | None = None,
                          normalize: bool = False, title: str | None = None) -> Axes:
    """A confusion matrix (C, C) as a heat map, rows = true class, columns = predicted, counts written in.

    ``normalize`` divides each row by its total, so a cell reads "fraction of class i predicted as j".
    """
    counts = _numpy(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix has shape (C, C), got {counts.shape}")
    n = counts.shape[0]
    names = [str(i) for i in range(n)] if class_names is None else list(class_names)
    if len(names) != n:
        raise ValueError(f"{n} classes but {len(names)} class names")
    values = counts / np.maximum(counts.sum(1, keepdims=True), 1) if normalize else counts
    ax = ax or plt.subplots(figsize=(0.45 * n + 2, 0.45 * n + 1.5))[1]
    image = ax.imshow(values, cmap="Blues")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class" if normalize else "count")
    high = values.max() if values.size else 0
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                text = f"{values[i, j]:.2f}" if normalize else f"{counts[i, j]:d}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] > 0.6 * high else "black")
    ax.set_xticks(range(n), names)
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or f"confusion matrix: {int(np.trace(counts))} of {int(counts.sum())} right")
    return ax


def image_grid(images, titles: Sequence[str] | None = None, ncols: int = 8, cmap: str = "gray_r",
               size: float = 1.2, title_colors: Sequence[str] | None = None) -> Figure:
    """Images in a grid, one small panel each, with an optional title per image.

    ``images``: (N, H, W) grey-scale, or (N, C, H, W) with C = 1 or 3 (torch's layout), or
    (N, H, W, 3). ``size`` is the panel size in inches.
    """
    array = _numpy(images)
    if array.ndim == 4 and array.shape[1] in (1, 3):
        array = array.transpose(0, 2, 3, 1)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] != 3) or len(array) == 0:
        raise ValueError(f"images must have shape (N, H, W), (N, C, H, W) or (N, H, W, 3) with N >= 1, got {_numpy(images).shape}")
    for name, labels in (("titles", titles), ("title_colors", title_colors)):
        if labels is not None and len(labels) != len(array):
            raise ValueError(f"{len(array)} images but {len(labels)} {name}")
    ncols = min(ncols, len(array))
    nrows = -(-len(array) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3 * nrows * bool(titles)),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(array):
            ax.imshow(array[k], cmap=cmap if array.ndim == 3 else None)
            if titles is not None:
                ax.set_title(titles[k], fontsize=9, **({} if title_colors is None else {"color": title_colors[k]}))
    fig.tight_layout()
    return fig


def layer_diagram(weight, bias=None, activation: str = "f", ax: Axes | None = None) -> Axes:
    """A picture of the layer ``y = f(W x + b)``: inputs on the left, outputs on the right, one line
    per weight ``W[j, i]`` from input ``i`` to output ``j``, red for positive and blue for negative,
    thicker for larger magnitude. ``weight``: (out, in); ``bias``: (out,), written next to each output.
    """
    W = _numpy(weight)
    if W.ndim != 2:
        raise ValueError(f"weight must have shape (out_features, in_features), got {W.shape}")
    n_out, n_in = W.shape
    b = None if bias is None else _numpy(bias)
    if b is not None and b.shape != (n_out,):
        raise ValueError(f"bias must have shape ({n_out},), one per output, got {b.shape}")
    ax = ax or plt.subplots(figsize=(5, 0.6 * max(n_in, n_out) + 1))[1]
    y_in = np.linspace(0, 1, n_in) if n_in > 1 else np.array([0.5])
    y_out = np.linspace(0.1, 0.9, n_out) if n_out > 1 else np.array([0.5])
    scale = np.abs(W).max() or 1.0
    colors = plt.get_cmap("coolwarm")
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-scale, vmax=scale)
    for j in range(n_out):
        for i in range(n_in):
            ax.plot([0, 1], [y_in[i], y_out[j]], color=colors(norm(W[j, i])), lw=0.5 + 3 * abs(W[j, i]) / scale,
                    zorder=1)
    ax.scatter(np.zeros(n_in), y_in, s=500, color="white", edgecolor="black", zorder=2)
    ax.scatter(np.ones(n_out), y_out, s=500, color="white", edgecolor="black", zorder=2)
    for i, y in enumerate(y_in):
        ax.text(0, y, f"$x_{{{i + 1}}}$", ha="center", va="center", zorder=3)
    for j, y in enumerate(y_out):
        ax.text(1, y, f"$y_{{{j + 1}}}$", ha="center", va="center", zorder=3)
        if b is not None:
            ax.text(1.08, y, f"$b_{{{j + 1}}}$ = {b[j]:+.2f}", va="center", fontsize=9)
    ax.set_xlim(-0.2, 1.5)
    ax.set_ylim(-0.1, 1.1)
    ax.axis("off")
    ax.set_title(f"$y = {activation}(Wx + b)$, W of shape ({n_out}, {n_in})")
    return ax


def attention_grid(maps, labels: Sequence[str] | None = None, size: float = 1.8) -> Figure:
    """Attention weights of every layer (rows) and head (columns) for one sequence.

    ``maps``: (n_layer, n_head, T, T) or (n_head, T, T), ``maps[l, h, i, j]`` = how much query ``i``
    looks at key ``j``. ``labels``: T strings (the tokens), written along the outer axes.
    """
    array = _numpy(maps)
    array = array[None] if array.ndim == 3 else array
    if array.ndim != 4 or array.shape[-1] != array.shape[-2]:
        raise ValueError(f"maps must have shape (n_layer, n_head, T, T) or (n_head, T, T), got {_numpy(maps).shape}")
    n_layer, n_head, T, _ = array.shape
    if labels is not None and len(labels) != T:
        raise ValueError(f"{T} positions but {len(labels)} labels")
    fig, axes = plt.subplots(n_layer, n_head, figsize=(size * n_head + 0.6, size * n_layer + 0.4), squeeze=False)
    for (layer, head), ax in np.ndenumerate(axes):
        ax.imshow(array[layer, head], cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"layer {layer}, head {head}", fontsize=9)
        ax.set_xticks(range(T), labels if labels is not None and layer == n_layer - 1 else [], fontsize=7)
        ax.set_yticks(range(T), labels if labels is not None and head == 0 else [], fontsize=7)
    fig.supxlabel("key (looked at)", fontsize=10)
    fig.supylabel("query (looking)", fontsize=10)
    fig.tight_layout()
    return fig


def embedding_map(features, labels, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Features (N, D) projected onto their first two principal components, one dot per example,
    coloured by its label (N,) (integers); the percentage of variance each axis keeps is in its label."""
    x, y = _numpy(features).astype(np.float64), _numpy(labels)
    if x.ndim != 2 or y.shape != (len(x),) or len(x) < 2:
        raise ValueError(f"features must be (N, D) with N >= 2 and labels (N,), got {x.shape} and {y.shape}")
    centred = x - x.mean(0)
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    points = centred @ directions[:2].T
    kept = singular[:2] ** 2 / max((singular**2).sum(), 1e-12)
    ax = ax or plt.subplots(figsize=(5, 4.5))[1]
    for label in np.unique(y):
        chosen = y == label
        ax.scatter(points[chosen, 0], points[chosen, 1], s=6, alpha=0.7, color=plt.get_cmap("tab10")(int(label) % 10),
                   label=str(label))
    ax.set_xlabel(f"PC 1 ({kept[0]:.0%} of the variance)")
    ax.set_ylabel(f"PC 2 ({kept[1]:.0%})" if len(kept) > 1 else "PC 2")
    ax.legend(markerscale=3, fontsize=7, ncols=2, loc="best")
    ax.set_title(title or "embedding map")
    return ax


def reliability_diagram(calibration: Calibration, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Accuracy against confidence per bin of a ``fmcourse.metrics.Calibration``: bars at each bin's
    accuracy, a dot at its mean confidence, the diagonal where a calibrated model would lie; the bin
    counts are written in and the expected calibration error is in the title."""
    edges, counts = _numpy(calibration.edges), _numpy(calibration.counts)
    accuracy, confidence = _numpy(calibration.accuracy), _numpy(calibration.confidence)
    filled = counts > 0
    ax = ax or plt.subplots(figsize=(4.5, 4))[1]
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="calibrated")
    ax.bar(edges[:-1][filled], accuracy[filled], width=np.diff(edges)[filled], align="edge", color="C0", alpha=0.7,
           edgecolor="white", label="accuracy in the bin")
    ax.plot(confidence[filled], accuracy[filled], "o", color="C3", ms=4, label="mean confidence")
    for left, width, height, count in zip(edges[:-1][filled], np.diff(edges)[filled], accuracy[filled], counts[filled]):
        ax.text(left + width / 2, height + 0.01, str(int(count)), ha="center", va="bottom", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title or f"reliability: ECE {calibration.ece:.3f}")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def boxes_plot(image, boxes=None, labels: Sequence[str] | None = None, true_boxes=None, ax: Axes | None = None,
               title: str | None = None) -> Axes:
    """One image ``(3, H, W)`` with predicted ``boxes`` ``(K, 4)`` (corners in pixels, solid, each with its
    ``labels[k]`` written above it) and ``true_boxes`` ``(T, 4)`` (dashed white)."""
    from matplotlib.patches import Rectangle

    array = _numpy(image)
    if array.ndim != 3 or array.shape[0] not in (1, 3):
        raise ValueError(f"image must have shape (C, H, W) with C = 1 or 3, got {array.shape}")
    ax = ax or plt.subplots(figsize=(3, 3))[1]
    ax.imshow(array.transpose(1, 2, 0).squeeze())
    for box in _numpy(true_boxes) if true_boxes is not None else []:
        x1, y1, x2, y2 = box - 0.5  # pixel k covers [k - 0.5, k + 0.5] in imshow's coordinates
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="white", ls="--", lw=1))
    for k, box in enumerate(_numpy(boxes) if boxes is not None else []):
        x1, y1, x2, y2 = box - 0.5
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="C1", lw=1.5))
        if labels is not None:
            ax.text(x1, y1 - 0.6, labels[k], color="C1", fontsize=7, va="bottom")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax
