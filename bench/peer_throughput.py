"""Training speed of the course's GPT against Hugging Face's GPT-2 of the same size, in one run.

    python bench/peer_throughput.py [--rounds 3] [--compile] [--device cpu]

Two sizes: the course's small GPT (4 layers, 4 heads, width 128, context 64, batch 12) and a wider
one (6 layers, 6 heads, width 384, context 256, batch 4) where matrix products and attention dominate;
a character vocabulary (65 tokens) for both. The contestants train from the same weights (the
course's initialisation, copied into ``GPT2LMHeadModel`` by ``fmcourse.export``) on the same batches,
with AdamW at the same learning rate and schedule, gradients clipped at 1, on the same threads:

- **fmcourse `fit`**: the course's GPT trained by ``fmcourse.train.fit`` (what a student runs);
- **fmcourse `fit`, compiled** (with ``--compile``): the same with ``compile=True`` (when a C++
  compiler is there; the compilation itself, on the first steps, is not timed but reported; it takes
  tens of seconds a size on a 2-core CPU, so it is left out by default);
- **fmcourse GPT, plain loop**: the course's GPT in the loop a student would write (below);
- **GPT2LMHeadModel, plain loop**: ``transformers``' GPT-2 (SDPA attention) in that loop with
  ``torch.optim.AdamW``'s defaults: the implementation a student would otherwise use;
- **GPT2LMHeadModel, plain loop, fused AdamW**: the same with the optimizer ``fit`` uses;
- **GPT2LMHeadModel, fused GELU, plain loop, fused AdamW**: the strongest GPT-2 a student could
  set up: its default GELU (``gelu_new``) is written out in several element-wise operations, and
  ``activation_function="gelu_pytorch_tanh"`` computes the same function in one kernel.

Rounds alternate the contestants; each one's fastest round is reported (slow rounds on a shared
machine measure the other work). Peak memory of training comes from a fresh process per
contestant: the growth of its resident memory from before the model is built to the peak of five
steps (CPU, Linux: the peak is reset after the imports), or ``torch.cuda.max_memory_allocated`` (CUDA). The losses of the first steps from the
same weights are compared too: the two models compute the same function, so they must agree within
float rounding. Writes bench/results/peer_throughput.md and prints it.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# A bounded spin, as `make lab`, `make test` and `make bench` set it (bench/results/threads.md); a setting
# of your own wins. Read when torch starts its threads.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "100000")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from fmcourse import env  # noqa: E402
from fmcourse.export import to_huggingface  # noqa: E402
from fmcourse.models import GPT, GPTConfig  # noqa: E402
from fmcourse.train import _cannot_compile, adamw, compile_model, fit, lr_at, supervised  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "peer_throughput.md"
VOCAB = 65  # a character vocabulary
SIZES = {
    "small": dict(config=GPTConfig(vocab_size=VOCAB, context_length=64, n_layer=4, n_head=4, d_model=128), batch=12, steps=20,
                  target=1.3),
    "wide": dict(config=GPTConfig(vocab_size=VOCAB, context_length=256, n_layer=6, n_head=6, d_model=384), batch=4, steps=3,
                 target=1.0),
}  # target: the ratio of steps per second against GPT2LMHeadModel that fmcourse's `fit` aims at
LR = 1e-3
CHECK_STEPS = 5  # steps whose losses are compared between the two models


def batches(size: str, count: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` fixed ``(inputs, targets)`` batches of random characters for ``size``."""
    spec, g = SIZES[size], torch.Generator().manual_seed(0)
    T = spec["config"].context_length
    tokens = [torch.randint(0, VOCAB, (spec["batch"], T + 1), generator=g) for _ in range(count)]
    return [(t[:, :-1], t[:, 1:]) for t in tokens]


def models(size: str, device: torch.device) -> tuple[GPT, nn.Module]:
    """The course's GPT and a ``GPT2LMHeadModel`` with the same weights, both in training mode on ``device``."""
    env.seed_everything(0)
    ours = GPT(SIZES[size]["config"])
    theirs = to_huggingface(ours)
    return ours.to(device).train(), theirs.to(device).train()


def fused_gelu(model: nn.Module) -> nn.Module:
    """``model`` (a GPT2LMHeadModel) with its GELU computed by one kernel (``gelu_pytorch_tanh``)."""
    from transformers.activations import ACT2FN

    model.config.activation_function = "gelu_pytorch_tanh"
    for block in model.transformer.h:
        block.mlp.act = ACT2FN["gelu_pytorch_tanh"]
    return model


def logits_of(model: nn.Module):
    """A function ``inputs -> logits`` for either model (GPT-2 returns an output object)."""
    return model if isinstance(model, GPT) else (lambda x: model(input_ids=x).logits)


