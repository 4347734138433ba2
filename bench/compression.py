"""Distillation against training from scratch, tuned alike: the comparison chapter 11 loads.

    OMP_NUM_THREADS=1 python bench/compression.py        # a few minutes of one CPU core

The teacher is the shipped GPT (``gpt_pydoc_char``: 3 layers, width 96, 352 thousand parameters);
the student a GPT of 2 layers and width 56, 4.1 times fewer parameters. Both ways of training the
student take the same number of steps (300 of 32 windows of 64 characters) and the same learning-rate
grid, with 5 seeds each: *scratch* learns from the next character (cross-entropy), *distilled* from
the teacher's whole distribution over the next character (``fmcourse.compress.distillation`` with
temperature 1 and no weight on the hard targets, chosen before any run). The learning rate of each
method is the one with the lowest mean loss on the first half of the validation windows (the
*tuning* half); the other half (the *report* half) gives the numbers compared. Writes
``fmcourse/shipped/distillation.json`` and ``bench/results/compression.md``.
"""

from __future__ import annotations

import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from fmcourse import env
from fmcourse.compress import distillation
from fmcourse.data import causal_lm_batches, causal_lm_eval_batches, pydoc_text
from fmcourse.models import GPT, GPTConfig
from fmcourse.pretrain import load_shipped, prepare
from fmcourse.train import evaluate, fit, supervised

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "fmcourse" / "shipped" / "distillation.json"
TABLE = ROOT / "bench" / "results" / "compression.md"
STUDENT = dict(n_layer=2, n_head=4, d_model=56)
STEPS, BATCH, CONTEXT = 300, 32, 64
LRS = (4e-3, 8e-3, 1.6e-2)
SEEDS = (0, 1, 2, 3, 4)
TEMPERATURE, ALPHA = 1.0, 1.0


def halves(val: torch.Tensor) -> tuple[list, list]:
    """The validation windows split in two: one half to choose the learning rate, one to report."""
    windows = causal_lm_eval_batches(val, BATCH, CONTEXT, max_batches=32)
    return windows[0::2], windows[1::2]


def train_student(corpus, teacher, method: str, lr: float, seed: int) -> GPT:
    env.seed_everything(seed)
    student = GPT(GPTConfig(vocab_size=corpus.tokenizer.vocab_size, context_length=CONTEXT, **STUDENT))
    batches = causal_lm_batches(corpus.train, BATCH, CONTEXT, generator=torch.Generator().manual_seed(seed))
    loss_fn = distillation(teacher, TEMPERATURE, ALPHA) if method == "distilled" else supervised()
    fit(student, batches, loss_fn, steps=STEPS, lr=lr, warmup_steps=STEPS // 10, plot=False, progress=False,
        device="cpu")
    return student


def main() -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    teacher, tokenizer = load_shipped("gpt_pydoc_char")
    corpus = prepare(pydoc_text())
    if corpus.tokenizer.chars != tokenizer.chars:
        raise RuntimeError("the shipped GPT's tokenizer is not the one prepare(pydoc_text()) makes")
    tune, report = halves(corpus.val)
    runs = []
    for method in ("scratch", "distilled"):
        for lr in LRS:
            for seed in SEEDS:
                t = time.perf_counter()
                student = train_student(corpus, teacher, method, lr, seed)
                runs.append({"method": method, "lr": lr, "seed": seed, "tune_loss": round(evaluate(student, tune), 4),
                             "report_loss": round(evaluate(student, report), 4),
                             "seconds": round(time.perf_counter() - t, 1)})
                print(runs[-1], flush=True)
    chosen = {}
    for method in ("scratch", "distilled"):
        mean_tune = {lr: statistics.mean(r["tune_loss"] for r in runs if r["method"] == method and r["lr"] == lr)
                     for lr in LRS}
        chosen[method] = min(mean_tune, key=mean_tune.get)
    wall = time.perf_counter() - start
    info = {"command": "OMP_NUM_THREADS=1 python bench/compression.py", "date": datetime.date.today().isoformat(),
            "torch": torch.__version__, "machine": platform.machine(), "wall_seconds": round(wall, 1),
            "student": STUDENT, "steps": STEPS, "batch_size": BATCH, "context_length": CONTEXT, "lrs": LRS,
            "seeds": SEEDS, "temperature": TEMPERATURE, "alpha": ALPHA,
            "student_parameters": sum(p.numel() for p in student.parameters()),
            "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
            "teacher_report_loss": round(evaluate(teacher, report), 4)}
    SHIPPED.write_text(json.dumps({"info": info, "chosen_lr": chosen, "runs": runs}, indent=1) + "\n", encoding="utf-8")

    def cell(method, lr):
        losses = [r["report_loss"] for r in runs if r["method"] == method and r["lr"] == lr]
        return f"{statistics.mean(losses):.3f} ± {statistics.stdev(losses):.3f}"

    lines = [
        "# Distillation against training from scratch",
        "",
        f"`{info['command']}`, {info['date']}, torch {info['torch']}, {info['machine']}, one thread, "
        f"{wall / 60:.1f} minutes. Teacher: the shipped GPT ({info['teacher_parameters']:,} parameters, "
        f"loss {info['teacher_report_loss']:.3f} on the report half). Student: 2 layers, width 56 "
        f"({info['student_parameters']:,} parameters), {STEPS} steps of {BATCH} x {CONTEXT} characters. "
        f"Distilled: temperature {TEMPERATURE}, weight {ALPHA} on the teacher's distribution. Validation "
        "loss (nats per character) on the report half, mean ± standard deviation over seeds "
        f"{', '.join(map(str, SEEDS))}; the learning rate of each method chosen on the tuning half (bold).",
        "",
        "| learning rate | " + " | ".join(("scratch", "distilled")) + " |",
        "|---:|---:|---:|",
        *(f"| {lr:g} | " + " | ".join(f"**{cell(m, lr)}**" if chosen[m] == lr else cell(m, lr)
                                     for m in ("scratch", "distilled")) + " |" for lr in LRS),
        "",
    ]
    TABLE.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {SHIPPED} and {TABLE} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
