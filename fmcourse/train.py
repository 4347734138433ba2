"""The one training loop every chapter uses.

    history = fit(model, train_batches, loss_fn=supervised(F.cross_entropy), steps=500, lr=3e-3,
                  val_data=val_batches)

``train_data`` is a re-iterable of batches (a list, a DataLoader) or a function that returns a fresh
batch (random windows of a corpus, say). A batch is a tensor or a tuple of tensors; ``loss_fn(model,
batch)`` turns it into a scalar loss. The loop moves the model and each batch to the device, runs the
forward pass under bf16 autocast on CUDA, clips gradients, follows a warm-up + cosine learning-rate
schedule, shows a progress bar and live train/validation curves in JupyterLab, and returns a
``History``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from fmcourse import env

Batch = torch.Tensor | tuple | list
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


def supervised(criterion: Callable = F.cross_entropy) -> LossFn:
    """``loss_fn`` for batches ``(*inputs, targets)``: ``criterion(model(*inputs), targets)``.

    Outputs of shape ``(..., C)`` with targets ``(...)`` of class indices (a language model's
    ``(B, T, V)`` logits and ``(B, T)`` targets) are flattened to ``(N, C)`` and ``(N,)`` first.
    """

    def loss_fn(model: nn.Module, batch: Batch) -> torch.Tensor:
        *inputs, targets = batch
        outputs = model(*inputs)
        if outputs.dim() > 2 and targets.dim() == outputs.dim() - 1 and not targets.is_floating_point():
            outputs, targets = outputs.flatten(0, -2), targets.flatten()
        return criterion(outputs, targets)

    return loss_fn


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move a tensor, or every tensor in a (nested) tuple/list, to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(item, device) for item in batch)
    raise TypeError(f"a batch must be a tensor or a tuple/list of tensors, got {type(batch).__name__}")


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0, min_ratio: float = 0.1) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up to ``base_lr``, then cosine decay to
    ``min_ratio * base_lr`` at ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@dataclass
class History:
    """What happened during ``fit``: losses per step, validation losses, learning rates, time."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def smoothed_train_loss(self, weight: float = 0.9) -> list[float]:
        """Exponential moving average of the training loss, bias-corrected (readable curves)."""
        out, average = [], 0.0
        for i, value in enumerate(self.train_loss, start=1):
            average = weight * average + (1 - weight) * value
            out.append(average / (1 - weight**i))
        return out

    def plot(self, ax=None, title: str | None = None):
        """Train (raw and smoothed) and validation loss against step, on a log scale."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(7, 3.5))[1]
        ax.plot(self.steps, self.train_loss, color="C0", alpha=0.25, lw=1)
        ax.plot(self.steps, self.smoothed_train_loss(), color="C0", label="train")
        if self.val_steps:
            ax.plot(self.val_steps, self.val_loss, "o-", color="C1", label="validation")
        if self.train_loss and min(self.train_loss) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title or f"training: {len(self.steps)} steps in {self.seconds:.1f} s")
        ax.legend()
        return ax


class LiveCurves:
    """A loss plot that redraws in place in a notebook, at most every ``interval`` seconds."""

    def __init__(self, interval: float = 1.0):
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.interval, self.last = interval, 0.0
        self.fig, self.ax = plt.subplots(figsize=(7, 3.5))
        plt.close(self.fig)  # shown through the display handle only
        self.handle = display(self.fig, display_id=True)

    def update(self, history: History, force: bool = False) -> None:
        if not force and time.perf_counter() - self.last < self.interval:
            return
        self.ax.clear()
        history.plot(self.ax)
        self.handle.update(self.fig)
        self.last = time.perf_counter()


def evaluate(model: nn.Module, data: Iterable[Batch] | Callable[[], Batch], loss_fn: LossFn = supervised(),
             device: torch.device | None = None, batches: int = 10) -> float:
    """Mean loss over a finite iterable of batches, or over ``batches`` calls of a batch function."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    source = (data() for _ in range(batches)) if callable(data) else data
    with torch.no_grad(), _autocast(device):
        for batch in source:
            total += loss_fn(model, to_device(batch, device)).item()
            count += 1
    model.train(was_training)
    if count == 0:
        raise ValueError("validation data gave no batches")
    return total / count


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def _batches(data, steps: int):
    """Yield ``steps`` batches: calling ``data`` each time, or cycling through it."""
    if callable(data):
        for _ in range(steps):
            yield data()
        return
    given = 0
    while given < steps:
        empty = True
        for batch in data:
            empty = False
            yield batch
            given += 1
            if given == steps:
                return
        if empty:
            raise ValueError("training data gave no batches")


def fit(
    model: nn.Module,
    train_data: Iterable[Batch] | Callable[[], Batch],
    loss_fn: LossFn = supervised(),
    *,
    steps: int | None = None,
    epochs: int | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: torch.optim.Optimizer | None = None,
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.1,
    grad_clip: float | None = 1.0,
    val_data: Iterable[Batch] | Callable[[], Batch] | None = None,
    eval_every: int | None = None,
    device: torch.device | str | None = None,
    plot: bool = True,
    progress: bool = True,
) -> History:
    """Train ``model`` in place for ``steps`` optimizer steps (or ``epochs`` passes over the data).

    The optimizer defaults to AdamW (fused on CUDA). The learning rate warms up linearly for
    ``warmup_steps`` and then follows a cosine down to ``min_lr_ratio * lr``. Validation loss is
    measured every ``eval_every`` steps (default: 10 times a run) and at the end. In JupyterLab,
    ``plot`` draws live curves; under the test suite (FMCOURSE_HEADLESS=1) it draws the final curves
    once; in a script it draws nothing. ``progress`` shows a tqdm bar unless headless.
    """
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps=... or epochs=...")
    if epochs is not None:
        if callable(train_data):
            raise ValueError("epochs need a finite dataset; with a batch function give steps=...")
        steps = epochs * len(train_data)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    device = torch.device(device) if device is not None else env.get_device()
    model.to(device).train()
    if optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters (all requires_grad=False)")
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=device.type == "cuda")
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    eval_every = eval_every or max(1, steps // 10)

    history = History()
    live = LiveCurves() if plot and env.in_jupyter() and not env.headless() else None
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, disable=not progress or env.headless(), desc="training", leave=False)
    start = time.perf_counter()
    for step, batch in enumerate(_batches(train_data, steps)):
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = lr_at(step, steps, base, warmup_steps, min_lr_ratio)
        with _autocast(device):
            loss = loss_fn(model, to_device(batch, device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}: lower the learning rate (lr={lr})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()

        history.steps.append(step)
        history.train_loss.append(loss.item())
        history.lr.append(optimizer.param_groups[0]["lr"])
        if val_data is not None and ((step + 1) % eval_every == 0 or step + 1 == steps):
            history.val_steps.append(step)
            history.val_loss.append(evaluate(model, val_data, loss_fn, device))
            bar.set_postfix(val_loss=f"{history.val_loss[-1]:.3f}")
        bar.update()
        history.seconds = time.perf_counter() - start
        if live:
            live.update(history, force=step + 1 == steps)
    bar.close()
    model.eval()
    if plot and env.in_jupyter() and env.headless():
        import matplotlib.pyplot as plt

        history.plot()
        plt.show()
    return history
