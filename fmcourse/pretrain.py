"""Pretrain a small language model on any text: steps 1-3 of seed section 3.2 in one call.

    result = pretrain(text, steps=1000)                 # a character-level GPT (causal LM)
    result = pretrain(text, objective="masked")         # a BERT-style encoder (masked LM)
    print(sample(result.model, result.tokenizer, "The ", length=200))

or from a shell, on a UTF-8 text file of your own (or on Python's documentation with ``--pydoc``)::

    python -m fmcourse.pretrain --text my_notes.txt --steps 1000 --out runs/notes

which prints its progress and writes a checkpoint (``fmcourse.checkpoints``) and a few samples. It
checks every argument, the output folder and the prompt before it trains, saves its training state
as it goes (``DIR/training_state.pt``), and an interrupted run (Ctrl-C) continues with
``python -m fmcourse.pretrain --resume DIR``. The same command trains data-parallel on several processes
(and machines) under ``torchrun --nproc_per_node N -m fmcourse.pretrain ...`` (``fmcourse.distributed``):
each process computes ``batch_size / N`` rows of every batch, and only rank 0 logs and writes files.

1. **prepare**: clean the text, split it into training and validation paragraphs, train a tokenizer
   on the training part only (validation characters it never saw become ``<unk>``), encode both;
2. **initialize**: a GPT or an encoder of the given size;
3. **pretrain**: ``fit`` on random windows (next-token targets) or masked windows (BERT's 15%,
   80/10/10), measuring the validation loss as it goes.

The defaults (``Settings``) give the lowest validation loss per CPU-second on Python's documentation
that ``bench/pretrain_tuning.py`` found on a 2-core laptop CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fmcourse import checkpoints, distributed, env, shipped
from fmcourse.data.files import atomic_path
from fmcourse.data import (
    causal_lm_batches,
    causal_lm_eval_batches,
    clean_text,
    masked_lm_batches,
    masked_lm_eval_batches,
    pydoc_text,
    read_text,
    train_val_split,
)
from fmcourse.models import GPT, Encoder, EncoderConfig, GPTConfig
from fmcourse.tokenizers import BPETokenizer, CharTokenizer, Tokenizer
from fmcourse.train import History, fit

OBJECTIVES = ("causal", "masked")
TOKENIZERS = ("char", "bpe")
MASK = "<mask>"


@dataclass
class Settings:
    """Everything that decides a pretraining run (stored in the checkpoint's metadata)."""

    objective: str = "causal"  # "causal" (GPT, next token) or "masked" (encoder, BERT's masked LM)
    tokenizer: str = "char"  # "char" or "bpe" (byte-level BPE trained on the training text)
    bpe_vocab_size: int = 512
    steps: int = 2000  # about a minute of one CPU core (bench/pretrain_tuning.py)
    batch_size: int = 32
    context_length: int = 64
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    dropout: float = 0.0
    lr: float = 8e-3
    warmup_steps: int = 300
    mask_probability: float = 0.15  # masked LM only
    val_fraction: float = 0.1
    eval_batches: int = 8  # validation batches of batch_size windows
    evaluations: int = 10  # validation losses measured during the run
    seed: int = 0

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")
        for name in ("bpe_vocab_size", "steps", "batch_size", "context_length", "n_layer", "n_head", "d_model",
                     "eval_batches", "evaluations"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative int, got {self.warmup_steps!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_head={self.n_head}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 < self.mask_probability <= 1:
            raise ValueError(f"mask_probability must be in (0, 1], got {self.mask_probability}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")


@dataclass
class Corpus:
    """A text ready for training: its tokenizer and the token ids of its two parts (1-D int64)."""

    tokenizer: Tokenizer
    train: torch.Tensor  # (N_train,)
    val: torch.Tensor  # (N_val,)
    train_chars: int
    val_chars: int

    @property
    def chars_per_token(self) -> float:
        """Characters of validation text per token: 1 for characters, more for BPE."""
        return self.val_chars / len(self.val)


def prepare(text: str, tokenizer: str = "char", *, bpe_vocab_size: int = 512, val_fraction: float = 0.1,
            seed: int = 0, specials: tuple[str, ...] = ()) -> Corpus:
    """Step 1, data preprocessing: ``clean_text``, ``train_val_split`` by paragraphs, a tokenizer
    trained on the training part only (``"char"`` or ``"bpe"``, with ``specials`` such as ``<mask>``),
    and the token ids of both parts."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
    text = clean_text(text)
    if not text:
        raise ValueError("the text is empty after cleaning (nothing but whitespace or control characters)")
    train, val = train_val_split(text, val_fraction, seed)
    if tokenizer == "char":
        tok = CharTokenizer.train(train, specials=specials, unknown="replace")
    else:
        tok = BPETokenizer.train(train, bpe_vocab_size, specials=specials)
    ids = [torch.tensor(tok.encode(part), dtype=torch.long) for part in (train, val)]
    return Corpus(tok, ids[0], ids[1], len(train), len(val))


def unigram_loss(train: torch.Tensor, val: torch.Tensor, vocab_size: int, smoothing: float = 1.0) -> float:
    """The cross-entropy (nats per token) of ``val`` under the unigram model of ``train``.

    The unigram model ignores context: ``p(x) = (count(x) + smoothing) / (N + smoothing * V)`` from
    the training counts (add-one smoothing by default, so a token unseen in training is not
    infinitely surprising). A language model that uses context should beat it.
    """
    for name, ids in (("train", train), ("val", val)):
        if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.is_floating_point() or len(ids) == 0:
            raise ValueError(f"{name} must be a non-empty 1-D tensor of token ids, got {ids!r:.80}")
        if ids.min() < 0 or ids.max() >= vocab_size:
            raise ValueError(f"{name} ids must lie in 0..{vocab_size - 1}, found {ids.min().item()}..{ids.max().item()}")
    if smoothing < 0 or (smoothing == 0 and not torch.isin(val, train).all()):
        raise ValueError(f"smoothing must be positive (validation has tokens unseen in training), got {smoothing}")
    counts = torch.bincount(train, minlength=vocab_size).double() + smoothing
    return -(counts / counts.sum()).log()[val].mean().item()


@dataclass
class Pretrained:
    """What ``pretrain`` gives back: the trained model, its tokenizer and data, and how it went."""

    model: nn.Module  # a GPT (causal) or an Encoder (masked), in eval mode
    corpus: Corpus
    settings: Settings
    history: History
    unigram: float  # nats per token of the validation text under the training unigram model

    @property
    def tokenizer(self) -> Tokenizer:
        return self.corpus.tokenizer

    @property
    def val_loss(self) -> float:
        """The final validation loss, nats per token (per masked token for the masked objective)."""
        return self.history.val_loss[-1]

    def summary(self) -> dict:
        """The numbers of the run (JSON values), as stored in a checkpoint's metadata."""
        result = {
            "settings": dataclasses.asdict(self.settings),
            "train_tokens": len(self.corpus.train),
            "val_tokens": len(self.corpus.val),
            "val_loss": round(self.val_loss, 4),
            "unigram_loss": round(self.unigram, 4),
            "steps_trained": len(self.history.steps),
        }
        if self.settings.objective == "causal":
            result["perplexity"] = round(math.exp(self.val_loss), 3)
            result["nats_per_char"] = round(self.val_loss / self.corpus.chars_per_token, 4)
        return result


def build_model(settings: Settings, vocab_size: int) -> nn.Module:
    """Step 2, initialization: a GPT (causal objective) or an Encoder (masked) of the settings' size."""
    sizes = dict(vocab_size=vocab_size, context_length=settings.context_length, n_layer=settings.n_layer,
                 n_head=settings.n_head, d_model=settings.d_model, dropout=settings.dropout)
    return GPT(GPTConfig(**sizes)) if settings.objective == "causal" else Encoder(EncoderConfig(**sizes))


def pretrain(text: str, settings: Settings | None = None, *, device: torch.device | str | None = None,
             plot: bool = True, progress: bool = True, corpus: Corpus | None = None,
             checkpoint: str | Path | None = None, checkpoint_every: int | None = None, resume: bool = False,
             minutes: float | None = None, **overrides) -> Pretrained:
    """Prepare ``text``, build a model and pretrain it; keyword arguments override ``Settings``.

    ``pretrain(text, steps=500, lr=1e-3)`` is ``pretrain(text, Settings(steps=500, lr=1e-3))``.
    ``minutes`` trains for that much wall-clock time instead of ``settings.steps`` steps (``fit``'s
    time budget: the learning-rate schedule ends at its minimum when the time is up).
    Raises ``ValueError`` naming the numbers when the text is too short for the context length.
    ``corpus`` is ``prepare_for(text, settings)`` when the caller has made it already;
    ``checkpoint``, ``checkpoint_every`` and ``resume`` go to ``fit`` (a resumable run).
    Under ``torchrun`` it trains data-parallel (``fmcourse.distributed``): each of the processes computes
    ``batch_size / world_size`` rows of every batch, which must divide evenly; a run there counts steps,
    not minutes.
    """
    if minutes is not None and distributed.launched():  # each process would time its own steps, stop at its own
        raise ValueError("a time budget (minutes) cannot be used under torchrun, where every process must "
                         "take the same number of steps: give steps instead")
    settings = dataclasses.replace(settings or Settings(), **overrides)
    masked = settings.objective == "masked"
    corpus = corpus or prepare_for(text, settings)
    needed = settings.context_length + 1
    for part in ("train", "val"):
        found = len(getattr(corpus, part))
        if found < needed:
            raise ValueError(
                f"the {part} part of the text has {found} tokens, fewer than the {needed} that one window of "
                f"context_length={settings.context_length} needs: give more text, or a smaller context_length"
            )
    tok = corpus.tokenizer
    if distributed.launched():  # under torchrun: this process's device and its share of each batch
        device = distributed.init(device)
        distributed.local_batch_size(settings.batch_size)
    env.seed_everything(settings.seed)
    model = build_model(settings, tok.vocab_size)
    generator = torch.Generator().manual_seed(settings.seed)
    B, T = settings.batch_size, settings.context_length
    if masked:
        masking = dict(vocab_size=tok.vocab_size, mask_id=tok.specials[MASK], special_ids=tok.specials.values(),
                       probability=settings.mask_probability)
        train_batches = masked_lm_batches(corpus.train, B, T, generator=generator, **masking)
        val_batches = masked_lm_eval_batches(corpus.val, B, T, seed=settings.seed,
                                             max_batches=settings.eval_batches, **masking)
    else:
        train_batches = causal_lm_batches(corpus.train, B, T, generator=generator)
        val_batches = causal_lm_eval_batches(corpus.val, B, T, max_batches=settings.eval_batches)
    if distributed.launched():  # every process draws the same global batch and trains on its rows of it
        train_batches = distributed.shard(train_batches)
        model = distributed.wrap(model, torch.device(device))
    length = (dict(minutes=minutes, evaluations=settings.evaluations) if minutes is not None else
              dict(steps=settings.steps, eval_every=max(1, settings.steps // settings.evaluations)))
    history = fit(model, train_batches, **length, lr=settings.lr, warmup_steps=settings.warmup_steps,
                  val_data=val_batches, device=device,
                  plot=plot, progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                  resume=resume, generators=[generator])
    model = distributed.unwrap(model)
    model.tokenizer_sha256 = checkpoints.tokenizer_fingerprint(tok)  # lets ``sample`` refuse another tokenizer
    unigram = unigram_loss(corpus.train, corpus.val, tok.vocab_size)
    return Pretrained(model, corpus, settings, history, unigram)


def prepare_for(text: str, settings: Settings) -> Corpus:
    """``prepare`` with the tokenizer, split and specials that ``settings`` ask for."""
    return prepare(text, settings.tokenizer, bpe_vocab_size=settings.bpe_vocab_size, val_fraction=settings.val_fraction,
                   seed=settings.seed, specials=(MASK,) if settings.objective == "masked" else ())


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _unseen(tokenizer: Tokenizer, text: str) -> list[str]:
    """The characters of ``text`` that ``tokenizer`` cannot represent (a BPE tokenizer represents all)."""
    if isinstance(tokenizer, CharTokenizer):
        known = set(tokenizer.chars)
        return sorted({c for c in text if c not in known})
    return []


def check_tokenizer(model: nn.Module, tokenizer: Tokenizer) -> None:
    """Refuse a tokenizer that is not the one ``model`` was trained with: one of another size, or,
    for a model from ``pretrain`` or ``checkpoints.load``, one with another vocabulary."""
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"tokenizer must be an fmcourse Tokenizer, got {type(tokenizer).__name__}")
    vocab_size = model.config.vocab_size
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model has {vocab_size}: it is not "
                         f"the tokenizer this model was trained with (use the one saved with it)")
    known = getattr(model, "tokenizer_sha256", None)
    if known is not None and known != checkpoints.tokenizer_fingerprint(tokenizer):
        raise ValueError("the tokenizer is not the one this model was trained with (same size, another vocabulary): "
                         "its ids would mean other characters; use the tokenizer saved with the model")


def encode_prompt(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """The ids of ``prompt``; a character the tokenizer never saw is a ``ValueError`` naming it (it
    would become ``<unk>``, which the model has barely seen). An empty prompt starts the text after
    a newline, as after a paragraph break."""
    if not isinstance(prompt, str):
        raise TypeError(f"a prompt must be a str, got {type(prompt).__name__}")
    if unseen := _unseen(tokenizer, prompt or "\n"):
        if not prompt:
            raise ValueError("this tokenizer has no newline character to start from: give a non-empty prompt")
        raise ValueError(
            f"the prompt has {len(unseen)} character(s) the tokenizer never saw in training: {''.join(unseen)!r}; "
            f"use characters of the training text, or train on text that has them (a BPE tokenizer knows every character)"
        )
    return tokenizer.encode(prompt or "\n")


def sample(model: GPT, tokenizer: Tokenizer, prompt: str = "", length: int = 200, *, temperature: float = 0.8,
           top_k: int | None = None, seed: int = 0) -> str:
    """``prompt`` continued by ``length`` tokens of ``model`` at ``temperature`` (0: always the most
    likely token). Seeded: the same arguments give the same text."""
    if not isinstance(model, GPT):
        raise TypeError(f"sampling needs a GPT (a causal model), got {type(model).__name__}")
    check_tokenizer(model, tokenizer)
    if not (isinstance(length, int) and not isinstance(length, bool) and length >= 0):
        raise ValueError(f"length must be a non-negative int (tokens to generate), got {length!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0: always the most likely token), got {temperature!r}")
    device = _model_device(model)
    ids = encode_prompt(tokenizer, prompt)
    generator = torch.Generator(device=device).manual_seed(seed)
    out = model.generate(torch.tensor([ids], device=device), length, temperature=temperature, top_k=top_k,
                         generator=generator)
    return prompt + tokenizer.decode(out[0, len(ids):].tolist())


@torch.no_grad()
def fill_in(model: Encoder, tokenizer: Tokenizer, text: str, blank: str = "_",
            top_k: int = 3) -> tuple[str, list[list[tuple[str, float]]]]:
    """Fill each ``blank`` character of ``text`` with an encoder's prediction (BERT's fill-in-the-blank).

    Each blank becomes one ``<mask>`` token, and all blanks are predicted at once, each from both
    sides. Returns the filled text and, per blank, the ``top_k`` candidates with their probabilities.
    """
    if not isinstance(model, Encoder):
        raise TypeError(f"filling in blanks needs an Encoder (trained with the masked objective), got {type(model).__name__}")
    if MASK not in tokenizer.specials:
        raise ValueError(f"the tokenizer has no {MASK!r} token: was the encoder trained with objective='masked'?")
    check_tokenizer(model, tokenizer)
    if not isinstance(blank, str) or len(blank) != 1:
        raise ValueError(f"blank must be a single character, got {blank!r}")
    parts = text.split(blank)
    if len(parts) == 1:
        raise ValueError(f"the text has no blank {blank!r} to fill in")
    ids, where = [], []
    for i, part in enumerate(parts):
        if unseen := _unseen(tokenizer, part):
            raise ValueError(f"the text has characters the tokenizer never saw: {''.join(unseen)!r}")
        ids += tokenizer.encode(part)
        if i < len(parts) - 1:
            where.append(len(ids))
            ids.append(tokenizer.specials[MASK])
    if len(ids) > model.config.context_length:
        raise ValueError(f"the text is {len(ids)} tokens long, more than the context length {model.config.context_length}")
    device = _model_device(model)
    probs = model(torch.tensor([ids], device=device))[0, where].float().softmax(dim=-1)  # (blanks, V)
    special = list(tokenizer.specials.values())
    probs[:, special] = 0.0  # a blank is filled with text, never with <mask> or <unk>
    best = probs.topk(top_k, dim=-1)
    candidates = [[(tokenizer.decode([i]), p) for i, p in zip(row_ids.tolist(), row_p.tolist())]
                  for row_ids, row_p in zip(best.indices, best.values)]
    filled = parts[0] + "".join(c[0][0] + part for c, part in zip(candidates, parts[1:]))
    return filled, candidates


# --- the pretrained models shipped with the package (fmcourse/shipped/) ---------------------------

# The defaults suit a run of a minute; these longer runs can afford a larger model (in a 6000-step
# run it began to overfit the 340,000 training characters after about 3600 steps, hence 3000), and
# a masked LM, which learns from 15% of the positions only, a larger batch (more targets a step).
_LONG_RUN = ["--n-layer", "3", "--d-model", "96", "--lr", "0.008", "--warmup-steps", "100"]
SHIPPED = {  # name in fmcourse/shipped/ -> the arguments of `python -m fmcourse.pretrain` that made it (besides --out)
    "gpt_pydoc_char": ["--pydoc", *_LONG_RUN, "--batch-size", "32", "--steps", "3000"],
    "encoder_pydoc_char": ["--pydoc", "--objective", "masked", *_LONG_RUN, "--batch-size", "64", "--steps", "4000"],
}


def shipped_command(name: str) -> str:
    """The one command that builds the shipped model ``name`` (as fmcourse/shipped/README.md gives it)."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped model {name!r}; there are: {', '.join(SHIPPED)}")
    return f"python -m fmcourse.pretrain {' '.join(SHIPPED[name])} --out fmcourse/shipped/{name}"


def shipped_folder(name: str) -> Path:
    """The checkpoint folder of the shipped model ``name``, which travels with the package."""
    command = shipped_command(name)
    try:
        folder = shipped.path(name)
    except FileNotFoundError as missing:
        raise FileNotFoundError(f"{missing} This model is made by `{command}` (minutes on a CPU).") from None
    if not (folder / checkpoints.MANIFEST).is_file():
        raise FileNotFoundError(f"{folder} has no {checkpoints.MANIFEST}: rebuild it with `{command}`")
    return folder


def load_shipped(name: str, device: torch.device | str = "cpu") -> tuple[nn.Module, Tokenizer]:
    """A pretrained model shipped with the package (a GPT or an Encoder, as it was trained) and its tokenizer."""
    folder = shipped_folder(name)
    architecture = checkpoints.read_manifest(folder)["architecture"]
    return checkpoints.load(folder, GPT if architecture == GPT.__qualname__ else Encoder, device=device)


# --- the command line ---------------------------------------------------------------------------

HELP = {
    "objective": "causal: a GPT predicting the next token; masked: a BERT-style encoder filling in masked tokens",
    "tokenizer": "char (one token per character) or bpe (byte-level BPE trained on the text)",
    "bpe_vocab_size": "vocabulary size of the BPE tokenizer (256 bytes + merges)",
    "steps": "training steps",
    "batch_size": "windows per training step",
    "context_length": "tokens per training window (the model's context)",
    "n_layer": "Transformer blocks",
    "n_head": "attention heads per block",
    "d_model": "model width",
    "dropout": "dropout probability",
    "lr": "peak learning rate (AdamW)",
    "warmup_steps": "steps of linear learning-rate warm-up before the cosine decay",
    "mask_probability": "fraction of positions selected as targets (masked objective)",
    "val_fraction": "fraction of the text (whole paragraphs) held out for validation",
    "eval_batches": "validation batches of batch-size windows",
    "evaluations": "validation losses measured during the run",
    "seed": "random seed (the same seed gives the same model)",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fmcourse.pretrain",
        description="Pretrain a small GPT (or BERT-style encoder) on a UTF-8 text file; write a checkpoint and samples.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", type=Path, metavar="FILE", help="a UTF-8 text file to train on")
    source.add_argument("--pydoc", action="store_true", help="train on Python's own documentation (offline)")
    source.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue the interrupted run whose --out was DIR, with its settings")
    parser.add_argument("--out", type=Path, metavar="DIR", help="folder for the checkpoint and samples")
    for field in dataclasses.fields(Settings):
        choices = {"objective": OBJECTIVES, "tokenizer": TOKENIZERS}.get(field.name)
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, type=type(field.default),
                            default=field.default, choices=choices, metavar=None if choices else field.name.upper(),
                            help=f"{HELP[field.name]} (default: {field.default})")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--samples", type=int, default=3, help="samples to write (default: 3)")
    parser.add_argument("--sample-length", type=int, default=300, help="tokens per sample (default: 300)")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default: 0.8)")
    parser.add_argument("--prompt", default="", help="text the samples start from (default: a new paragraph)")
    parser.add_argument("--minutes", type=float, default=None, metavar="M",
                        help="train for M minutes of wall-clock time instead of --steps; the learning-rate "
                             "schedule fits itself to the steps that fit")
    parser.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                        help="steps between saves of the training state (default: at each evaluation)")
    return parser


STATE = "training_state.pt"  # fit's state, saved as the command trains (removed when it is done)
RUN = "run.json"  # the command's arguments, so that --resume continues with the same ones


def check_output_folder(folder: Path) -> None:
    """Refuse, before any training, an output folder that is a file, cannot be created or is not
    writable (a ``ValueError`` naming the reason). Nothing is created here."""
    folder = Path(folder).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise ValueError(f"--out {folder} is a file, not a folder: give a folder for the checkpoint")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"--out {folder} is not writable: give a folder you can write to")
        return
    parent = folder.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--out {folder} cannot be created: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {folder} cannot be created: {parent} is not writable")


def _check_sampling(args: argparse.Namespace) -> None:
    if args.samples < 0:
        raise ValueError(f"--samples must be 0 or more, got {args.samples}")
    if args.sample_length < 1:
        raise ValueError(f"--sample-length must be at least 1 token, got {args.sample_length}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise ValueError(f"--temperature must be a finite number >= 0 (0: the most likely token), got {args.temperature}")
    minutes = getattr(args, "minutes", None)
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"--minutes must be a positive number, got {minutes}")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be at least 1 step, got {args.checkpoint_every}")


def _text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _resumed_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace,
                       argv: list[str]) -> argparse.Namespace:
    """The arguments of the interrupted run in ``args.resume`` (its run.json), on the device asked now."""
    folder = args.resume
    allowed = {"--resume", str(folder), "--device", str(args.device)}
    if extra := [a for a in argv if a not in allowed and not a.startswith(("--resume=", "--device="))]:
        raise ValueError(f"--resume continues with the settings of the interrupted run; give only --resume DIR "
                         f"(and --device), not {' '.join(extra)}")
    if not (folder / RUN).is_file() or not (folder / STATE).is_file():
        raise FileNotFoundError(f"{folder} holds no interrupted run to resume (no {RUN} and {STATE}); "
                                f"a run that finished has removed them")
    try:
        saved = json.loads((folder / RUN).read_text(encoding="utf-8"))["arguments"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{folder / RUN} is damaged ({error}): start the run again without --resume") from None
    resumed = argparse.Namespace(**saved)
    resumed.text = Path(saved["text"]) if saved["text"] else None
    resumed.out, resumed.resume, resumed.device = folder, folder, args.device
    return resumed


def main(argv: list[str] | None = None) -> int:
    """``python -m fmcourse.pretrain``: check everything, train (resumably), write the checkpoint and samples."""
    parser = _parser()
    distributed.silence_other_ranks()  # under torchrun only rank 0 logs
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    try:
        if args.resume is not None:
            args = _resumed_arguments(parser, args, argv)
        elif args.out is None:
            raise ValueError("--out DIR is required: the folder for the checkpoint and samples")
        _check_sampling(args)
        settings = Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})
        check_output_folder(args.out)
        if args.resume is None and (args.out / STATE).exists():
            raise ValueError(f"{args.out} holds an interrupted run ({STATE}): continue it with "
                             f"`python -m fmcourse.pretrain --resume {args.out}`, or give another --out "
                             f"(or delete {args.out / STATE} to start over there)")
        device = env.get_device(args.device)
        text = pydoc_text() if args.pydoc else read_text(args.text)
        source = "pydoc_data.topics" if args.pydoc else args.text.name
        if args.resume is not None and _text_sha256(text) != args.text_sha256:
            raise ValueError(f"the text of {source} changed since the interrupted run: resuming needs the same text")
        print(f"{source}: {len(text):,} characters; training a {'GPT' if settings.objective == 'causal' else 'encoder'} "
              f"({settings.n_layer} layers, width {settings.d_model}, context {settings.context_length}) "
              + (f"for {minutes:g} minutes" if (minutes := getattr(args, "minutes", None)) else f"for {settings.steps} steps"),
              flush=True)
        if minutes is None and 2 * settings.warmup_steps > settings.steps:
            print(f"note: the learning-rate warm-up ({settings.warmup_steps} steps) fills more than half of the "
                  f"run ({settings.steps} steps), so the rate stays low for most of it; give --warmup-steps "
                  f"about a tenth of --steps", flush=True)
        if settings.tokenizer == "char" and (unseen := sorted(set(args.prompt) - set(clean_text(text)))):
            raise ValueError(f"the prompt has characters that the text never uses: {''.join(unseen)!r}")
        corpus = prepare_for(text, settings)
        if settings.objective == "causal":
            encode_prompt(corpus.tokenizer, args.prompt)  # a character seen in validation only fails here
        if not distributed.is_main():
            pass  # under torchrun only rank 0 writes files
        elif args.resume is None:
            args.out.mkdir(parents=True, exist_ok=True)
            arguments = {key: (str(value.absolute()) if isinstance(value, Path) else value)
                         for key, value in vars(args).items() if key not in ("out", "resume", "device")}
            arguments["text_sha256"] = _text_sha256(text)
            with atomic_path(args.out / RUN) as tmp:
                tmp.write_text(json.dumps({"arguments": arguments}, indent=2, ensure_ascii=False), encoding="utf-8")
        else:
            print(f"resuming the run in {args.out}", flush=True)
        result = pretrain(text, settings, device=device, plot=False, corpus=corpus, checkpoint=args.out / STATE,
                          checkpoint_every=args.checkpoint_every, resume=args.resume is not None, minutes=minutes)
    except KeyboardInterrupt:
        state = args.out / STATE if args.out is not None else None
        if state is None or not state.is_file():
            print("\ninterrupted before any training state was saved", file=sys.stderr, flush=True)
            return 130
        where = f"the last saved state is {state} ({_steps_done(state)} of {args.steps} steps)"
        print(f"\ninterrupted: {where}; continue with\n  python -m fmcourse.pretrain --resume {args.out}",
              file=sys.stderr, flush=True)
        return 130
    except (ValueError, OSError, RuntimeError, FloatingPointError) as error:
        state = args.out / STATE if args.out is not None else None
        if state is not None and state.is_file() and not isinstance(error, FloatingPointError):
            error = f"{error}\nthe last saved state is {state} ({_steps_done(state)} of {args.steps} steps); " \
                    f"continue with\n  python -m fmcourse.pretrain --resume {args.out}"
        parser.exit(2, f"{parser.prog}: error: {error}\n")  # a clear message and exit status 2, no traceback
    if not distributed.is_main():  # the other processes of a torchrun launch are done
        distributed.close()
        return 0
    summary = result.summary()
    history = result.history
    for step, loss in zip(history.val_steps, history.val_loss):
        print(f"step {step + 1:>6}  validation loss {loss:.3f}")
    print(f"done in {history.seconds:.0f} s: validation loss {result.val_loss:.3f} nats/token, unigram baseline "
          f"{result.unigram:.3f}" + (f", perplexity {summary['perplexity']:.2f}" if "perplexity" in summary else ""))

    summary["source"] = source
    checkpoints.save(result.model, args.out, tokenizer=result.tokenizer, metadata=summary)
    if settings.objective == "causal":
        samples = [sample(result.model, result.tokenizer, args.prompt, args.sample_length,
                          temperature=args.temperature, seed=settings.seed + k) for k in range(args.samples)]
        header = f"{args.samples} samples at temperature {args.temperature}, prompt {args.prompt!r}\n"
    else:
        samples = _masked_examples(result, args.samples)
        header = "fill-in-the-blank on validation text: each _ is predicted from both sides\n"
    with atomic_path(args.out / "samples.txt") as tmp:
        tmp.write_text(header + "".join(f"\n--- {k + 1} ---\n{s}\n" for k, s in enumerate(samples)), encoding="utf-8")
    for name in (STATE, RUN):  # the run is complete: nothing left to resume
        (args.out / name).unlink(missing_ok=True)
    print(f"wrote {args.out / checkpoints.WEIGHTS}, {args.out / checkpoints.MANIFEST} and {args.out / 'samples.txt'}")
    print(samples[0] if samples else "")
    distributed.close()
    return 0


def _steps_done(state: Path) -> int | str:
    try:
        return torch.load(state, map_location="cpu", weights_only=True)["done"]
    except Exception:
        return "?"


def _masked_examples(result: Pretrained, count: int, blanks: int = 4) -> list[str]:
    """Lines of validation text with a few characters blanked, the encoder's fill-in, and the truth."""
    tok, length = result.tokenizer, min(result.settings.context_length, 60)
    lines = [line for line in tok.decode(result.corpus.val.tolist()).split("\n")
             if len(line) >= length and "_" not in line and not _unseen(tok, line)]
    out, g = [], torch.Generator().manual_seed(result.settings.seed)
    for line in lines[:: max(1, len(lines) // max(count, 1))][:count]:
        text = line[:length]
        spots = sorted(torch.randperm(len(text), generator=g)[:blanks].tolist())
        blanked = "".join("_" if i in spots else c for i, c in enumerate(text))
        filled = fill_in(result.model, tok, blanked)[0].replace("\n", "⏎")  # a predicted newline, shown in line
        out.append(f"masked:    {blanked}\npredicted: {filled}\ntruth:     {text}\n")
    return out


if __name__ == "__main__":
    sys.exit(main())
