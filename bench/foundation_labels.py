"""Chapter 01's comparison: a pretrained sentence encoder with a linear probe against models trained from
scratch on the same few labels. Chapter 01 loads the results and reruns the smallest budget live.

    python bench/foundation_labels.py        # a few minutes on 2 CPU cores

The task: which of six sections of Python's documentation a 64-character passage comes from
(``fmcourse.data.passages.topic_passages``; per section 32 passages to draw labels from, 16 for
validation, 30 for the test). For 1, 2, 4, 8, 16 and 32 labels per section, 5 draws each (a draw picks
the labelled passages; with all 32 the draws differ only in the initialisation of the network), four
models learn from the same labels:

- ``pretrained``: all-MiniLM-L6-v2, frozen, and a linear probe on its sentence embeddings;
- ``random``: the same network with random weights (BERT's initialisation), frozen, and the same probe:
  the architecture without the pretraining;
- ``tfidf``: logistic regression on TF-IDF word vectors (the words and their weights from the
  unlabelled training and validation passages), the strongest simple baseline;
- ``bow_net``: a network trained from scratch end to end, a bag of word embeddings (64 numbers a
  word, the words of the unlabelled training and validation passages) averaged and read by a linear
  layer, 300 full-batch AdamW steps (its training loss is then near zero).

Every model gets a grid of 5 settings, chosen on the validation passages: the probes' L2 penalty,
logistic regression's C, the network's learning rate. The test passages are only evaluated.

Writes ``fmcourse/shipped/foundation_labels.json`` and ``bench/results/foundation_labels.md``.
"""

from __future__ import annotations

import copy
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from torch import nn

from fmcourse import env
from fmcourse.data.passages import topic_passages
from fmcourse.finetune import logistic_regression_baseline, tuned_linear_probe
from fmcourse.metrics import accuracy
from fmcourse.models.sentence import load_sentence_encoder

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ["string-methods", "typesseq", "assignment", "execmodel", "compound", "comparisons"]
SIZES = (32, 16, 30)                      # per section: label pool, validation, test
BUDGETS = [1, 2, 4, 8, 16, 32]            # labels per section
DRAWS = 5
LRS = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]      # the network's grid (5 settings, as the others get)
STEPS = 300


def labelled_rows(budget: int, draw: int, sections: int = len(SECTIONS), pool: int = SIZES[0]) -> torch.Tensor:
    """The rows of the label pool that draw ``draw`` labels at ``budget`` per section (the same for every model)."""
    g = torch.Generator().manual_seed(draw)
    return torch.cat([torch.randperm(pool, generator=g)[:budget] + pool * c for c in range(sections)])


def randomised(encoder: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of a SentenceTransformer with BERT's initialisation instead of its trained weights."""
    model = copy.deepcopy(encoder)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, 0.02, generator=g)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
    return model


class BagOfWords(nn.Module):
    """Word ids (N, L), padded with -1, -> logits (N, C): the mean of the words' embeddings, then a linear layer."""

    def __init__(self, vocab: int, classes: int, dim: int = 64):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab, dim, mode="mean")
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lengths = (ids >= 0).sum(1)                                          # every row has a word
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        return self.head(self.embed(ids[ids >= 0], offsets))


def word_ids(texts: list[str], vocab: dict[str, int]) -> torch.Tensor:
    """Each text as the ids of its known words (N, longest), padded with -1; an unknown word is skipped,
    a text with no known word gets the id of the padding word 0."""
    rows = [[vocab[w] for w in t.lower().split() if w in vocab] or [0] for t in texts]
    out = torch.full((len(rows), max(map(len, rows))), -1)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r)
    return out


def train_bow(train_ids, train_y, val_ids, val_y, vocab_size: int, seed: int):
    """The bag-of-words network from scratch at each rate of ``LRS``; returns (model, lr, val accuracy) of the best."""
    best = None
    for lr in LRS:
        torch.manual_seed(seed)
        model = BagOfWords(vocab_size, len(SECTIONS))
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        for _ in range(STEPS):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(train_ids), train_y).backward()
            optimizer.step()
        with torch.no_grad():
            score = accuracy(model(val_ids), val_y)
        if best is None or score > best[2]:
            best = (model, lr, score)
    return best


