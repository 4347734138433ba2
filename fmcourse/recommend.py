"""Training and comparing recommenders on the shop world, with one tuning budget for every method.

    mf = fit_mf(histories, n_items, dim=8, weight_decay=0.1)          # (U, T) purchases -> MatrixFactorization
    gpt, history = fit_gpt(histories, n_items, d_model=64, dropout=0.1, steps=1000)
    scores = method_scores("gpt", model, histories, n_items)          # (U, I) for any method

``python -m fmcourse.recommend`` runs the comparison of chapter 10: every method gets the same number
of settings (``GRIDS``), each chosen on the validation items; the chosen settings are trained again on
everything but the test items, with three seeds, and scored on the test items. It writes the results
to ``fmcourse/shipped/shop_comparison.json`` and the GPT of seed 0 to ``fmcourse/shipped/gpt_shop/``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fmcourse import checkpoints, metrics, train
from fmcourse.data.files import atomic_path
from fmcourse.data.recsys import ShopWorld, leave_last_out
from fmcourse.models import GPT, GPTConfig
from fmcourse.models.recommender import (ItemBigram, MatrixFactorization, check_histories, next_item_scores,
                                         popularity_scores, with_start)

#: The world of chapter 10 (``ShopWorld.generate(**WORLD)``).
WORLD = dict(n_users=2000, length=20, n_categories=8, items_per_category=12, follow=0.3, concentration=0.3, seed=0)

#: Four settings per tuned method: the same budget for each (popularity has nothing to tune).
GRIDS = {
    "popularity": [{}],
    "bigram": [{"smoothing": s} for s in (0.1, 1.0, 10.0, 100.0)],
    "mf": [{"dim": d, "weight_decay": w} for d in (8, 32) for w in (0.03, 0.1)],
    "gpt": [{"d_model": d, "dropout": p} for d in (32, 64) for p in (0.1, 0.3)],
}
GPT_STEPS = 1000
MF_STEPS = 300


def fit_mf(histories: torch.Tensor, n_items: int, dim: int = 8, weight_decay: float = 0.1, steps: int = MF_STEPS,
           lr: float = 0.05, seed: int = 0) -> MatrixFactorization:
    """Matrix factorization fitted to every purchase of ``histories`` ``(U, T)`` (user ``u`` is row ``u``).

    The loss is the mean cross-entropy of the softmax over items at each purchase, plus
    ``weight_decay`` times the mean squared length of the user and item vectors; full-batch Adam.
    Each user's purchases enter as counts ``(U, I)``, which gives the same loss as one term per purchase.
    """
    histories = check_histories(histories, n_items)
    torch.manual_seed(seed)
    mf = MatrixFactorization(histories.size(0), n_items, dim)
    counts = torch.zeros(histories.size(0), n_items).scatter_add_(1, histories, torch.ones(histories.shape))
    users = torch.arange(histories.size(0))
    optimizer = torch.optim.Adam(mf.parameters(), lr=lr)
    for _ in range(steps):
        log_p = mf(users).log_softmax(dim=1)
        penalty = mf.users.weight.pow(2).sum(1).mean() + mf.items.weight.pow(2).sum(1).mean()
        loss = -(counts * log_p).sum() / counts.sum() + weight_decay * penalty
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    mf.final_loss = loss.item()
    return mf


def gpt_batches(histories: torch.Tensor, n_items: int, batch_size: int, generator: torch.Generator):
    """A function returning random batches ``(inputs, targets)``, both ``(batch_size, T)``: inputs are
    ``[START, h_1..h_{T-1}]`` and targets ``[h_1..h_T]``, so every position predicts the next purchase."""
    sequences = with_start(histories, n_items)

    def batch():
        rows = torch.randint(0, sequences.size(0), (batch_size,), generator=generator)
        return sequences[rows, :-1], sequences[rows, 1:]

    return batch


def fit_gpt(histories: torch.Tensor, n_items: int, d_model: int = 64, dropout: float = 0.1, n_layer: int = 2,
            n_head: int = 2, steps: int = GPT_STEPS, batch_size: int = 128, lr: float = 3e-3, seed: int = 0,
            context_length: int | None = None, **fit_options) -> tuple[GPT, train.History]:
    """A GPT over items (vocabulary: the items and START) trained on ``histories`` ``(U, T)`` with
    ``fmcourse.train.fit``; returns the model and its History."""
    histories = check_histories(histories, n_items)
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=n_items + 1, context_length=context_length or histories.size(1) + 1,
                       n_layer=n_layer, n_head=n_head, d_model=d_model, dropout=dropout)
    gpt = GPT(config)
    batches = gpt_batches(histories, n_items, batch_size, torch.Generator().manual_seed(seed))
    options = dict(lr=lr, warmup_steps=steps // 20, weight_decay=0.01, plot=False, progress=False, device="cpu")
    history = train.fit(gpt, batches, train.supervised(), steps=steps, **{**options, **fit_options})
    return gpt, history


def method_scores(method: str, model, histories: torch.Tensor, n_items: int) -> torch.Tensor:
    """``(U, I)`` scores of the next item for the users whose purchases are ``histories`` ``(U, T)``.

    ``model``: None for ``"popularity"`` (counted from ``histories``), an ``ItemBigram``, a
    ``MatrixFactorization`` whose users are the rows of ``histories``, or a GPT recommender.
    """
    if method == "popularity":
        return popularity_scores(histories, n_items).expand(histories.size(0), -1)
    if method == "bigram":
        return model.scores(histories)
    if method == "mf":
        with torch.no_grad():
            return model(torch.arange(histories.size(0)))
    if method == "gpt":
        return next_item_scores(model, histories, n_items)
    raise ValueError(f"method must be one of {list(GRIDS)}, got {method!r}")


def fit_method(method: str, histories: torch.Tensor, n_items: int, settings: dict, seed: int = 0):
    """The model of ``method`` with ``settings`` trained on ``histories`` (None for popularity)."""
    if method == "popularity":
        return None
    if method == "bigram":
        return ItemBigram(histories, n_items, **settings)
    if method == "mf":
        return fit_mf(histories, n_items, seed=seed, **settings)
    if method == "gpt":
        return fit_gpt(histories, n_items, seed=seed, **settings)[0]
    raise ValueError(f"method must be one of {list(GRIDS)}, got {method!r}")


def compare(world: ShopWorld, seeds: tuple[int, ...] = (0, 1, 2), log=print, grids: dict | None = None) -> tuple[dict, GPT]:
    """Tune every method on the validation items, then score the chosen settings on the test items
    with each seed. Returns the results (JSON-ready) and the GPT of the first seed."""
    split = leave_last_out(world.sequences)
    n_items = world.n_items
    results: dict = {"world": WORLD, "grids": GRIDS, "gpt_steps": GPT_STEPS, "mf_steps": MF_STEPS,
                     "validation": {}, "chosen": {}, "test": {}}
    first_gpt = None
    for method, grid in (grids or GRIDS).items():
        rows = []
        for settings in grid:
            start = time.time()
            model = fit_method(method, split.history("valid"), n_items, settings)
            scores = method_scores(method, model, split.history("valid"), n_items)
            rows.append({"settings": settings, "ndcg": metrics.ndcg_at_k(scores, split.valid, 10),
                         "recall": metrics.recall_at_k(scores, split.valid, 10)})
            log(f"{method} {settings}: validation NDCG@10 {rows[-1]['ndcg']:.4f} ({time.time() - start:.0f} s)")
        best = max(rows, key=lambda row: row["ndcg"])
        results["validation"][method], results["chosen"][method] = rows, best["settings"]
        tests = []
        for seed in (seeds if method in ("mf", "gpt") else seeds[:1]):
            curve = None
            if method == "gpt":  # keep the loss curve: the run must have levelled off
                model, history = fit_gpt(split.history("test"), n_items, seed=seed, **best["settings"])
                smooth = history.smoothed_train_loss(0.98)
                curve = {"steps": history.steps[99::100], "loss": smooth[99::100]}
            else:
                model = fit_method(method, split.history("test"), n_items, best["settings"], seed=seed)
            scores = method_scores(method, model, split.history("test"), n_items)
            tests.append({"seed": seed, "ndcg": metrics.ndcg_at_k(scores, split.test, 10),
                          "recall": metrics.recall_at_k(scores, split.test, 10)})
            if method == "mf":
                tests[-1]["final_loss"] = model.final_loss
            if curve is not None:
                tests[-1]["loss_curve"] = curve
            if method == "gpt" and first_gpt is None:
                first_gpt = model
            log(f"{method} test, seed {seed}: NDCG@10 {tests[-1]['ndcg']:.4f}")
        results["test"][method] = tests
    truth = world.next_item_probabilities(world.tastes, split.valid)
    results["ceiling"] = dict(zip(("recall", "ndcg"), metrics.ranking_ceiling(truth, 10)))
    return results, first_gpt


def markdown_table(results: dict) -> str:
    """The comparison as Markdown: the validation grid of each method, then the test scores over seeds."""
    lines = ["# Recommendation on the shop world: every method tuned with the same budget", "",
             "`python -m fmcourse.recommend` (one thread). World: " + ", ".join(f"{k}={v}" for k, v in results["world"].items())
             + f". GPT: {results['gpt_steps']} steps; MF: {results['mf_steps']} full-batch steps.", "",
             "## Validation NDCG@10 of each setting (the chosen one in bold)", "",
             "| method | setting | NDCG@10 | Recall@10 |", "|---|---|---:|---:|"]
    for method, rows in results["validation"].items():
        for row in rows:
            mark = "**" if row["settings"] == results["chosen"][method] else ""
            lines.append(f"| {method} | {mark}{json.dumps(row['settings']) if row['settings'] else '—'}{mark} | "
                         f"{row['ndcg']:.4f} | {row['recall']:.4f} |")
    lines += ["", "## Test items: the chosen settings trained on everything but the test item", "",
              "| method | seeds | NDCG@10 (mean ± sd) | Recall@10 (mean ± sd) |", "|---|---:|---:|---:|"]
    for method, rows in results["test"].items():
        ndcg, recall = torch.tensor([r["ndcg"] for r in rows]), torch.tensor([r["recall"] for r in rows])
        sd = (lambda x: x.std().item() if len(x) > 1 else 0.0)
        lines.append(f"| {method} | {len(rows)} | {ndcg.mean():.4f} ± {sd(ndcg):.4f} | {recall.mean():.4f} ± {sd(recall):.4f} |")
    ceiling = results["ceiling"]
    lines.append(f"| ceiling (best ranking, expected) | — | {ceiling['ndcg']:.4f} | {ceiling['recall']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "shipped"), help="folder for the results")
    parser.add_argument("--table", default=str(Path(__file__).parents[1] / "bench" / "results" / "recommendation.md"),
                        help="the Markdown table of the results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    results, gpt = compare(ShopWorld.generate(**WORLD))
    checkpoints.save(gpt, out / "gpt_shop", metadata={"world": WORLD, "settings": results["chosen"]["gpt"],
                                                      "steps": GPT_STEPS, "trained_on": "history('test')"})
    with atomic_path(out / "shop_comparison.json") as path:
        Path(path).write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    with atomic_path(args.table) as path:
        Path(path).write_text(markdown_table(results), encoding="utf-8")
    print(f"wrote {out / 'shop_comparison.json'}, {out / 'gpt_shop'} and {args.table}")


if __name__ == "__main__":
    main()