class PlainLoop:
    """The training loop a student writes: forward, cross-entropy, backward, clip, AdamW; the learning
    rate follows ``fit``'s schedule (``lr_at``) over ``steps``, so both sides see the same rates."""

    def __init__(self, model: nn.Module, device: torch.device, fused: bool = False):
        self.model, self.forward, self.device = model, logits_of(model), device
        self.optimizer = adamw(model.parameters(), lr=LR) if fused else torch.optim.AdamW(model.parameters(), lr=LR)
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                         else torch.autocast("cpu", enabled=False))

    def train(self, data: list, steps: int) -> list[float]:
        losses = []
        for step in range(steps):
            inputs, targets = (t.to(self.device) for t in data[step % len(data)])
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(step, steps, LR)
            with self.autocast:
                loss = F.cross_entropy(self.forward(inputs).flatten(0, 1), targets.flatten())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            losses.append(loss.item())
        return losses


class FitLoop:
    """``fmcourse.train.fit`` on the course's GPT, continuing with one optimizer from call to call."""

    def __init__(self, model: GPT, device: torch.device, compiled: bool = False):
        self.model, self.device = model, device
        self.optimizer = adamw(model.parameters(), lr=LR)
        if compiled:
            compile_model(model, device)  # compiles on the first steps

    def train(self, data: list, steps: int) -> list[float]:
        cycle = iter(data * (steps // len(data) + 1))
        history = fit(self.model, lambda: next(cycle), supervised(), steps=steps, optimizer=self.optimizer,
                      device=self.device, plot=False, progress=False)
        return history.train_loss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(size: str, device: torch.device, rounds: int, compiled: bool) -> dict:
    """Steps per second of every contestant at ``size`` (the fastest of ``rounds`` alternating rounds)."""
    data, steps = batches(size), SIZES[size]["steps"]
    ours, theirs = models(size, device)
    contestants = {"fmcourse `fit`": FitLoop(copy.deepcopy(ours), device)}
    if compiled:
        contestants["fmcourse `fit`, compiled"] = FitLoop(copy.deepcopy(ours), device, compiled=True)
    contestants["fmcourse GPT, plain loop"] = PlainLoop(ours, device)
    contestants["GPT2LMHeadModel, plain loop"] = PlainLoop(copy.deepcopy(theirs), device)
    contestants["GPT2LMHeadModel, plain loop, fused AdamW"] = PlainLoop(copy.deepcopy(theirs), device, fused=True)
    contestants["GPT2LMHeadModel, fused GELU, plain loop, fused AdamW"] = PlainLoop(fused_gelu(theirs), device, fused=True)
    warm_up = {}
    for name, loop in contestants.items():  # allocations, kernel choice, compilation
        start = time.perf_counter()
        loop.train(data, 2)
        warm_up[name] = time.perf_counter() - start
    best = dict.fromkeys(contestants, 0.0)
    for _ in range(rounds):
        for name, loop in contestants.items():
            _sync(device)
            start = time.perf_counter()
            loop.train(data, steps)
            _sync(device)
            best[name] = max(best[name], steps / (time.perf_counter() - start))
    compile_seconds = warm_up["fmcourse `fit`, compiled"] if compiled else None
    return {"steps_per_second": best, "compile_seconds": compile_seconds}


def same_losses(size: str, device: torch.device) -> float:
    """The largest difference between the losses of ``CHECK_STEPS`` steps of ``fit`` on the course's GPT
    and of the plain loop (default AdamW) on GPT-2, from the same weights on the same batches."""
    data = batches(size)
    ours, theirs = models(size, device)
    a = FitLoop(ours, device).train(data, CHECK_STEPS)
    b = PlainLoop(theirs, device).train(data, CHECK_STEPS)
    return max(abs(x - y) for x, y in zip(a, b))


MEMORY = """
import json, resource, sys, torch
sys.path.insert(0, sys.argv[1])
import peer_throughput as bench
size, who, device = sys.argv[2], sys.argv[3], torch.device(sys.argv[4])
def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))
tiny = bench.GPTConfig(vocab_size=bench.VOCAB, context_length=8, n_layer=1, n_head=1, d_model=8)
data = [(torch.zeros(2, 8, dtype=torch.long, device=device),) * 2]
bench.FitLoop(bench.GPT(tiny).to(device), device).train(data, 1)  # lazy imports and one-time set-ups of
bench.PlainLoop(bench.to_huggingface(bench.GPT(tiny)).to(device), device).train(data, 1)  # both paths
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak resident memory (VmHWM): the imports' peak does not count
before = status("VmRSS")
if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
bench.env.seed_everything(0)
ours = bench.GPT(bench.SIZES[size]["config"])
if who == "fit":
    loop = bench.FitLoop(ours.to(device).train(), device)
else:
    loop = bench.PlainLoop(bench.to_huggingface(ours).to(device).train(), device)
    del ours
loop.train(bench.batches(size), 5)
peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else status("VmHWM") - before
print(json.dumps(peak))
"""


def peak_memory(size: str, who: str, device: torch.device) -> float:
    """Peak memory (MB) of training ``who`` ("fit" or "hf") at ``size``, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", MEMORY, str(Path(__file__).parent), size, who, str(device)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.split("\n")[-2]) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the fastest is reported")
    parser.add_argument("--compile", action="store_true", help="add the compiled contestant (minutes of compiling on a CPU)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: env.get_device())")
    args = parser.parse_args()
    device = env.get_device(args.device)
    compiled = args.compile and _cannot_compile(device) is None
    started = time.perf_counter()

    sections = []
    for size, spec in SIZES.items():
        print(f"measuring {size} ...", file=sys.stderr, flush=True)
        c = spec["config"]
        result = throughput(size, device, args.rounds, compiled)
        rate = result["steps_per_second"]
        baseline = rate["GPT2LMHeadModel, plain loop"]
        tokens = spec["batch"] * c.context_length
        rows = ["| contestant | steps/s | tokens/s | × GPT2LMHeadModel |", "|---|---:|---:|---:|"]
        rows += [f"| {name} | {r:.2f} | {r * tokens:,.0f} | {r / baseline:.2f} |" for name, r in rate.items()]
        linux = Path("/proc/self/clear_refs").exists()
        memory = ({who: peak_memory(size, who, device) for who in ("fit", "hf")}
                  if device.type == "cuda" or (device.type == "cpu" and linux) else {})
        difference = same_losses(size, device)
        n_params = sum(p.numel() for p in GPT(c).parameters())
        lines = [
            f"## {size}: {c.n_layer} layers, {c.n_head} heads, width {c.d_model}, context {c.context_length}, "
            f"batch {spec['batch']} ({n_params:,} parameters)", "", *rows, "",
            f"**fmcourse `fit` / GPT2LMHeadModel: {rate['fmcourse `fit`'] / baseline:.2f}×** the steps per second "
            f"(the model alone, both in the plain loop: {rate['fmcourse GPT, plain loop'] / baseline:.2f}×; against "
            f"GPT-2 with the same fused AdamW: "
            f"{rate['fmcourse `fit`'] / rate['GPT2LMHeadModel, plain loop, fused AdamW']:.2f}×; against the strongest "
            f"GPT-2, fused GELU and fused AdamW: "
            f"{rate['fmcourse `fit`'] / rate['GPT2LMHeadModel, fused GELU, plain loop, fused AdamW']:.2f}×).",
        ]
        if result["compile_seconds"] is not None:
            lines.append(f"Compiling took {result['compile_seconds']:.0f} s (the first two steps, not timed above).")
        if memory:
            lines.append(f"Peak memory of training: fmcourse `fit` {memory['fit']:.0f} MB, GPT2LMHeadModel plain loop "
                         f"{memory['hf']:.0f} MB.")
        lines.append(f"Losses of the first {CHECK_STEPS} steps from the same weights on the same batches (`fit` "
                     f"on the course's GPT, the plain loop on GPT-2): largest difference {difference:.1e}.")
        ratio = rate["fmcourse `fit`"] / baseline
        lines.append(f"Target {spec['target']:.1f}×: " + ("met." if ratio >= spec["target"] else
                     f"not met, by {spec['target'] - ratio:.2f} (the measured ratio is {ratio:.2f}×)."))
        sections.append("\n".join(lines))

    where = (torch.cuda.get_device_name(device) if device.type == "cuda" else
             f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    threads = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")
                        if k in os.environ) or "default thread settings"
    text = "\n\n".join([
        "# Training speed against Hugging Face's GPT-2",
        f"`python bench/peer_throughput.py --rounds {args.rounds}{' --compile' if args.compile else ''}`, "
        f"{datetime.date.today()}, on {device} ({where}, {threads}), torch {torch.__version__}; "
        f"{time.perf_counter() - started:.0f} s in all. Training steps per second, the fastest of {args.rounds} "
        f"alternating rounds; the contestants are described in the script's docstring. "
        f"{'' if compiled else 'No compiled contestant: ' + (_cannot_compile(device) or 'not asked for (--compile)') + '. '}"
        f"On a machine shared with other work the ratios, measured side by side, mean more than the rates.",
        *sections,
        "What differs: both models run the same matrix products (the same BLAS) and the same "
        "`F.scaled_dot_product_attention` kernel; GPT-2's default GELU is written out in several element-wise "
        "operations (each one also kept for the backward pass) where the course's model calls one kernel, which "
        "the fused-GELU contestant removes. `fit` adds AdamW's fused kernel (one pass over each tensor instead of several operations per "
        "parameter) and gradient clipping in one multi-tensor call (compare its row with the course's GPT in the plain loop). "
        "Against GPT-2 set up with both of these (its last row), what is left is the rest of the model's "
        "code, and the ratio says how much that is worth. "
        "`torch.compile` (`--compile`) is left out by default: on a 2-core CPU compiling takes tens of seconds a size.", "",
    ])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
