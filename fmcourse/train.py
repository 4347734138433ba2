"""The one training loop every chapter uses.

    history = fit(model, train_batches, loss_fn=supervised(F.cross_entropy), steps=500, lr=3e-3,
                  val_data=val_batches)

``train_data`` is a re-iterable of batches (a list, a DataLoader) or a function that returns a fresh
batch (random windows of a corpus, say). A batch is a tensor or a tuple of tensors; ``loss_fn(model,
batch)`` turns it into a scalar loss. The loop moves the model and each batch to the device, runs the
forward pass under bf16 autocast on CUDA, clips gradients, follows a warm-up + cosine learning-rate
schedule, shows a progress bar and live train/validation curves in JupyterLab, and returns a
``History``. ``fit(..., minutes=3)`` trains for a wall-clock budget instead of a number of steps, with
the schedule fitted to the steps that fit.

Long runs can be resumed: with ``checkpoint="runs/state.pt"`` the loop saves its whole state (model,
optimizer, position in the schedule, random-number generators, history) every ``checkpoint_every``
steps and when interrupted with Ctrl-C, each time in one atomic write; ``fit(..., checkpoint=...,
resume=True)`` with the same arguments continues where it stopped, and gives the same weights as a
run that was never interrupted (on a CPU; a batch function drawing from its own ``torch.Generator``
names it in ``generators`` so the data stream continues too).

Under ``torchrun`` pass a ``DistributedDataParallel`` model (``fmcourse.distributed.wrap``): the loop is
the same on every process, and only rank 0 shows progress and writes the training state.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import operator
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from fmcourse import distributed, env
from fmcourse.data.files import atomic_path

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
    """What happened during ``fit``: losses per step, validation losses, learning rates, time.

    Several ``fit`` calls can write into one History (``fit(..., history=h)``): each call is a
    *stage*, its steps continue where the previous stage stopped, and ``stage_starts`` records the
    first step of each stage after the first (with its name), so the plot marks where the stages meet.
    """

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    stage_starts: list[tuple[int, str]] = field(default_factory=list)

    @property
    def next_step(self) -> int:
        """The step number the next stage starts at (0 for an empty history)."""
        return self.steps[-1] + 1 if self.steps else 0

    def smoothed_train_loss(self, weight: float = 0.9) -> list[float]:
        """Exponential moving average of the training loss, bias-corrected (readable curves)."""
        out, average = [], 0.0
        for i, value in enumerate(self.train_loss, start=1):
            average = weight * average + (1 - weight) * value
            out.append(average / (1 - weight**i))
        return out

    def plot(self, ax=None, title: str | None = None):
        """Training loss (raw, faint, and smoothed) and validation loss (one marker per evaluation, the
        last one labelled with its value) against the step, with stage boundaries as dotted lines.

        The loss axis is logarithmic when the losses span at least a decade, with a label at every
        decade (and at 2 and 5 times it when the span is short), and linear otherwise.
        """
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(7, 3.5))[1]
        if self.steps:
            ax.plot(self.steps, self.train_loss, color="C0", alpha=0.3, lw=0.8, label="train (each step)")
            ax.plot(self.steps, self.smoothed_train_loss(), color="C0", lw=1.8, label="train (smoothed)")
        if self.val_steps:
            ax.plot(self.val_steps, self.val_loss, "o-", color="C1", ms=4, label="validation")
            ax.annotate(f"{self.val_loss[-1]:.3g}", (self.val_steps[-1], self.val_loss[-1]), textcoords="offset points",
                        xytext=(0, 7), ha="right", color="C1", fontsize=9)
        for start, name in self.stage_starts:
            ax.axvline(start - 0.5, color="grey", ls=":", lw=1)
            ax.annotate(name, (start - 0.5, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", color="grey", fontsize=8)
        loss_axis(ax, self.train_loss + self.val_loss)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title or f"training: {len(self.steps)} steps in {self.seconds:.1f} s")
        ax.legend(fontsize=8)
        return ax


def loss_axis(ax, values: list[float]) -> str:
    """Give ``ax`` a readable y axis for ``values``; returns the scale chosen ("log" or "linear").

    Positive values spanning at least a factor of 10 get a log axis with plain labels ("0.1", "1",
    "10") at every decade, and at 2 and 5 times each decade when the span is under three decades;
    other values get a linear axis.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    finite = [v for v in values if math.isfinite(v)]
    if not finite or min(finite) <= 0 or max(finite) / min(finite) < 10:
        ax.set_yscale("linear")
        return "linear"
    low, high = min(finite), max(finite)
    ax.set_yscale("log")
    ax.set_ylim(low / 1.25, high * 1.25)
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=30))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(2, 5) if high / low < 1e3 else (), numticks=30))
    ax.yaxis.set_minor_formatter(plain if high / low < 1e3 else NullFormatter())
    return "log"


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


