"""The comparisons of chapter 06, tuned fairly and repeated over seeds. Chapter 06 loads the results.

    python bench/finetune_comparisons.py                      # all parts: about 40 minutes on 2 busy CPU cores
    python bench/finetune_comparisons.py --part passages      # or: labels, digits, scratch_long

Every method gets the same tuning budget, chosen on validation, and every setting runs with several
seeds (a seed draws the initialisation, the order of the batches and, where labels are subsampled,
the labels); the test sets are only evaluated, never used for a choice.

- ``passages``: the real-or-scrambled task (``fmcourse.data.passages``) with chapter 04's GPT. A
  head on the frozen GPT (the probe, trained like the others), full fine-tuning and LoRA (rank 4)
  each train for 40 steps of 32 passages at every learning rate of ``LRS``, 3 seeds each. Every 5
  steps the validation accuracy and the GPT's pretraining loss (next character on held-out text) are
  recorded, so forgetting can be compared at matched accuracy. Also: the exact linear probe
  (logistic regression on frozen features, its L2 penalty from a grid) and logistic regression on
  character-bigram counts (its C from a grid), the n-gram baseline.
- ``labels``: label efficiency, test accuracy at 1%, 5%, 20% and 100% of the training labels: the
  pretrained backbone's probe, logistic regression on raw features (character bigrams, pixels), and
  the same network trained from scratch to convergence (its learning rate from a grid, its stopping
  step chosen on validation among checkpoints).
- ``scratch_long``: the GPT from scratch with all the labels for 4,000 steps (after ``labels``, whose
  chosen learning rate it uses), to show where its validation accuracy levels off.
- ``digits``: LoRA's rank and learning rate on the SimCLR digits encoder, 200 labels, 60 steps of 64,
  against full fine-tuning and a head-only probe on the same learning-rate grid, 3 seeds each.

Writes ``fmcourse/shipped/finetune_<part>.json`` (everything, for the notebook, which loads it from the
package) and the tables of ``bench/results/finetune.md`` (``--summary`` rewrites them from the results
files alone).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset

from fmcourse import env
from fmcourse.data import causal_lm_eval_batches, clean_text, load_digits_split, pydoc_text, train_val_split
from fmcourse.data.passages import real_or_scrambled
from fmcourse.finetune import (Classifier, MeanPooled, add_lora, char_ngram_counts, count_parameters,
                               extract_features, freeze, linear_probe, logistic_regression_baseline,
                               stratified_subset, tuned_linear_probe)
from fmcourse.metrics import accuracy
from fmcourse.models import GPT, MLPEncoder
from fmcourse.pretrain import DATA, load_shipped
from fmcourse.train import evaluate, fit

RESULTS = Path(__file__).resolve().parent / "results"
SHIPPED = Path(__file__).resolve().parent.parent / "fmcourse" / "shipped"
LRS = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2]          # the learning-rate grid every gradient-trained method gets
L2S = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]           # the exact probe's penalty grid (as many settings)
CS = [0.01, 0.1, 1.0, 10.0, 100.0]             # logistic regression's inverse penalty grid (as many settings)
SEEDS = [0, 1, 2]
FRACTIONS = [0.01, 0.05, 0.2, 1.0]
METHODS = ("head only (probe)", "full fine-tuning", "LoRA (rank 4)")


# --- the two tasks, exactly as chapter 06 builds them ------------------------------------------------

def passages_task():
    """Chapter 04's GPT and tokenizer, and the real-or-scrambled passages: train 3,000, validation 500,
    test from the paragraphs held out of pretraining. Returns a dict."""
    gpt, tok = load_shipped("gpt_pydoc_char", "cpu")
    pretraining_text, held_out_text = train_val_split(clean_text(pydoc_text()), val_fraction=0.1, seed=0)
    texts, y = real_or_scrambled(pretraining_text, 3500, seed=0)
    test_texts, test_y = real_or_scrambled(held_out_text, 10**6, seed=1)
    ids = torch.tensor([tok.encode(t) for t in texts])
    return dict(gpt=gpt, tok=tok, train=ids[:3000], train_y=torch.tensor(y[:3000]), val=ids[3000:],
                val_y=torch.tensor(y[3000:]), test=torch.tensor([tok.encode(t) for t in test_texts]),
                test_y=torch.tensor(test_y), train_texts=texts[:3000], val_texts=texts[3000:], test_texts=test_texts,
                lm_batches=causal_lm_eval_batches(torch.tensor(tok.encode(held_out_text)), batch_size=32,
                                                  block_size=64, max_batches=4))


def digits_task():
    """The digits split of chapters 05 and 06 and the shipped SimCLR encoder. Returns a dict."""
    images, labels, train_idx, test_idx = load_digits_split(test_size=500)
    pool_idx, val_idx = train_idx[:1000], train_idx[1000:]
    encoder = MLPEncoder((1, 8, 8), hidden=256, dim=128)
    encoder.load_state_dict(load_file(DATA / "simclr_digits.safetensors"))
    return dict(encoder=encoder.eval(), train=images[pool_idx], train_y=labels[pool_idx], val=images[val_idx],
                val_y=labels[val_idx], test=images[test_idx], test_y=labels[test_idx])


# --- training with checkpoints ---------------------------------------------------------------------

class Watched:
    """Batches of a DataLoader, cycled, that call ``callback(steps_done)`` every ``every`` batches."""

    def __init__(self, loader: DataLoader, every: int, callback):
        self.loader, self.every, self.callback, self.given = loader, every, callback, 0

    def __iter__(self):
        for batch in self.loader:
            if self.given and self.given % self.every == 0:
                self.callback(self.given)
            self.given += 1
            yield batch


def train(model: Classifier, x: torch.Tensor, y: torch.Tensor, *, steps: int, lr: float, batch_size: int, seed: int,
          every: int | None = None, callback=None) -> float:
    """Chapter 06's ``fine_tune``: AdamW, warm-up for a tenth of the steps, cosine decay; batches
    shuffled by ``seed``. ``callback(steps_done)`` runs every ``every`` steps and after the last.
    Returns the training seconds (including the callbacks)."""
    loader = DataLoader(TensorDataset(x, y), batch_size=min(batch_size, len(y)), shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    data = Watched(loader, every, callback) if every else loader
    start = time.perf_counter()
    fit(model, data, lambda m, batch: m.loss(*batch), steps=steps, lr=lr, warmup_steps=steps // 10, device="cpu",
        plot=False, progress=False)
    if callback:
        callback(steps)
    return time.perf_counter() - start


def build(kind: str, backbone: torch.nn.Module, num_classes: int, seed: int, rank: int = 4,
          targets=("qkv", "out", "fc", "proj")) -> Classifier:
    """A fresh classifier on a copy of ``backbone``: ``kind`` is one of METHODS (or "LoRA" with ``rank``)."""
    env.seed_everything(seed)
    model = Classifier(copy.deepcopy(backbone), num_classes=num_classes)
    if kind.startswith("head"):
        freeze(model.backbone)
    elif kind.startswith("LoRA"):
        add_lora(model.backbone, rank=rank, alpha=8, targets=targets)
    return model


def exact_probe(train_f, train_y, val_f, val_y, test_f, test_y) -> dict:
    """The exact linear probe with its L2 penalty chosen on validation from L2S."""
    probe, l2, val = tuned_linear_probe(train_f, train_y, val_f, val_y, L2S)
    return dict(l2=l2, val=val, test=accuracy(probe(test_f), test_y))


def logistic_regression(train_x, train_y, val_x, val_y, test_x, test_y) -> dict:
    """Logistic regression on raw features (NumPy arrays), C chosen on validation from CS."""
    predict, C, val = logistic_regression_baseline(train_x, train_y, val_x, val_y, CS)
    return dict(C=C, val=val, test=float((predict(test_x) == test_y).mean()))


# --- the parts ---------------------------------------------------------------------------------------

def part_passages() -> dict:
    t = passages_task()
    gpt, lm_batches = t["gpt"], t["lm_batches"]
    pretrained_loss = evaluate(gpt, lm_batches)
    pooled = MeanPooled(gpt)
    start = time.perf_counter()
    train_f, val_f, test_f = (extract_features(pooled, t[k]) for k in ("train", "val", "test"))
    extraction = time.perf_counter() - start
    start = time.perf_counter()
    linear_probe(train_f, t["train_y"])
    probe_seconds = time.perf_counter() - start
    out = {"pretrained_loss": pretrained_loss, "lrs": LRS, "seeds": SEEDS, "steps": 40, "batch_size": 32,
           "every": 5, "n_test": len(t["test_y"]),
           "exact probe": exact_probe(train_f, t["train_y"], val_f, t["val_y"], test_f, t["test_y"]),
           "probe seconds": {"feature extraction (3,000 + 500 + test passages)": extraction,
                             "logistic regression (3,000 passages)": probe_seconds},
           "runs": []}
    a, b, c = char_ngram_counts(t["train_texts"], t["val_texts"], t["test_texts"])
    out["bigram logistic regression"] = logistic_regression(a, t["train_y"].numpy(), b, t["val_y"].numpy(), c,
                                                            t["test_y"].numpy())
    for kind in METHODS:
        for lr in LRS:
            for seed in SEEDS:
                model = build(kind, MeanPooled(gpt), 2, seed)
                trajectory = []

                def checkpoint(steps_done, model=model, trajectory=trajectory, kind=kind):
                    acc = accuracy(extract_features(model, t["val"]), t["val_y"])
                    rise = 0.0 if kind.startswith("head") else evaluate(model.backbone.lm, lm_batches) - pretrained_loss
                    trajectory.append((steps_done, acc, rise))

                try:
                    seconds = train(model, t["train"], t["train_y"], steps=40, lr=lr, batch_size=32, seed=seed,
                                    every=5, callback=checkpoint)
                    test = accuracy(extract_features(model, t["test"]), t["test_y"])
                except FloatingPointError:
                    seconds, test = float("nan"), 0.5
                    trajectory.append((40, 0.5, float("nan")))
                out["runs"].append(dict(method=kind, lr=lr, seed=seed, trajectory=trajectory, val=trajectory[-1][1],
                                        test=test, rise=trajectory[-1][2], seconds=seconds,
                                        trainable=count_parameters(model)))
                print(f"{kind:>20} lr {lr:g} seed {seed}: val {trajectory[-1][1]:.3f} test {test:.3f} "
                      f"rise {trajectory[-1][2]:+.3f}", flush=True)
    return out


def part_labels() -> dict:
    out = {"fractions": FRACTIONS, "passages": [], "digits": []}
    # passages: the GPT's exact probe, bigram logistic regression, the GPT from scratch
    t = passages_task()
    pooled = MeanPooled(t["gpt"])
    train_f, val_f, test_f = (extract_features(pooled, t[k]) for k in ("train", "val", "test"))
    a, b, c = char_ngram_counts(t["train_texts"], t["val_texts"], t["test_texts"])
    scratch_steps, scratch_every = 800, 100

    def scratch_run(chosen, lr, seed):
        """Validation and test accuracy every ``scratch_every`` steps of a GPT trained from scratch."""
        env.seed_everything(seed)
        model = Classifier(MeanPooled(GPT(t["gpt"].config)), num_classes=2)
        points = []

        def checkpoint(steps_done):
            points.append((steps_done, accuracy(extract_features(model, t["val"]), t["val_y"]),
                           accuracy(extract_features(model, t["test"]), t["test_y"])))

        train(model, t["train"][chosen], t["train_y"][chosen], steps=scratch_steps, lr=lr, batch_size=32, seed=seed,
              every=scratch_every, callback=checkpoint)
        return points

    everything = torch.arange(3000)
    tuning = {lr: scratch_run(everything, lr, 0) for lr in (1e-3, 3e-3)}
    scratch_lr = max(tuning, key=lambda lr: max(v for _, v, _ in tuning[lr]))
    out["passages_scratch"] = {"steps": scratch_steps, "every": scratch_every, "lr": scratch_lr,
                               "tuning": {str(lr): points for lr, points in tuning.items()}}
    for fraction in FRACTIONS:
        for seed in SEEDS:
            chosen = stratified_subset(t["train_y"], fraction, seed)
            probe = exact_probe(train_f[chosen], t["train_y"][chosen], val_f, t["val_y"], test_f, t["test_y"])
            ngram = logistic_regression(a[chosen.numpy()], t["train_y"][chosen].numpy(), b, t["val_y"].numpy(), c,
                                        t["test_y"].numpy())
            points = (tuning[scratch_lr] if fraction == 1.0 and seed == 0
                      else scratch_run(chosen, scratch_lr, seed))
            best = max(points, key=lambda p: (p[1], -p[0]))  # early stopping on validation
            out["passages"].append(dict(fraction=fraction, seed=seed, labels=len(chosen), pretrained=probe["test"],
                                        ngram=ngram["test"], scratch=best[2], scratch_step=best[0],
                                        scratch_points=points))
            print(f"passages {fraction:.0%} seed {seed}: GPT probe {probe['test']:.3f}, bigrams {ngram['test']:.3f}, "
                  f"scratch {best[2]:.3f} (step {best[0]})", flush=True)
    # digits: SimCLR's exact probe, logistic regression on pixels, the MLP encoder from scratch
    d = digits_task()
    train_f, val_f, test_f = (extract_features(d["encoder"], d[k]) for k in ("train", "val", "test"))
    pixels = [d[k].flatten(1).numpy() for k in ("train", "val", "test")]
    for fraction in FRACTIONS:
        for seed in range(5):
            chosen = stratified_subset(d["train_y"], fraction, seed)
            probe = exact_probe(train_f[chosen], d["train_y"][chosen], val_f, d["val_y"], test_f, d["test_y"])
            linear = logistic_regression(pixels[0][chosen.numpy()], d["train_y"][chosen].numpy(), pixels[1],
                                         d["val_y"].numpy(), pixels[2], d["test_y"].numpy())
            best = None
            for lr in (1e-3, 3e-3, 1e-2):
                env.seed_everything(seed)
                model = Classifier(MLPEncoder((1, 8, 8), hidden=256, dim=128), num_classes=10)
                points = []

                def checkpoint(steps_done, model=model, points=points):
                    points.append((accuracy(extract_features(model, d["val"]), d["val_y"]), -steps_done,
                                   accuracy(extract_features(model, d["test"]), d["test_y"]), lr))

                train(model, d["train"][chosen], d["train_y"][chosen], steps=400, lr=lr, batch_size=64, seed=seed,
                      every=50, callback=checkpoint)
                best = max([best] + points if best else points)
            out["digits"].append(dict(fraction=fraction, seed=seed, labels=len(chosen), pretrained=probe["test"],
                                      linear=linear["test"], scratch=best[2], scratch_step=-best[1], scratch_lr=best[3]))
            print(f"digits {fraction:.0%} seed {seed}: SimCLR probe {probe['test']:.3f}, pixels {linear['test']:.3f}, "
                  f"scratch {best[2]:.3f}", flush=True)
    return out


def part_digits() -> dict:
    d = digits_task()
    ranks, out = [1, 4, 16, 64], {"lrs": LRS, "seeds": SEEDS, "ranks": [1, 4, 16, 64], "steps": 60,
                                  "batch_size": 64, "fraction": 0.2, "runs": []}
    settings = [("head only (probe)", None), ("full fine-tuning", None)] + [("LoRA", r) for r in ranks]
    for kind, rank in settings:
        for lr in LRS:
            for seed in SEEDS:
                chosen = stratified_subset(d["train_y"], 0.2, seed)
                model = build(kind, d["encoder"], 10, seed, rank=rank or 4, targets=None)
                train(model, d["train"][chosen], d["train_y"][chosen], steps=60, lr=lr, batch_size=64, seed=seed)
                out["runs"].append(dict(method=kind, rank=rank, lr=lr, seed=seed, trainable=count_parameters(model),
                                        val=accuracy(extract_features(model, d["val"]), d["val_y"]),
                                        test=accuracy(extract_features(model, d["test"]), d["test_y"])))
        print(kind, rank, "done", flush=True)
    return out


def part_scratch_long() -> dict:
    """The GPT from scratch on all 3,000 labelled passages for 4,000 steps (about 43 epochs), its
    validation accuracy every 250 steps: does the label-efficiency baseline converge within 800?"""
    t = passages_task()
    labels = SHIPPED / "finetune_labels.json"
    if not labels.is_file():
        raise FileNotFoundError(f"{labels} is missing: run the part `labels` first (its learning rate is used here)")
    out = {"steps": 4000, "every": 250, "lr": json.loads(labels.read_text())["passages_scratch"]["lr"], "points": []}
    env.seed_everything(0)
    model = Classifier(MeanPooled(GPT(t["gpt"].config)), num_classes=2)

    def checkpoint(steps_done):
        out["points"].append((steps_done, accuracy(extract_features(model, t["val"]), t["val_y"])))
        print(f"scratch GPT, step {steps_done}: validation {out['points'][-1][1]:.3f}", flush=True)

    train(model, t["train"], t["train_y"], steps=out["steps"], lr=out["lr"], batch_size=32, seed=0, every=out["every"],
          callback=checkpoint)
    return out


PARTS = {"passages": part_passages, "labels": part_labels, "digits": part_digits, "scratch_long": part_scratch_long}


def spread(values) -> str:
    """'mean (min–max)' of accuracies over seeds, in percent."""
    return f"{sum(values) / len(values):.1%} ({min(values):.1%}–{max(values):.1%})"


def summary() -> str:
    """bench/results/finetune.md: the results files as tables (mean and range over the seeds)."""
    out = ["# Chapter 06's comparisons", "", "Made by `python bench/finetune_comparisons.py --summary` from the "
           "`finetune_*.json` files of `python bench/finetune_comparisons.py`. Accuracies: mean (min–max) over "
           "the seeds.", ""]
    path = SHIPPED / "finetune_passages.json"
    if path.is_file():
        r = json.loads(path.read_text())
        out += ["## Real or scrambled passages: 40 steps of 32, the same learning rates for every method", "",
                "| method | lr | validation | test | rise of the pretraining loss (nats/char) |", "|---|---:|---:|---:|---:|"]
        for run_key in dict.fromkeys((run["method"], run["lr"]) for run in r["runs"]):
            rs = [run for run in r["runs"] if (run["method"], run["lr"]) == run_key]
            rises = [run["rise"] for run in rs]
            out.append(f"| {run_key[0]} | {run_key[1]:g} | {spread([x['val'] for x in rs])} | "
                       f"{spread([x['test'] for x in rs])} | {sum(rises) / len(rises):+.3f} |")
        for name in ("exact probe", "bigram logistic regression"):
            out.append(f"| {name} | - | {r[name]['val']:.1%} | {r[name]['test']:.1%} | - |")
        out.append("")
    path = SHIPPED / "finetune_labels.json"
    if path.is_file():
        r = json.loads(path.read_text())
        for task, kinds in (("digits", ("pretrained", "scratch", "linear")), ("passages", ("pretrained", "scratch", "ngram"))):
            out += [f"## Label efficiency, {task}: test accuracy", "",
                    "| labels | " + " | ".join(kinds) + " |", "|---:|" + "---:|" * len(kinds)]
            for f in r["fractions"]:
                rows = [x for x in r[task] if x["fraction"] == f]
                out.append(f"| {rows[0]['labels']} | " + " | ".join(spread([x[k] for x in rows]) for k in kinds) + " |")
            out.append("")
    path = SHIPPED / "finetune_digits.json"
    if path.is_file():
        r = json.loads(path.read_text())
        out += ["## Digits, 200 labels, 60 steps of 64: validation accuracy", "",
                "| method | " + " | ".join(f"lr {lr:g}" for lr in r["lrs"]) + " |", "|---|" + "---:|" * len(r["lrs"])]
        for key in dict.fromkeys((run["method"], run["rank"]) for run in r["runs"]):
            cells = [spread([x["val"] for x in r["runs"] if (x["method"], x["rank"], x["lr"]) == (*key, lr)])
                     for lr in r["lrs"]]
            out.append(f"| {key[0]}{f' rank {key[1]}' if key[1] else ''} | " + " | ".join(cells) + " |")
        out.append("")
    path = SHIPPED / "finetune_scratch_long.json"
    if path.is_file():
        r = json.loads(path.read_text())
        out += [f"## The passages' GPT from scratch, all labels, lr {r['lr']:g}: validation accuracy", "",
                " ".join(f"{step}: {acc:.1%};" for step, acc in r["points"]), ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), action="append", help="the part(s) to run (default: all)")
    parser.add_argument("--summary", action="store_true", help="only write bench/results/finetune.md from the results")
    args = parser.parse_args()
    if args.summary:
        (RESULTS / "finetune.md").write_text(summary() + "\n")
        print(summary())
        return
    torch.set_num_threads(1)
    for part in args.part or list(PARTS):
        start = time.perf_counter()
        result = PARTS[part]()
        result["about"] = {"made_by": f"python bench/finetune_comparisons.py --part {part}",
                           "date": datetime.date.today().isoformat(), "torch": torch.__version__,
                           "python": platform.python_version(), "seconds": round(time.perf_counter() - start, 1)}
        path = SHIPPED / f"finetune_{part}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {path} in {result['about']['seconds']} s")
    (RESULTS / "finetune.md").write_text(summary() + "\n")


if __name__ == "__main__":
    main()
