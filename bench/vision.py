"""Chapter 08's longer runs: the depth experiment's learning-rate sweep and the shipped vision models.

    python bench/vision.py                      # everything: over an hour on a busy 2-core machine
    python bench/vision.py --part depth         # one part: depth, judge, generator or detector

- ``depth``: an 18-layer convolutional network without normalisation (``ResNet(4, widths=(8,), blocks_per_stage=8,
  norm=False)``), with and without skip connections, classifying the shape of 16x16 shapes scenes;
  150 steps of AdamW at batch 64 for each learning rate in ``DEPTH_LRS`` and seeds 0-2; the learning
  rate of each network is the one with the lowest mean final training loss. Writes
  ``fmcourse/shipped/vision/depth.json`` (chapter 08 plots it; it travels with the package) and the
  table ``bench/results/vision.md``.
- ``judge``, ``generator``, ``detector``: train the shipped models and write
  ``fmcourse/shipped/vision/<name>.safetensors`` and their sizes and scores in
  ``fmcourse/shipped/vision/models.json``.

Data: shapes scenes of ``fmcourse.data.shapes``; training scenes seed 1, validation seed 2, test seed 3.
The generator (tokenizer and prior) never sees the (shape, colour) pairs in ``HELD_OUT``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from fmcourse import env
from fmcourse.boxes import mean_average_precision
from fmcourse.data.shapes import ATTRIBUTES, make_detection_scenes, make_scenes
from fmcourse.models import ResNet
from fmcourse.models.detector import DetectionTargets, detect, detection_loss, detection_targets
from fmcourse.models.text_to_image import is_held_out
from fmcourse.models.vision_shipped import build_vision, save_vision, to_half_precision
from fmcourse.train import fit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SHIPPED = ROOT / "fmcourse" / "shipped" / "vision"
DEPTH_LRS = (1e-3, 3e-3, 1e-2)
DEPTH = dict(widths=(8,), blocks_per_stage=8, norm=False)
DEPTH_STEPS = 150
SIZES = {
    "judge": {},
    "generator": {"tokenizer": {"num_codes": 128}, "prior": {"n_layer": 3, "n_head": 4, "d_model": 96}},
    "detector": {"num_classes": 4, "image_size": 32, "grid": 4, "width": 16},
}


def attributes(scenes) -> torch.Tensor:
    """``(N, 4)`` attribute indices in the order of ``ATTRIBUTES``."""
    return torch.stack([scenes.attribute(name) for name in ATTRIBUTES], 1)


def sampler(tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int):
    """A function returning a random batch (with replacement) of rows of ``tensors``."""
    g = torch.Generator().manual_seed(seed)

    def batch():
        i = torch.randint(len(tensors[0]), (batch_size,), generator=g)
        return tuple(t[i] for t in tensors)
    return batch


def depth_run(skip: bool, lr: float, seed: int, steps: int = DEPTH_STEPS) -> tuple[list[float], float]:
    """Train the depth experiment's network; returns its training losses and its validation accuracy."""
    train, val = make_scenes(4000, seed=1), make_scenes(1000, seed=2)
    torch.manual_seed(seed)
    model = ResNet(4, skip=skip, **DEPTH)
    history = fit(model, sampler((train.images, train.shape), 64, seed), steps=steps, lr=lr, plot=False, progress=False)
    model.eval()
    with torch.no_grad():
        accuracy = (model(val.images).argmax(1) == val.shape).float().mean().item()
    return history.train_loss, accuracy


def depth_runs(skip: bool, lr: float) -> list[dict]:
    """The depth experiment's runs of one network at one learning rate, seeds 0-2."""
    runs = []
    for seed in range(3):
        losses, accuracy = depth_run(skip, lr, seed)
        final = statistics.mean(losses[-20:])
        runs.append({"skip": skip, "lr": lr, "seed": seed, "final_loss": final, "val_accuracy": accuracy,
                     "train_loss": losses})
        print(f"skip={skip} lr={lr} seed={seed}: final loss {final:.3f}, accuracy {accuracy:.3f}", flush=True)
    return runs


