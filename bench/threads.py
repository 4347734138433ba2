"""How OpenMP's waiting policy changes the speed of a small model, on an idle and on a busy machine.

    python bench/threads.py [--seconds 4] [--rounds 3]

torch's CPU threads (GNU OpenMP) spin for a while when they wait for each other, then sleep. On an
idle machine spinning is fastest; when other processes want the same cores, spinning threads burn
the time the others need, and a small model slows down many times. Each setting below trains the
course's small GPT (4 layers, width 128, context 64, batch 12) in a fresh process, with the machine otherwise idle, with a busy loop on every core, and beside a second torch
training; rounds alternate the settings, and each cell of the table is the best round (slow rounds measure the machine's other work).
Writes bench/results/threads.md and prints it. `make lab` uses the setting chosen from this table.
"""

import argparse
import datetime
import multiprocessing
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "threads.md"
SETTINGS = {
    "default (spin, then sleep)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=100000": {"GOMP_SPINCOUNT": "100000"},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
}
TRAIN = """
import sys, time, torch
from fmcourse.models import GPT, GPTConfig
from fmcourse.train import fit, supervised
torch.manual_seed(0)
config = GPTConfig(vocab_size=65, context_length=64, n_layer=4, n_head=4, d_model=128)
model, g = GPT(config), torch.Generator().manual_seed(0)
def batch():
    t = torch.randint(0, 65, (12, 65), generator=g)
    return t[:, :-1], t[:, 1:]
options = dict(loss_fn=supervised(), lr=1e-3, device="cpu", plot=False, progress=False)
fit(model, batch, steps=5, **options)
start, steps = time.perf_counter(), 0
while time.perf_counter() - start < float(sys.argv[1]):
    fit(model, batch, steps=5, **options)
    steps += 5
print(steps / (time.perf_counter() - start))
"""
HOG = "while True: pass"


def steps_per_second(setting: dict, seconds: float) -> float:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))} | setting
    out = subprocess.run([sys.executable, "-c", TRAIN, str(seconds)], env=environment, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def measure(hogs: list[list[str]], seconds: float, rounds: int) -> dict[str, float]:
    """The best steps per second of each setting while the commands ``hogs`` run beside it."""
    hogs = [subprocess.Popen(command, stdout=subprocess.DEVNULL) for command in hogs]
    try:
        best = {name: 0.0 for name in SETTINGS}
        for _ in range(rounds):
            for name, setting in SETTINGS.items():
                best[name] = max(best[name], steps_per_second(setting, seconds))
        return best
    finally:
        for hog in hogs:
            hog.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="training seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best is kept")
    args = parser.parse_args()
    cores = multiprocessing.cpu_count()
    columns = {
        "idle": measure([], args.seconds, args.rounds),
        f"{cores} busy loops": measure([[sys.executable, "-c", HOG]] * cores, args.seconds, args.rounds),
        "another torch training": measure([[sys.executable, "-c", TRAIN, "100000"]], args.seconds, args.rounds),
    }
    rows = ["| " + " | ".join([name] + [f"{c[name]:.1f} ({c[name] / max(c.values()):.2f})" for c in columns.values()])
            + " |" for name in SETTINGS]
    table = "\n".join([
        "# OpenMP waiting policy: training steps per second, idle and busy machine", "",
        f"`python bench/threads.py --seconds {args.seconds:g} --rounds {args.rounds}` on {platform.machine()}, "
        f"{cores} cores, {datetime.date.today()}. Training steps per second of the course's small GPT (4 layers, "
        "width 128, context 64, batch 12), the best of the rounds, and in brackets the ratio to the best setting "
        "in the same column; beside it: nothing, busy Python loops on every core, or a second torch training "
        "with default settings.", "",
        "| setting | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns), *rows, ""])
    RESULTS.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
