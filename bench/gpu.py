"""The course's GPT on a CUDA GPU: training throughput and model FLOPs utilisation, then the GPU tests.

    python bench/gpu.py [--steps 20] [--no-compile] [--no-tests]

For GPT sizes from the course's small one to about 85 M parameters (a character vocabulary), it
trains with ``fmcourse.train.fit`` as a chapter does on a GPU (bf16 autocast, the fast attention path
``F.scaled_dot_product_attention``, fused AdamW), uncompiled and compiled (``fit(compile=True)``), and
reports tokens per second, peak memory and the model FLOPs utilisation: the FLOPs the model needs,
three times ``fmcourse.models.forward_flops`` per sequence (forward, and a backward pass of twice
its cost), per second, divided by the GPU's bf16 matrix-multiply peak. The peak is measured here
with a large bf16 matrix product (and the maker's dense bf16 figure is shown where the GPU is known).
Then it runs every test marked ``gpu`` (``pytest -m gpu``). Writes bench/results/gpu.md and prints it.

Without CUDA it says so and exits with status 0: there is nothing to measure.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "gpu.md"
VOCAB = 65
# name: (n_layer, n_head, d_model, context_length, batch)
SIZES = {
    "course small": (4, 4, 128, 64, 256),
    "pretrain default": (2, 4, 64, 64, 512),
    "wide": (6, 6, 384, 256, 64),
    "GPT-2 small shape": (12, 12, 768, 1024, 16),
}
# dense bf16 tensor-core peaks from the makers' data sheets, TFLOP/s (without sparsity)
NOMINAL_BF16_TFLOPS = {"H200": 989, "H100 PCIe": 756, "H100 NVL": 835, "H100": 989, "A100": 312, "L40S": 362,
                       "L4": 121, "A10G": 70, "A10": 125, "RTX 4090": 165, "RTX 3090": 71}


def matmul_peak(device: torch.device, n: int = 8192, repeats: int = 20) -> float:
    """Measured bf16 matrix-multiply FLOP/s: the best of ``repeats`` products of two ``(n, n)`` matrices."""
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def nominal_peak(name: str) -> float | None:
    for key, tflops in NOMINAL_BF16_TFLOPS.items():  # the more specific names come first
        if key in name:
            return tflops * 1e12
    return None


def train_rate(size: tuple, device: torch.device, steps: int, compiled: bool) -> dict:
    """Tokens per second, model FLOP/s and peak memory of ``fit`` on one GPT size."""
    from fmcourse import env
    from fmcourse.models import GPT, GPTConfig, forward_flops
    from fmcourse.train import fit, supervised

    n_layer, n_head, d_model, context, batch = size
    config = GPTConfig(vocab_size=VOCAB, context_length=context, n_layer=n_layer, n_head=n_head, d_model=d_model)
    env.seed_everything(0)
    model = GPT(config)
    g = torch.Generator(device=device).manual_seed(0)

    def batches():
        tokens = torch.randint(0, VOCAB, (batch, context + 1), device=device, generator=g)
        return tokens[:, :-1], tokens[:, 1:]

    options = dict(loss_fn=supervised(), lr=1e-3, device=device, plot=False, progress=False, compile=compiled)
    started = time.perf_counter()
    fit(model, batches, steps=3, **options)  # warm-up: allocations, kernel choice, compilation
    warm_up = time.perf_counter() - started
    torch.cuda.reset_peak_memory_stats(device)
    seconds = fit(model, batches, steps=steps, **options).seconds  # loss.item() each step synchronises
    flops_per_step = 3 * batch * sum(forward_flops(config, context).values())
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_second": steps * batch * context / seconds,
        "flops_per_second": steps * flops_per_step / seconds,
        "memory_gb": torch.cuda.max_memory_allocated(device) / 1e9,
        "warm_up_seconds": warm_up,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per size and setting")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled runs")
    parser.add_argument("--no-tests", action="store_true", help="do not run the tests marked gpu")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"bench/gpu.py needs a CUDA GPU; torch {torch.__version__} finds none here "
              f"(torch.cuda.is_available() is False), so there is nothing to measure.")
        return 0
    sys.path.insert(0, str(ROOT))
    from fmcourse.train import _cannot_compile

    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = matmul_peak(device)
    nominal = nominal_peak(name)
    why_not = "not asked for (--no-compile)" if args.no_compile else _cannot_compile(device)
    settings = [False] if why_not else [False, True]
    rows = ["| size | parameters | batch × context | compiled | tokens/s | MFU (measured peak) | MFU (nominal peak) "
            "| peak memory | warm-up |", "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for label, size in SIZES.items():
        for compiled in settings:
            print(f"{label}, {'compiled' if compiled else 'eager'} ...", file=sys.stderr, flush=True)
            r = train_rate(size, device, args.steps, compiled)
            mfu_nominal = f"{r['flops_per_second'] / nominal:.1%}" if nominal else "—"
            rows.append(f"| {label} ({size[0]} layers, width {size[2]}) | {r['parameters'] / 1e6:.1f} M | "
                        f"{size[4]} × {size[3]} | {'yes' if compiled else 'no'} | {r['tokens_per_second']:,.0f} | "
                        f"{r['flops_per_second'] / peak:.1%} | {mfu_nominal} | {r['memory_gb']:.2f} GB | "
                        f"{r['warm_up_seconds']:.0f} s |")
    tests = "not run (--no-tests)"
    if not args.no_tests:
        environment = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"],
                             cwd=ROOT, capture_output=True, text=True, env=environment)
        tests = f"`pytest -m gpu tests`: {(run.stdout.strip().splitlines() or ['no output'])[-1]} (exit status {run.returncode})"
    text = "\n".join([
        "# The course's GPT on a GPU", "",
        f"`python bench/gpu.py --steps {args.steps}` on {name}, {datetime.date.today()}, torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}. Training through `fmcourse.train.fit` (bf16 autocast, SDPA attention, fused "
        f"AdamW) on random characters (vocabulary {VOCAB}); {args.steps} timed steps after 3 of warm-up. "
        f"Measured bf16 matrix-multiply peak: {peak / 1e12:.0f} TFLOP/s"
        + (f"; the maker's dense bf16 figure: {nominal / 1e12:.0f} TFLOP/s." if nominal else ".")
        + ("" if len(settings) == 2 else f" No compiled runs: {why_not}."), "",
        "MFU counts the model's matrix-multiply FLOPs (three times `forward_flops`: forward and backward) per second.",
        "", *rows, "", f"GPU tests: {tests}", ""])
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
