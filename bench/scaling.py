"""The scaling sweep of chapter 11: GPTs of five sizes, each trained for four lengths, on Python's documentation.

    OMP_NUM_THREADS=1 python bench/scaling.py            # about 7 minutes of one idle CPU core
    OMP_NUM_THREADS=1 python bench/scaling.py --fresh    # ignore the runs recorded so far

Every run is ``fmcourse.pretrain`` with the default settings (batch 32, context 64, learning rate
0.008, character tokens) except the size and the number of steps; the warm-up is a tenth of the run
and the cosine decay ends with it, so each length is a complete run of its own. The validation loss is
measured at the end of each run on 32 batches of held-out text. Each finished run is appended to
``bench/results/scaling_runs.jsonl`` and not repeated by the next call (``--fresh`` starts over), so
an interrupted sweep continues where it stopped. Writes ``fmcourse/shipped/scaling_sweep.json`` (every
run, for the notebook, which loads it from the package) and ``bench/results/scaling.md`` (the table,
the fitted laws and the sweep's time: the sum of the runs' wall times).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import torch

from fmcourse.data import pydoc_text
from fmcourse.pretrain import Settings
from fmcourse.scaling import PUBLISHED, SIZES, STEPS, fit_joint_law, fit_power_law, frontier, sweep

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "fmcourse" / "shipped" / "scaling_sweep.json"
TABLE = ROOT / "bench" / "results" / "scaling.md"
RUNS = ROOT / "bench" / "results" / "scaling_runs.jsonl"
BASE = Settings(eval_batches=32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="forget the runs recorded so far and redo them all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.fresh:
        RUNS.unlink(missing_ok=True)
    recorded = {}
    if RUNS.exists():
        for line in RUNS.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            recorded[(row["n_layer"], row["d_model"], row["steps"])] = row
    text, rows = pydoc_text(), []
    for size in SIZES:
        for steps in STEPS:
            key = (*size, steps)
            if key not in recorded:
                recorded[key] = sweep(text, [size], [steps], base=BASE)[0]
                with RUNS.open("a", encoding="utf-8") as file:
                    file.write(json.dumps(recorded[key]) + "\n")
            rows.append(recorded[key])
    wall = sum(r["seconds"] for r in rows)
    info = {"command": "OMP_NUM_THREADS=1 python bench/scaling.py", "date": datetime.date.today().isoformat(),
            "torch": torch.__version__, "machine": platform.machine(), "threads": 1, "wall_seconds": round(wall, 1),
            "settings": {k: v for k, v in BASE.__dict__.items() if k not in ("n_layer", "d_model", "steps")}}
    SHIPPED.write_text(json.dumps({"info": info, "runs": rows}, indent=1) + "\n", encoding="utf-8")

    longest = [r for r in rows if r["steps"] == max(STEPS)]
    law_N = fit_power_law([r["N"] for r in longest], [r["val_loss"] for r in longest])
    joint = fit_joint_law([r["N"] for r in rows], [r["D"] for r in rows], [r["val_loss"] for r in rows])
    lines = [
        "# Scaling sweep: validation loss against size and training length",
        "",
        f"`{info['command']}`, {info['date']}, torch {info['torch']}, {info['machine']}, one thread: "
        f"**{wall / 60:.1f} minutes** of wall time for the {len(rows)} runs (the sum of the seconds column; "
        "measured on a 2-core machine shared with other jobs, so an idle core takes less). "
        "Character-level GPTs on Python's documentation (`pydoc_data.topics`), batch 32 x context 64, "
        "learning rate 0.008 for every size (the default tuned for 2 layers of width 64), warm-up a "
        "tenth of each run, cosine decay to its end. N: non-embedding parameters; D: training tokens; "
        "C = 6ND. Validation loss in nats per character (unigram baseline 3.300). "
        "Results for chapter 11 in `fmcourse/shipped/scaling_sweep.json`.",
        "",
        "| layers | width | N | steps | D | C (FLOPs) | val loss | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {r['n_layer']} | {r['d_model']} | {r['N']:,} | {r['steps']} | {r['D']:,} | {r['C']:.2e} | "
          f"{r['val_loss']:.3f} | {r['seconds']:.0f} |" for r in rows),
        "",
        "## Fitted laws",
        "",
        f"- Loss against N at the longest training ({max(STEPS)} steps): L = {law_N.E:.3f} + "
        f"{law_N.A:.3g} N^-{law_N.alpha:.3f}.",
        f"- Joint law: L = {joint.E:.3f} + {joint.A:.3g} N^-{joint.alpha:.3f} + {joint.B:.3g} D^-{joint.beta:.3f}; "
        f"compute-optimal N grows as C^{joint.optimal_N_exponent:.2f}.",
        f"- Compute frontier (runs no cheaper run beats): "
        + ", ".join(f"{r['n_layer']}x{r['d_model']}@{r['steps']}" for r in frontier(rows)) + ".",
        "- Published: " + "; ".join(f"{name}: alpha_N {v['alpha_N']}, alpha_D {v['alpha_D']}, N_opt ~ C^"
                                    f"{v['optimal_N_exponent']}" for name, v in PUBLISHED.items()) + ".",
        "",
    ]
    TABLE.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {SHIPPED} and {TABLE} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