def _batches(data, steps: int | None):
    """Yield ``steps`` batches (None: without end): calling ``data`` each time, or cycling through it."""
    if callable(data):
        for _ in range(steps) if steps is not None else itertools.count():
            yield data()
        return
    given = 0
    while steps is None or given < steps:
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
    history: History | None = None,
    stage: str | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    generators: Sequence[torch.Generator] = (),
    minutes: float | None = None,
    evaluations: int = 10,
    compile: bool = False,
) -> History:
    """Train ``model`` in place for ``steps`` optimizer steps (or ``epochs`` passes over the data, or
    ``minutes`` of wall-clock time).

    The optimizer defaults to AdamW (``adamw``: fused where torch has the kernel). The learning rate
    warms up linearly for ``warmup_steps`` and then follows a cosine down to ``min_lr_ratio * lr``.
    Validation loss is measured every ``eval_every`` steps (default: 10 times a run) and at the end.

    ``minutes`` trains for a time budget instead of a number of steps: before each step the number of
    steps that fit is estimated again from the mean time of the steps so far (validation included,
    and the time of one more validation kept for the last one), and the schedule is fitted to that
    estimate, so the last step runs at ``min_lr_ratio * lr`` and the run stops within about one step
    of the budget. It validates ``evaluations`` times, evenly over the budget, unless ``eval_every``
    is given. The warm-up keeps its ``warmup_steps``.

    ``compile`` compiles the model in place first (``compile_model``; it stays compiled). In JupyterLab,
    ``plot`` draws live curves; under the test suite (FMCOURSE_HEADLESS=1) it draws the final curves
    once; in a script it draws nothing. ``progress`` shows a tqdm bar unless headless.

    To train in stages (say, a warm-up run, then more steps with other settings), pass the History of
    the earlier stages as ``history``: this run appends to it, its steps continue the step axis, and
    its start is marked on the plot with ``stage`` (default "stage 2", "stage 3", ...). Each stage has
    its own learning-rate schedule over its own ``steps``. A given ``optimizer`` gets its learning
    rates back when ``fit`` returns (or fails), so calling ``fit`` again starts from the same peak.

    ``checkpoint`` (a file path) saves the training state every ``checkpoint_every`` steps (default:
    at each validation) and, when Ctrl-C arrives, at the end of the step under way (a second Ctrl-C
    stops at once); ``resume=True`` loads it and trains the remaining steps. The state is the model's
    and optimizer's tensors and the schedule position, saved with ``torch.save`` and read back with
    ``weights_only=True`` (no code runs on loading). ``generators`` are the ``torch.Generator`` objects that
    ``train_data`` draws from (``causal_lm_batches(..., generator=g)``): their states are saved
    too. A list of batches continues at the next batch; a shuffling DataLoader draws a new order.
    """
    entered = time.perf_counter()  # a time budget counts from here
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not (callable(train_data) or isinstance(train_data, Iterable)):
        raise TypeError(f"train_data must be a re-iterable of batches or a function returning a batch, "
                        f"got {type(train_data).__name__}")
    if (steps is not None) + (epochs is not None) + (minutes is not None) != 1:
        raise ValueError("give exactly one of steps=..., epochs=... or minutes=...")
    budget = None
    if minutes is not None:
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not (math.isfinite(minutes) and minutes > 0):
            raise ValueError(f"minutes must be a positive finite number, got {minutes!r}")
        budget = 60.0 * minutes  # seconds
        evaluations = _count("evaluations", evaluations, minimum=1)
        steps = sys.maxsize  # not known in advance: estimated as the run goes
    if epochs is not None:
        epochs = _count("epochs", epochs, minimum=1)
        if callable(train_data) or not hasattr(train_data, "__len__"):
            raise ValueError("epochs need a dataset with a length (a list, a DataLoader); otherwise give steps=...")
        steps = epochs * len(train_data)
    steps = _count("steps", steps, minimum=1)
    warmup_steps = _count("warmup_steps", warmup_steps, minimum=0)
    if eval_every is not None:
        eval_every = _count("eval_every", eval_every, minimum=1)
    if checkpoint_every is not None:
        checkpoint_every = _count("checkpoint_every", checkpoint_every, minimum=1)
    if optimizer is None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if not (isinstance(min_lr_ratio, (int, float)) and 0 <= min_lr_ratio <= 1):
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio!r}")
    if grad_clip is not None and not (isinstance(grad_clip, (int, float)) and grad_clip > 0):
        raise ValueError(f"grad_clip must be a positive number or None, got {grad_clip!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<the file the interrupted run saved>")
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if checkpoint.is_dir():
            raise IsADirectoryError(f"checkpoint must be a file path (say {checkpoint / 'training_state.pt'}), "
                                    f"but {checkpoint} is a folder")
        if resume and not checkpoint.is_file():
            raise FileNotFoundError(f"cannot resume: there is no training state at {checkpoint}")
    for g in generators:
        if not isinstance(g, torch.Generator):
            raise TypeError(f"generators must be torch.Generator objects, got {type(g).__name__}")
    device = torch.device(device) if device is not None else env.get_device()
    model.to(device).train()
    if compile:
        compile_model(model, device)
    if optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters (all requires_grad=False)")
        optimizer = adamw(params, lr=lr, weight_decay=weight_decay)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    if budget is None:
        eval_every = eval_every or max(1, steps // 10)
        checkpoint_every = checkpoint_every or eval_every

    if history is None:
        history = History()
    first, spent = 0, 0.0
    if resume:
        state = _read_state(checkpoint, None if budget else steps, budget)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        base_lrs, first, spent = list(state["base_lrs"]), state["done"], state.get("spent", 0.0)
        _set_rng_states(state["rng"], generators)
        for name, value in state["history"].items():
            setattr(history, name, [tuple(v) for v in value] if name == "stage_starts" else value)
        offset, earlier_seconds = state["offset"], history.seconds
    else:
        if history.steps:
            history.stage_starts.append((history.next_step, stage or f"stage {len(history.stage_starts) + 2}"))
        offset, earlier_seconds = history.next_step, history.seconds
    if first >= steps:
        model.eval()
        return history
    clock = _Budget(budget, spent, entered) if budget is not None else None
    foreach = _foreach_ok(model)  # gradient clipping in one multi-tensor call where torch can
    evaluated = sum(s >= offset for s in history.val_steps)  # validations of this stage so far

    def save_state(done: int) -> None:
        state = {"version": 1, "done": done, "steps": None if budget else steps, "budget": budget,
                 "spent": clock.elapsed() if clock else 0.0, "offset": offset, "base_lrs": base_lrs,
                 "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "rng": _rng_states(generators), "history": dataclasses.asdict(history)}
        with atomic_path(checkpoint) as tmp:
            torch.save(state, tmp)

    with _deferred_interrupt(enabled=checkpoint is not None) as interrupted, _restored_lrs(optimizer, base_lrs):
        live = LiveCurves() if plot and env.in_jupyter() and not env.headless() else None
        from tqdm.auto import tqdm

        bar = tqdm(total=None if clock else steps, initial=first,
                   disable=not progress or env.headless() or not distributed.is_main(),
                   desc="training", leave=False)
        start = time.perf_counter()
        if callable(train_data):
            batches = _batches(train_data, None if clock else steps - first)
        else:  # a list continues at the batch it stopped before
            batches = itertools.islice(_batches(train_data, None if clock else steps), first, None)
        for step in itertools.count(first):
            if clock is None:
                total = steps
                rate = lambda base: lr_at(step, steps, base, warmup_steps, min_lr_ratio)  # noqa: E731
            else:  # out of time, one more step still runs: the last, at the lowest rate
                total = max(clock.total(step), step + 1)
                rate = lambda base: _budget_lr(step, total, base, warmup_steps, min_lr_ratio)  # noqa: E731
                bar.total = total
            batch = next(batches, None) if step < total else None
            if batch is None:
                break
            last = step + 1 == total
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = rate(base)
            with _autocast(device):
                loss = loss_fn(model, to_device(batch, device))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}: lower the learning rate "
                                         f"(peak lr={base_lrs[0]:g})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip, foreach=foreach)
            optimizer.step()

            history.steps.append(offset + step)
            history.train_loss.append(loss.item())
            history.lr.append(optimizer.param_groups[0]["lr"])
            if eval_every is not None:
                validate = (step + 1) % eval_every == 0 or last
            else:  # a time budget: evenly over it
                validate = last or clock.elapsed() >= (evaluated + 1) * clock.seconds / evaluations
            if val_data is not None and validate:
                began = time.perf_counter()
                history.val_steps.append(offset + step)
                history.val_loss.append(evaluate(model, val_data, loss_fn, device))
                bar.set_postfix(val_loss=f"{history.val_loss[-1]:.3f}")
                evaluated += 1
                if clock:
                    clock.reserve = max(clock.reserve, time.perf_counter() - began)  # for the last validation
            bar.update()
            history.seconds = earlier_seconds + time.perf_counter() - start
            if live:
                live.update(history, force=last)
            save_now = (step + 1) % checkpoint_every == 0 if checkpoint_every is not None else validate
            if checkpoint is not None and distributed.is_main() and (save_now or last or interrupted):
                save_state(step + 1)  # under torchrun every process holds the same state: rank 0 writes it
            if interrupted:
                bar.close()
                of = f"about {total}" if clock else f"{steps}"
                raise KeyboardInterrupt(f"training interrupted after step {step + 1} of {of}; its state is saved in "
                                        f"{checkpoint}: call fit again with the same arguments and resume=True to go on")
            if last:
                break
        bar.close()
    model.eval()
    if plot and env.in_jupyter() and env.headless():
        import matplotlib.pyplot as plt

        history.plot()
        plt.show()
    return history


class _Budget:
    """A wall-clock budget of ``seconds`` (``spent`` of them before this call): how many steps fit."""

    def __init__(self, seconds: float, spent: float = 0.0, start: float | None = None):
        self.seconds, self.spent = seconds, spent
        self.start = time.perf_counter() if start is None else start  # a perf_counter() reading
        self.reserve = 0.0  # seconds kept for the last validation (the longest one so far)
        self.marks: list[tuple[int, float]] = []  # (steps done, seconds elapsed) at this call's start and first step

    def elapsed(self) -> float:
        return self.spent + time.perf_counter() - self.start

    def total(self, done: int) -> int:
        """The estimated number of steps of the whole run, ``done`` of them made: ``done`` plus as many
        steps as the time left holds, at the mean duration of this call's steps after its first (which
        carries one-time costs); ``done`` itself when none fits. Before the first step nothing is known:
        a very large number (the first step always runs)."""
        elapsed = self.elapsed()
        if not self.marks:  # the first call: no step made yet, or the steps of an interrupted run
            self.marks.append((done, elapsed))
            if done == 0:
                return sys.maxsize
            mean = elapsed / done
        else:
            if len(self.marks) == 1:
                self.marks.append((done, elapsed))  # the end of this call's first step
            since = self.marks[0] if done == self.marks[1][0] else self.marks[1]
            mean = (elapsed - since[1]) / (done - since[0])
        return done + max(0, int((self.seconds - elapsed - self.reserve) / max(mean, 1e-9)))


def _budget_lr(step: int, total: int, base_lr: float, warmup_steps: int, min_ratio: float) -> float:
    """The learning rate of a time-budget run at ``step`` of an estimated ``total``: ``lr_at``'s warm-up
    and cosine, reaching ``min_ratio * base_lr`` exactly at the last step (even when the budget is too
    short for the warm-up)."""
    if step >= total - 1:
        return min_ratio * base_lr
    return lr_at(step, total - 1, base_lr, warmup_steps, min_ratio)


def compile_model(model: nn.Module, device: torch.device | str | None = None) -> bool:
    """Compile ``model`` in place with ``torch.compile`` (``model.compile()``: the same module, parameters
    and state-dict names; its calls run the compiled graph) when this machine can, and return True.

    Compiling needs a C++ compiler for the CPU (or Triton for CUDA) and takes tens of seconds on the
    first call; where it cannot work, this warns once, naming what is missing, leaves the model as it
    is and returns False, so code that asks for compilation runs everywhere.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if getattr(model, "_compiled_call_impl", None) is not None:  # compiled already
        return True
    reason = _cannot_compile(device)
    if reason:
        import warnings

        warnings.warn(f"torch.compile is not used: {reason}; the model runs uncompiled", stacklevel=2)
        return False
    model.compile()
    return True


def _cannot_compile(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot work for ``device`` here, or None when it can."""
    import importlib.util
    import os
    import shutil

    try:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return f"torch {torch.__version__} cannot compile on this Python or system"
    except Exception as error:  # an unusual build without dynamo
        return f"this torch build has no compiler ({type(error).__name__})"
    if device.type == "cuda":
        return None if importlib.util.find_spec("triton") else "compiling for CUDA needs the triton package"
    if device.type != "cpu":
        return f"compiling for {device.type} is not supported by this course"
    compilers = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    if not any(name and shutil.which(name) for name in compilers):
        return "no C++ compiler (g++ or clang++) is installed"
    return None


def adamw(params, lr: float = 1e-3, weight_decay: float = 0.0, **options) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` with its fused kernel (one pass over each tensor for the whole update) where
    torch has one for every parameter's device and dtype (CUDA and CPU, floating point), else the default.

    Same algorithm, same results within float rounding; on the course's small GPT the fused kernel
    makes a CPU training step about a tenth faster (``bench/results/peer_throughput.md``).
    """
    params = list(params)
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    fused = bool(tensors) and all(p.device.type in ("cuda", "cpu") and p.is_floating_point() for p in tensors)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None, **options)


def _foreach_ok(model: nn.Module) -> bool | None:
    """Clip gradients with one multi-tensor call when the parameters sit on one device type torch's
    multi-tensor kernels accept (CPU or CUDA); None lets torch choose."""
    types = {p.device.type for p in model.parameters()}
    return True if types <= {"cpu", "cuda"} and len(types) == 1 else None


@contextmanager
def _restored_lrs(optimizer: torch.optim.Optimizer, lrs: list[float]):
    """Give the optimizer's groups their peak rates ``lrs`` back on leaving (a later ``fit`` starts there)."""
    try:
        yield
    finally:
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr


def _count(name: str, value, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``; a float (2.5 steps), a bool or a string is refused."""
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"{name} must be a whole number (an int), got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


class _deferred_interrupt:
    """While active (in the main thread), a first Ctrl-C only sets a flag, so the loop can finish
    its step, save, and stop cleanly; a second Ctrl-C interrupts at once."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.flag: list[bool] = []
        self.previous = None

    def __enter__(self) -> list[bool]:
        if self.enabled:
            def handler(signum, frame):
                if self.flag:
                    raise KeyboardInterrupt
                self.flag.append(True)

            self.previous = signal.signal(signal.SIGINT, handler)
        return self.flag

    def __exit__(self, *exc) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self.previous)


def _rng_states(generators: Sequence[torch.Generator]) -> dict:
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
        "generators": [g.get_state() for g in generators],
    }


def _set_rng_states(states: dict, generators: Sequence[torch.Generator]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if len(states["generators"]) != len(generators):
        raise ValueError(f"the training state holds {len(states['generators'])} generator(s), but "
                         f"generators= gives {len(generators)}: pass the same ones as the interrupted run")
    for g, saved in zip(generators, states["generators"]):
        g.set_state(saved)


def _read_state(path: Path, steps: int | None, budget: float | None = None) -> dict:
    """The training state saved at ``path``, checked against this run's ``steps`` (None for a run of a
    time budget of ``budget`` seconds)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} is not a training state that fit saved ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("version") != 1:
        raise ValueError(f"{path} is not a training state that fit saved")
    if state.get("budget") != budget:
        saved, given = (f"{b / 60:g} minutes" if b else "steps" for b in (state.get("budget"), budget))
        raise ValueError(f"{path} was saved by a run of {saved}, not {given}: resume with the same budget "
                         f"(the learning-rate schedule depends on it)")
    if state["steps"] != steps:
        raise ValueError(f"{path} was saved by a run of {state['steps']} steps, not {steps}: resume with the same "
                         f"steps (the learning-rate schedule depends on them)")
    return state