def part_depth(workers: int = 1) -> None:
    """Every run of the depth experiment (in ``workers`` processes), then its results files."""
    settings = [(skip, lr) for skip in (True, False) for lr in DEPTH_LRS]
    if workers > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(workers) as pool:
            runs = [run for part in pool.starmap(depth_runs, settings) for run in part]
    else:
        runs = [run for skip, lr in settings for run in depth_runs(skip, lr)]
    best = {}
    for skip in (True, False):
        name = "skip" if skip else "plain"
        means = {lr: statistics.mean(r["final_loss"] for r in runs if r["skip"] == skip and r["lr"] == lr) for lr in DEPTH_LRS}
        best[name] = min(means, key=means.get)
    out = {"settings": {**DEPTH, "steps": DEPTH_STEPS, "batch_size": 64, "lrs": DEPTH_LRS, "seeds": 3},
           "best_lr": best, "runs": runs, "torch": torch.__version__}
    (SHIPPED / "depth.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = ["# Chapter 08: skip connections against a plain network of the same depth", "",
             f"`python bench/vision.py --part depth`. An {1 + 2 * DEPTH['blocks_per_stage'] + 1}-layer CNN without "
             "normalisation, width 8, classifying the shape of 16x16 scenes; AdamW, batch 64, "
             f"{DEPTH_STEPS} steps, 3 seeds per learning rate. Final loss: mean training loss of the last 20 steps.", "",
             "| network | lr | final training loss (mean ± sd over seeds) | validation accuracy (mean) |", "|---|---:|---:|---:|"]
    for skip in (True, False):
        for lr in DEPTH_LRS:
            mine = [r for r in runs if r["skip"] == skip and r["lr"] == lr]
            losses = [r["final_loss"] for r in mine]
            mark = " (best)" if best["skip" if skip else "plain"] == lr else ""
            lines.append(f"| {'skip' if skip else 'plain'} | {lr:g}{mark} | {statistics.mean(losses):.3f} ± "
                         f"{statistics.stdev(losses):.3f} | {statistics.mean(r['val_accuracy'] for r in mine):.3f} |")
    (RESULTS / "vision.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def write_info(name: str, scores: dict) -> None:
    path = SHIPPED / "models.json"
    info = json.loads(path.read_text()) if path.exists() else {}
    info[name] = {"sizes": SIZES[name], "scores": scores}
    path.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")


def part_judge() -> None:
    train, test = make_scenes(8000, seed=1), make_scenes(2000, seed=3)
    torch.manual_seed(0)
    judge = build_vision("judge", SIZES["judge"])
    fit(judge, sampler((train.images, attributes(train)), 64, 0), lambda m, b: m.loss(*b), steps=1500, lr=3e-3,
        warmup_steps=50, plot=False, progress=False)
    to_half_precision(judge)
    predicted = judge.predict(test.images)
    scores = {name: (predicted[name] == test.attribute(name)).float().mean().item() for name in ATTRIBUTES}
    print("judge test accuracy", scores)
    save_vision(judge, "judge", SHIPPED)
    write_info("judge", {"test_accuracy": scores, "steps": 1500})


def part_generator() -> None:
    train = make_scenes(8000, seed=1)
    train = train[~is_held_out(train.shape, train.colour)]
    torch.manual_seed(0)
    model = build_vision("generator", SIZES["generator"])
    tokenizer = model.tokenizer.requires_grad_(True).train()
    g = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(tokenizer.parameters(), lr=2e-3)
    steps = 3000
    start = time.time()
    for step in range(steps):
        images = train.images[torch.randint(len(train), (64,), generator=g)]
        loss = tokenizer(images)[1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 and step < 0.6 * steps:  # codes nobody uses are moved to where the data is
            tokenizer.restart_unused(train.images[torch.randint(len(train), (256,), generator=g)], g)
        if step % 500 == 0:
            print(f"tokenizer step {step}: loss {loss.item():.4f}", flush=True)
    tokenizer.requires_grad_(False).eval()
    val = make_scenes(2000, seed=2)
    print(f"tokenizer: {time.time() - start:.0f} s", flush=True)
    ids = model.sequences(train.captions, train.images)
    val_ids = model.sequences(val.captions, val.images)
    fit(model, sampler((ids,), 64, 1), lambda m, b: m.loss(b[0]), steps=3000, lr=3e-3, warmup_steps=100,
        val_data=[(val_ids[:500],)], eval_every=500, plot=False, progress=False)
    to_half_precision(model).eval()  # the tokenizer inside too
    save_vision(model, "generator", SHIPPED)
    write_info("generator", generator_scores(model, val))


def generator_scores(model, val) -> dict:
    """The shipped generator's tokenizer reconstruction error and prior loss on validation scenes."""
    tokenizer = model.tokenizer
    recon = tokenizer.decode(tokenizer.encode(val.images))
    with torch.no_grad():
        val_loss = model.loss(model.sequences(val.captions[:500], val.images[:500])).item()
    scores = {"tokenizer_val_mse": ((recon - val.images) ** 2).mean().item(), "prior_val_loss": val_loss,
              "tokenizer_steps": 3000, "prior_steps": 3000,
              "codes_used": int(tokenizer.encode(val.images).unique().numel())}
    print("generator:", scores, flush=True)
    return scores


def part_detector() -> None:
    train, val = make_detection_scenes(4000, seed=1), make_detection_scenes(500, seed=2)
    sizes = SIZES["detector"]
    targets = detection_targets(train.boxes, train.labels, sizes["image_size"], sizes["grid"])
    torch.manual_seed(0)
    model = build_vision("detector", sizes)
    batches = sampler((train.images, targets.has_object, targets.codes, targets.classes), 64, 0)
    history = fit(model, batches, lambda m, b: detection_loss(m(b[0]), DetectionTargets(*b[1:]))[0], steps=1500,
                  lr=3e-3, warmup_steps=50, plot=False, progress=False)
    to_half_precision(model).eval()
    result = mean_average_precision(detect(model, val.images, confidence=0.01), list(zip(val.boxes, val.labels)), 4)
    print(f"detector: final loss {statistics.mean(history.train_loss[-20:]):.3f}, validation mAP@0.5 {result.mean:.3f}")
    save_vision(model, "detector", SHIPPED)
    write_info("detector", {"val_map50": result.mean, "val_ap50": result.per_class, "steps": 1500})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("depth", "judge", "generator", "detector"), action="append")
    parser.add_argument("--workers", type=int, default=1, help="processes for the depth runs (the results are the same)")
    args = parser.parse_args()
    env.seed_everything(0)
    for part in args.part or ("depth", "judge", "generator", "detector"):
        start = time.time()
        globals()[f"part_{part}"](*(args.workers,) if part == "depth" else ())
        print(f"{part}: {time.time() - start:.0f} s", flush=True)