def main() -> None:
    env.set_threads()
    start = time.perf_counter()
    (train, train_y), (val, val_y), (test, test_y) = topic_passages(SECTIONS, SIZES, seed=0)
    train_y, val_y, test_y = torch.tensor(train_y), torch.tensor(val_y), torch.tensor(test_y)
    minilm, _ = load_sentence_encoder("cpu")
    features = {}
    for name, encoder in (("pretrained", minilm), ("random", randomised(minilm))):
        features[name] = [encoder.encode(t, convert_to_tensor=True, batch_size=64).cpu() for t in (train, val, test)]
    tfidf = TfidfVectorizer(sublinear_tf=True).fit(train + val)            # unlabelled text only
    tfidf_x = [tfidf.transform(t).toarray() for t in (train, val, test)]
    vocab = {w: i + 1 for i, w in enumerate(sorted({w for t in train + val for w in t.lower().split()}))}
    ids = [word_ids(t, vocab) for t in (train, val, test)]

    rows = []
    for budget in BUDGETS:
        for draw in range(DRAWS):
            chosen = labelled_rows(budget, draw)
            row = {"per_section": budget, "labels": len(chosen), "draw": draw}
            for name, (f_train, f_val, f_test) in features.items():
                probe, l2, _ = tuned_linear_probe(f_train[chosen], train_y[chosen], f_val, val_y)
                row[name], row[f"{name}_l2"] = accuracy(probe(f_test), test_y), l2
            predict, C, _ = logistic_regression_baseline(tfidf_x[0][chosen.numpy()], train_y[chosen].numpy(),
                                                         tfidf_x[1], val_y.numpy())
            row["tfidf"], row["tfidf_C"] = float((predict(tfidf_x[2]) == test_y.numpy()).mean()), C
            model, lr, _ = train_bow(ids[0][chosen], train_y[chosen], ids[1], val_y, len(vocab) + 1, seed=draw)
            with torch.no_grad():
                row["bow_net"], row["bow_net_lr"] = accuracy(model(ids[2]), test_y), lr
            rows.append(row)
            print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)

    results = {"sections": SECTIONS, "sizes": SIZES, "budgets": BUDGETS, "draws": DRAWS, "lrs": LRS, "steps": STEPS,
               "rows": rows, "seconds": round(time.perf_counter() - start), "torch": torch.__version__,
               "machine": platform.machine(), "date": datetime.date.today().isoformat()}
    (ROOT / "fmcourse" / "shipped" / "foundation_labels.json").write_text(json.dumps(results, indent=1) + "\n")
    methods = [("pretrained", "MiniLM (pretrained) + linear probe"), ("random", "MiniLM with random weights + probe"),
               ("tfidf", "TF-IDF + logistic regression"), ("bow_net", "bag-of-words network from scratch")]
    table = ["| labels per section | " + " | ".join(label for _, label in methods) + " |",
             "|---:|" + "---:|" * len(methods)]
    for budget in BUDGETS:
        cells = []
        for key, _ in methods:
            v = np.array([r[key] for r in rows if r["per_section"] == budget])
            cells.append(f"{v.mean():.1%} ({v.min():.1%}–{v.max():.1%})")
        table.append(f"| {budget} | " + " | ".join(cells) + " |")
    (ROOT / "bench" / "results" / "foundation_labels.md").write_text(
        "# Chapter 01: a pretrained encoder's probe against models from scratch, same labels\n\n"
        f"`python bench/foundation_labels.py` ({results['seconds']} s, torch {torch.__version__}, {results['date']}). "
        f"Test accuracy on {SIZES[2] * len(SECTIONS)} passages of six sections of Python's documentation "
        f"(chance {1 / len(SECTIONS):.1%}): mean over {DRAWS} draws of the labels (min–max).\n\n" + "\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
