"""Training throughput of the package's GPT: fast attention path against the teaching path, one run.

    python bench/gpt_throughput.py [--steps 20] [--rounds 5] [--device cpu]

The model is the course's small GPT: 4 layers, 4 heads, d_model 128, context 64, batch 12 (vocabulary
65, the size of a character vocabulary). Both paths train through ``fmcourse.train.fit`` on random
tokens. The rounds alternate the two paths, and each path's fastest round is reported (as `timeit`
does): on a machine shared with other work, slow rounds measure the other work, not the model. Writes bench/results/gpt_throughput.md and prints it.
"""

import argparse
import datetime
import os
import platform
from pathlib import Path

# A bounded spin, as `make lab`, `make test` and `make bench` set it: close to the fastest on an idle
# machine, no collapse on a busy one (bench/results/threads.md); a setting of your own wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "100000")

import torch  # noqa: E402

from fmcourse import env  # noqa: E402
from fmcourse.models import GPT, GPTConfig  # noqa: E402
from fmcourse.nn import set_fast_attention  # noqa: E402
from fmcourse.train import fit, supervised  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "gpt_throughput.md"
CONFIG = GPTConfig(vocab_size=65, context_length=64, n_layer=4, n_head=4, d_model=128)
BATCH = 12


def seconds_per_step(fast: bool, steps: int, device: torch.device) -> float:
    env.seed_everything(0)
    model = set_fast_attention(GPT(CONFIG), fast)
    g = torch.Generator().manual_seed(0)

    def batch():
        tokens = torch.randint(0, CONFIG.vocab_size, (BATCH, CONFIG.context_length + 1), generator=g)
        return tokens[:, :-1], tokens[:, 1:]

    options = dict(loss_fn=supervised(), lr=1e-3, device=device, plot=False, progress=False)
    fit(model, batch, steps=5, **options)  # warm-up: allocations, kernel choice
    if device.type == "cuda":
        torch.cuda.synchronize()
    return fit(model, batch, steps=steps, **options).seconds / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="measured training steps per round and path")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; the fastest is reported")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: env.get_device())")
    args = parser.parse_args()
    device = env.get_device(args.device)

    times = {True: [], False: []}
    for _ in range(args.rounds):
        for fast in (True, False):
            times[fast].append(seconds_per_step(fast, args.steps, device))
    tokens_per_step = BATCH * CONFIG.context_length
    rows = ["| attention path | steps/s | tokens/s |", "|---|---:|---:|"]
    rate = {}
    for fast, name in ((True, "fast (F.scaled_dot_product_attention)"), (False, "teaching (explicit softmax)")):
        rate[fast] = 1 / min(times[fast])
        rows.append(f"| {name} | {rate[fast]:.1f} | {rate[fast] * tokens_per_step:,.0f} |")
    n_params = sum(p.numel() for p in GPT(CONFIG).parameters())
    where = (torch.cuda.get_device_name(device) if device.type == "cuda" else
             f"{platform.machine()} CPU, {torch.get_num_threads()} threads, "
             + (", ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ)))
    text = (
        f"# GPT training throughput\n\n"
        f"Measured {datetime.date.today()} on {device} ({where}), torch {torch.__version__}. "
        f"GPT with {CONFIG.n_layer} layers, {CONFIG.n_head} heads, d_model {CONFIG.d_model}, context "
        f"{CONFIG.context_length}, batch {BATCH} ({tokens_per_step} tokens a step), {n_params:,} parameters; "
        f"AdamW through `fmcourse.train.fit`; fastest of {args.rounds} alternating rounds of {args.steps} steps.\n\n"
        + "\n".join(rows)
        + f"\n\nFast path / teaching path: **{rate[True] / rate[False]:.2f}×** the tokens per second.\n"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
