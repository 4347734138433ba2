"""Tune the defaults of fmcourse.pretrain: validation loss per CPU-second of the small GPT on Python's docs.

    python bench/pretrain_tuning.py [--budget 40] [--device cpu]

Every setting tried trains a character-level GPT through ``fmcourse.pretrain.pretrain`` on
``pydoc_text()`` for the same budget of compute, counted in CPU-seconds (seconds of one core, on one
thread): its CPU time per training step is measured first (process time on random tokens, the
fastest of five rounds after a warm-up, as ``timeit`` does), and it trains for as many steps as fit
in ``--budget`` CPU-seconds. Process time on one thread stays the same when other work shares the
machine, where wall time does not. The validation loss at the end ranks the settings.

The search changes one setting at a time and keeps the best value before moving on: learning rate,
warm-up, width, depth, batch size, then the learning rate once more around the best. The best
setting is then trained for four budgets, to show its validation loss against time. Writes
bench/results/pretrain_tuning.md and prints it.
"""

import argparse
import dataclasses
import datetime
import platform
import time
from pathlib import Path

import torch

from fmcourse import env
from fmcourse.data import pydoc_text
from fmcourse.pretrain import Settings, build_model, pretrain
from fmcourse.train import fit

RESULTS = Path(__file__).resolve().parent / "results" / "pretrain_tuning.md"
VOCAB_SIZE = 104  # the character vocabulary of the Python docs' training part (with <unk>)
SEARCH = [  # (setting, values tried), in order
    ("lr", [2e-3, 4e-3, 8e-3, 1.6e-2]),
    ("warmup_steps", [0, 30, 100, 300]),
    ("d_model", [48, 64, 96, 128]),
    ("n_layer", [1, 2, 3, 4]),
    ("batch_size", [16, 32, 64]),
]
SHOWN = ("lr", "warmup_steps", "d_model", "n_layer", "batch_size")


def seconds_per_step(settings: Settings, device: torch.device, rounds: int = 5, steps: int = 10) -> float:
    """CPU-seconds per training step of the settings' model: the fastest of ``rounds`` timings of
    ``steps`` steps on random tokens, in process time on one thread (on CUDA: wall time)."""
    env.seed_everything(0)
    model = build_model(settings, VOCAB_SIZE)
    tokens = torch.randint(0, VOCAB_SIZE, (settings.batch_size, settings.context_length + 1),
                           generator=torch.Generator().manual_seed(0))
    batches = [(tokens[:, :-1], tokens[:, 1:])]
    options = dict(device=device, plot=False, progress=False)
    fit(model, batches, steps=3, **options)  # warm-up: allocations, kernel choice
    if device.type == "cuda":
        return min(fit(model, batches, steps=steps, **options).seconds / steps for _ in range(rounds))
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fit(model, batches, steps=steps, **options)
        times.append((time.process_time() - start) / steps)
    return min(times)


def trial(text: str, settings: Settings, budget: float, speed: float, device: torch.device) -> dict:
    steps = max(10, round(budget / speed))
    result = pretrain(text, dataclasses.replace(settings, steps=steps), device=device, plot=False, progress=False)
    history = result.history
    return {
        "settings": settings,
        "seconds_per_step": speed,
        "steps": steps,
        "val_loss": result.val_loss,
        "curve": [((s + 1) * speed, loss) for s, loss in zip(history.val_steps, history.val_loss)],
        "unigram": result.unigram,
    }


def row(r: dict, best: bool = False) -> str:
    s = r["settings"]
    cells = [f"{getattr(s, name):g}" for name in SHOWN]
    mark = "**" if best else ""
    return f"| {' | '.join(cells)} | {1000 * r['seconds_per_step']:.0f} | {r['steps']} | {mark}{r['val_loss']:.3f}{mark} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=40.0, help="CPU-seconds of training per setting")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps (default: cpu, the machine tuned for)")
    args = parser.parse_args()
    device = env.get_device(args.device)
    text = pydoc_text()
    # One thread: a CPU-second is a second of one core, and the process time measures it whatever
    # else runs on the machine (with more threads, waiting for a busy core costs CPU time too).
    torch.set_num_threads(1)
    speeds: dict[tuple, float] = {}  # (d_model, n_layer, batch_size) -> CPU-seconds per step

    def speed_of(settings: Settings) -> float:
        shape = (settings.d_model, settings.n_layer, settings.batch_size)
        if shape not in speeds:
            speeds[shape] = seconds_per_step(settings, device)
        return speeds[shape]

    base = Settings()
    tried: dict[tuple, dict] = {}
    best = base
    order = []
    for name, values in SEARCH + [("lr", None)]:
        if values is None:  # the last pass: around the best learning rate so far
            values = [best.lr / 2, best.lr, best.lr * 2]
        for value in values:
            candidate = dataclasses.replace(best, **{name: value})
            key = tuple(getattr(candidate, n) for n in SHOWN)
            if key not in tried:
                tried[key] = trial(text, candidate, args.budget, speed_of(candidate), device)
                order.append(key)
                print(row(tried[key]), flush=True)
        best = min((tried[k] for k in order), key=lambda r: r["val_loss"])["settings"]

    best_key = tuple(getattr(best, n) for n in SHOWN)
    default_key = tuple(getattr(base, n) for n in SHOWN)
    long = trial(text, dataclasses.replace(best, evaluations=16), 4 * args.budget, speed_of(best), device)

    header = "| lr | warm-up | width | layers | batch | ms/step | steps | val loss |"
    rows = [header, "|" + "---:|" * 8]
    rows += [row(tried[k], k == best_key) for k in order]
    curve = ["| CPU-seconds | validation loss |", "|---:|---:|"]
    curve += [f"| {t:.0f} | {loss:.3f} |" for t, loss in long["curve"]]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU, one thread"
    if best_key != default_key:
        print(f"the defaults of fmcourse.pretrain.Settings {dict(zip(SHOWN, default_key))} are not the best setting "
              f"found {dict(zip(SHOWN, best_key))}: update them", flush=True)
    text_out = (
        f"# Pretraining defaults: validation loss per CPU-second\n\n"
        f"Measured {datetime.date.today()} on {device} ({where}), torch {torch.__version__}. A character-level "
        f"GPT (context {best.context_length}, {best.n_head} heads, AdamW, warm-up then cosine decay) trained by "
        f"`fmcourse.pretrain.pretrain` on Python's documentation; validation loss in nats per character on "
        f"held-out paragraphs (the unigram baseline is {long['unigram']:.3f}). Every setting gets the same "
        f"compute, {args.budget:g} CPU-seconds (seconds of one core): steps = budget / (CPU-seconds per step, "
        f"the fastest of five timed rounds of process time). One setting changes at a time, keeping the best so far (in bold: the best of all). One seed per "
        f"setting: differences under about 0.02 are within noise.\n\n"
        + "\n".join(rows)
        + "\n\nThe best setting (in bold) is what `fmcourse.pretrain.Settings` uses by default; "
        "`tests/test_pretrain.py` checks the defaults against this table.\n\n"
        f"## The best setting, trained for {4 * args.budget:g} CPU-seconds ({long['steps']} steps)\n\n"
        + "\n".join(curve)
        + "\n"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text_out)
    print(text_out)


if __name__ == "__main__":
    main()
