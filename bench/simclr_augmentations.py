"""Which augmentations does SimCLR on the digits need? An ablation scored by a 5-labels-per-class probe.

    python bench/simclr_augmentations.py [--seeds 3]       # about 2 minutes on a laptop CPU

Chapter 05's recipe, step for step: scikit-learn's digits with the course's split (500 test images
never seen), an ``MLPEncoder((1, 8, 8), hidden=256, dim=128)`` with a 64-wide projection head,
NT-Xent at temperature 0.5, 200 steps of 256 images with two views each, AdamW at 5e-3 with 20
warm-up steps. Only the augmentation changes: all five of chapter 05 (crop, rotation, blur, noise,
erasing), each one left out in turn, the crop alone, and none at all (two identical views).

Each setting is pretrained with ``--seeds`` seeds (seed ``s`` sets the initial weights and the views;
seed 0 is exactly the chapter's run). Each encoder is scored by a linear probe
(``fmcourse.finetune.linear_probe``) trained on 5 labelled images per class (three random draws of
the 50 images, averaged) and tested on the 500 test images, on the features ``h`` (what is kept) and
on the projections ``z = g(h)`` (what the loss saw), and by 5-nearest neighbours on ``h`` with all the
training labels, against the same on raw pixels. Writes fmcourse/shipped/simclr_augmentations.json
(chapter 05 loads it, so it travels with the package) and bench/results/simclr_augmentations.md, and
prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from fmcourse import env
from fmcourse.data import Augment, load_digits_split
from fmcourse.finetune import extract_features, knn_predict, linear_probe
from fmcourse.metrics import accuracy
from fmcourse.models import MLPEncoder, SimCLR
from fmcourse.train import fit

RESULTS = Path(__file__).resolve().parent / "results" / "simclr_augmentations"
SHIPPED = Path(__file__).resolve().parent.parent / "fmcourse" / "shipped" / "simclr_augmentations.json"
ALL = dict(crop_scale=(0.5, 1.0), max_rotation=15, blur_p=0.5, blur_sigma=(0.2, 0.8), noise_std=0.1,
           erase_p=0.25, erase_area=(0.05, 0.2))  # chapter 05's augmentation
OFF = {"crop": dict(crop_scale=(1.0, 1.0)), "rotation": dict(max_rotation=0), "blur": dict(blur_p=0.0),
       "noise": dict(noise_std=0.0), "erasing": dict(erase_p=0.0)}
NONE = {k: v for off in OFF.values() for k, v in off.items()}


def settings() -> dict[str, dict]:
    """Name -> Augment keyword arguments, for every setting of the ablation."""
    out = {"all five": ALL}
    out.update({f"without {name}": {**ALL, **off} for name, off in OFF.items()})
    out["crop only"] = {**ALL, **NONE, "crop_scale": ALL["crop_scale"]}
    out["none"] = {**ALL, **NONE}
    return out


def labelled_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of ``per_class`` random images of each digit (chapter 05's draw)."""
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for digit in range(10):
        of_digit = torch.nonzero(labels == digit).flatten()
        chosen.append(of_digit[torch.randperm(len(of_digit), generator=g)[:per_class]])
    return torch.cat(chosen)


def pretrain_simclr(x_train: torch.Tensor, augment: Augment, seed: int, steps: int = 200) -> SimCLR:
    """Chapter 05's SimCLR run with ``augment``; seed 0 reproduces the chapter's model."""
    env.seed_everything(seed)
    simclr = SimCLR(MLPEncoder((1, 8, 8), hidden=256, dim=128), projection_dim=64, temperature=0.5)
    views = torch.Generator().manual_seed(1 + 1000 * seed)

    def two_views():
        x = x_train[torch.randint(len(x_train), (256,), generator=views)]
        return augment(x, views), augment(x, views)

    fit(simclr, two_views, lambda model, batch: model.loss(*batch), steps=steps, lr=5e-3, warmup_steps=20,
        device="cpu", plot=False, progress=False)
    return simclr


def probe_scores(simclr: SimCLR | None, x_train, y_train, x_test, y_test, per_class: int = 5, draws: int = 3) -> dict:
    """Mean test accuracy of linear probes on ``h`` and on ``z`` over ``draws`` labelled subsets, and of
    5-nearest neighbours on ``h`` with all training labels (``simclr=None``: the raw pixels as ``h``)."""
    if simclr is None:
        h_train, h_test = x_train.flatten(1), x_test.flatten(1)
        z_train, z_test = h_train, h_test
    else:
        h_train, h_test = extract_features(simclr.encoder, x_train), extract_features(simclr.encoder, x_test)
        with torch.no_grad():
            z_train, z_test = simclr.projection(h_train), simclr.projection(h_test)
    scores = {"knn_all": accuracy(knn_predict(h_train, y_train, h_test, k=5), y_test)}
    for name, (train, test) in {"h": (h_train, h_test), "z": (z_train, z_test)}.items():
        accuracies = []
        for draw in range(draws):
            chosen = labelled_subset(y_train, per_class, draw)
            accuracies.append(accuracy(linear_probe(train[chosen], y_train[chosen])(test), y_test))
        scores[name] = sum(accuracies) / draws
    return scores


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    images, labels, train_idx, test_idx = load_digits_split(test_size=500)
    x_train, y_train, x_test, y_test = images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]
    rows, start = {}, time.perf_counter()
    for name, kwargs in settings().items():
        runs = []
        for seed in range(args.seeds):
            simclr = pretrain_simclr(x_train, Augment(**kwargs), seed)
            runs.append(probe_scores(simclr, x_train, y_train, x_test, y_test))
        rows[name] = {"augment": kwargs, **{key: [r[key] for r in runs] for key in ("h", "z", "knn_all")}}
        h = rows[name]["h"]
        print(f"{name:>18}: h {statistics.mean(h):.3f} (min {min(h):.3f}, max {max(h):.3f}), "
              f"z {statistics.mean(rows[name]['z']):.3f}   [{time.perf_counter() - start:.0f} s]", flush=True)
    result = {"measured": datetime.date.today().isoformat(), "machine": platform.machine(),
              "torch": torch.__version__, "seeds": args.seeds, "probe": "linear, 5 labels per class, 3 draws",
              "test_images": len(y_test), "raw_pixels": probe_scores(None, x_train, y_train, x_test, y_test),
              "settings": rows}
    RESULTS.parent.mkdir(exist_ok=True)
    SHIPPED.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    lines = [
        "# SimCLR on the digits: which augmentations matter",
        "",
        f"Measured {result['measured']} on {result['machine']}, torch {result['torch']}, by "
        "`python bench/simclr_augmentations.py`. Chapter 05's SimCLR recipe with one augmentation setting "
        f"changed; {args.seeds} pretraining seeds each. Score: test accuracy (500 images) of a linear probe "
        "trained on 5 labelled images per class (mean of 3 draws), on the features h and on the "
        "projections z. Chance is 10%.",
        "",
        "The last column: 5-nearest neighbours on h with all 1,297 training labels. Raw pixels: linear probe "
        f"{result['raw_pixels']['h']:.1%} (5 labels per class), kNN {result['raw_pixels']['knn_all']:.1%} (all labels).",
        "",
        "| augmentations | h: mean | h: min–max | z: mean | z: min–max | kNN, all labels: min–max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | {statistics.mean(row['h']):.1%} | {min(row['h']):.1%}–{max(row['h']):.1%} | "
                     f"{statistics.mean(row['z']):.1%} | {min(row['z']):.1%}–{max(row['z']):.1%} | "
                     f"{min(row['knn_all']):.1%}–{max(row['knn_all']):.1%} |")
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
