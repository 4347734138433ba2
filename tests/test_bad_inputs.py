"""A catalogue of bad inputs, each with the answer it must get.

Every case gives the package something a student could plausibly get wrong and checks one of two
outcomes:

- a *clear error*: the exception type expected and words of its message that name the problem
  (and, where files are involved, that nothing already on disk was lost);
- a *documented behaviour*: the input is legitimate but easy to misread, and the case checks the
  behaviour the docstring promises.

``python bench/reliability.py`` runs the same catalogue and writes the table of outcomes to
``bench/results/reliability.md``.
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmcourse import (audio, boxes, checkpoints, compress, decoding, distributed, exercises, fairness, finetune, interpret,
                      metrics, models, objectives, pretrain, privacy, scaling, tokenizers, train)
from fmcourse import data as fdata
from fmcourse import nn as fnn
from fmcourse.data.recsys import ShopWorld, leave_last_out
from fmcourse.models.recommender import ItemBigram, MatrixFactorization, next_item_scores, popularity_scores
from fmcourse.data import speech
from fmcourse.models import GPT, GPTConfig, RecognizerConfig, SpeechRecognizer, SpeechSynthesizer, SynthesizerConfig


@dataclass
class Case:
    area: str
    name: str
    run: Callable[[Path], object]  # called with an empty temporary folder
    error: type[BaseException] | None = None  # None: a documented behaviour, checked inside ``run``
    match: str = ""  # a regular expression the error message must contain
    after: Callable[[Path], None] | None = None  # checks after the error (nothing on disk lost)

    @property
    def id(self) -> str:
        return f"{self.area}: {self.name}"


def outcome(case: Case) -> tuple[str, str]:
    """``("clear error" | "documented behaviour" | "FAILED", detail)`` for one case."""
    with tempfile.TemporaryDirectory(prefix="tmp") as folder:
        tmp = Path(folder)
        try:
            case.run(tmp)
        except BaseException as error:  # noqa: BLE001 - a case must never take the runner down
            if isinstance(error, KeyboardInterrupt):
                raise
            if case.error is None:
                return "FAILED", f"raised {type(error).__name__}: {error}"
            if not isinstance(error, case.error):
                return "FAILED", f"raised {type(error).__name__} ({error}), expected {case.error.__name__}"
            if not re.search(case.match, str(error)):
                return "FAILED", f"message {str(error)!r} does not say {case.match!r}"
            if case.after is not None:
                try:
                    case.after(tmp)
                except BaseException as lost:  # noqa: BLE001
                    return "FAILED", f"after the error: {type(lost).__name__}: {lost}"
            return "clear error", f"{type(error).__name__}: {error}"
        if case.error is not None:
            return "FAILED", f"no error, expected {case.error.__name__}"
        return "documented behaviour", ""


def outcome_text(case: Case) -> tuple[str, str]:
    """``outcome``, with the temporary folder's path written as <tmp> (a table that does not change)."""
    result, detail = outcome(case)
    return result, re.sub(r"/\S*/tmp\w{8}", "<tmp>", detail)


# --- helpers ---------------------------------------------------------------------------------------

def tiny_gpt(seed: int = 0, vocab_size: int = 12, n_head: int = 2) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, context_length=8, n_layer=1, n_head=n_head, d_model=16))


def char_tok(chars: str = "abcdefghijkl") -> tokenizers.CharTokenizer:
    return tokenizers.CharTokenizer(chars)


def saved(tmp: Path, seed: int = 0) -> Path:
    """A checkpoint of a tiny GPT with its tokenizer in ``tmp / 'ckpt'``."""
    return checkpoints.save(tiny_gpt(seed), tmp / "ckpt", tokenizer=char_tok())


def loads_as(folder: Path, seed: int) -> None:
    """The checkpoint in ``folder`` loads, and holds the weights of ``tiny_gpt(seed)``."""
    model, tok = checkpoints.load(folder, GPT)
    assert torch.equal(model.token_embedding.weight, tiny_gpt(seed).token_embedding.weight)
    assert tok.chars == char_tok().chars


def edit_manifest(folder: Path, change: Callable[[dict], None]) -> None:
    manifest = json.loads((folder / checkpoints.MANIFEST).read_text(encoding="utf-8"))
    change(manifest)
    (folder / checkpoints.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


class CommandFailed(Exception):
    """``python -m fmcourse.pretrain`` stopped with a non-zero status; the message is its stderr."""


TEXT = "".join(f"the cat {w} on the mat, and the dog {w} by the door.\n\n"
               for w in ("sat", "ran", "lay", "slept", "stood", "waited", "sang", "ate") * 30)
FAST = ["--steps", "4", "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context-length", "16",
        "--batch-size", "4", "--eval-batches", "1", "--evaluations", "2", "--warmup-steps", "1",
        "--samples", "1", "--sample-length", "5"]


def command(*argv: str) -> str:
    """Run the command quietly; its stdout, or ``CommandFailed`` with its stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = pretrain.main(list(argv))
        except SystemExit as stop:
            code = stop.code
    if code != 0:
        raise CommandFailed(f"exit status {code}: {err.getvalue()}")
    return out.getvalue()


def text_file(tmp: Path) -> Path:
    path = tmp / "notes.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def untrained(tmp: Path) -> None:
    """Nothing was trained or written: no checkpoint appeared in ``tmp``."""
    assert not list(tmp.rglob(checkpoints.MANIFEST)) and not list(tmp.rglob(pretrain.STATE))


def regression_batches(n: int = 4) -> list:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n * 8, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    return [(x[i:i + 8], y[i:i + 8]) for i in range(0, n * 8, 8)]


MSE = train.supervised(F.mse_loss)


class Linear3(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 1)

    def forward(self, x):
        return self.layer(x).squeeze(-1)


def fit_quietly(model=None, data=None, **kwargs):
    kwargs.setdefault("steps", 4)
    return train.fit(model or Linear3(), regression_batches() if data is None else data, MSE, plot=False,
                     progress=False, device="cpu", **kwargs)


# --- trust: attribution, fairness, privacy ----------------------------------------------------------

def classifier3() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3))


WORD_VECTORS = {w: torch.randn(3, generator=torch.Generator().manual_seed(i)) for i, w in enumerate("abcdefgh")}


class _UnkTokenizer:
    unk_token_id = 100

    def __call__(self, word, add_special_tokens=False):
        return {"input_ids": [100] if not word.isascii() else [7]}


class _WordEncoder:
    tokenizer = _UnkTokenizer()

    def encode(self, words, **kwargs):
        return torch.ones(len(words), 2)


def one_dp_step(clip_norm: float) -> None:
    privacy.dp_sgd(classifier3(), torch.zeros(4, 4), torch.zeros(4, dtype=torch.long), clip_norm=clip_norm,
                   noise_multiplier=1.0, sample_rate=0.5, steps=1, lr=0.1)


def exposure_of_an_unseen_secret_is_small(tmp):
    log_probs = torch.randn(10_000, generator=torch.Generator().manual_seed(0))
    values = [privacy.exposure_from_log_probs(log_probs, i) for i in range(0, 10_000, 97)]
    assert sum(values) / len(values) < 3 < math.log2(10_000)


def equal_lists_of_known_words_run(tmp):
    result = fairness.association_test(["a", "b"], ["c", "d"], ["e", "f"], ["g", "h"], WORD_VECTORS)
    assert result.exact and 0 < result.p_value <= 1


# --- the documented behaviours, as functions that assert --------------------------------------------

def classes_last_when_c_equals_t(tmp):
    x, y = torch.randn(2, 5, 5), torch.randint(0, 5, (2, 5))
    assert torch.allclose(objectives.cross_entropy(x, y, class_dim=1), F.cross_entropy(x, y))
    assert torch.allclose(objectives.cross_entropy(x, y), F.cross_entropy(x.movedim(-1, 1), y))


def probabilities_with_class_dim(tmp):
    x, q = torch.randn(2, 4, 3), torch.randn(2, 4, 3).softmax(1)
    assert torch.allclose(objectives.cross_entropy(x, q, class_dim=1), F.cross_entropy(x, q))


def fit_twice_keeps_the_peak(tmp):
    model = Linear3()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    first = fit_quietly(model, optimizer=optimizer, steps=6)
    second = fit_quietly(model, optimizer=optimizer, steps=6)
    assert first.lr == second.lr and optimizer.param_groups[0]["lr"] == 0.1


def old_manifest_without_checksum_loads(tmp):
    folder = saved(tmp)
    edit_manifest(folder, lambda m: m.pop("manifest_sha256"))
    loads_as(folder, 0)


def metadata_may_be_edited(tmp):
    folder = saved(tmp)
    edit_manifest(folder, lambda m: m["metadata"].update(note="my first run"))
    loads_as(folder, 0)
    assert checkpoints.read_manifest(folder)["metadata"]["note"] == "my first run"


def save_killed_before_commit(tmp):
    folder = saved(tmp, seed=0)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    original = checkpoints.os.replace
    checkpoints.os.replace = broken
    try:
        with pytest.raises(OSError, match="disk full"):
            checkpoints.save(tiny_gpt(1), folder, tokenizer=char_tok())
    finally:
        checkpoints.os.replace = original
    loads_as(folder, 0)
    assert sorted(p.name for p in folder.iterdir()) == [checkpoints.MANIFEST, checkpoints.WEIGHTS]


def zero_d_tensor_and_numpy_answers(tmp):
    exercise = exercises.Exercise("a number", lambda a: exercises.number_problem("a", a, 2.5), "", 2.5, 3.0, "")
    for answer in (2.5, np.float32(2.5), np.array(2.5), np.array([2.5]), torch.tensor(2.5), torch.tensor([2.5])):
        assert exercise.passes(answer), answer


def number_for_a_one_element_tensor(tmp):
    expected = torch.tensor(0.75)
    for answer in (0.75, np.float64(0.75), np.array(0.75), torch.tensor(0.75, dtype=torch.float64)):
        assert exercises.tensor_problem("p", answer, expected) is None


def endless_loop_is_stopped(tmp):
    def forever(x):
        while True:
            x += 1

    exercise = exercises.Exercise("loop", lambda f: exercises.number_problem("f(1)", f(1), 2.0), "", None, None, "",
                                  time_limit=0.5)
    start = time.perf_counter()
    message = exercise.problem(forever)
    assert "was stopped" in message and "loop that never ends" in message, message
    assert time.perf_counter() - start < 5


def endless_loop_in_a_thread_is_abandoned(tmp):
    result = {}

    def check():
        try:
            exercises.run_with_time_limit(time.sleep, 3, seconds=0.3)
            result["message"] = "no timeout"
        except TimeoutError as error:
            result["message"] = str(error)

    worker = threading.Thread(target=check)  # no timer signals outside the main thread
    worker.start()
    worker.join(5)
    assert "was stopped" in result["message"], result


def string_as_a_value_answer(tmp):
    exercise = exercises.Exercise("n", lambda a: exercises.number_problem("a", a, 1.0), "", 1.0, 2.0, "")
    assert "should be a number, got str" in exercise.problem("one")


def sample_with_its_own_tokenizer(tmp):
    model, tok = checkpoints.load(saved(tmp), GPT)
    assert pretrain.sample(model, tok, "abc", 5, seed=0) == pretrain.sample(model, tok, "abc", 5, seed=0)


def failed_command_keeps_the_previous_checkpoint(tmp):
    folder = saved(tmp)
    with pytest.raises(CommandFailed, match="temperature"):
        command("--text", str(text_file(tmp)), "--out", str(folder), "--temperature", "-1", *FAST)
    loads_as(folder, 0)


def first_purchase_law(tmp):
    world = ShopWorld.generate(n_users=3, length=4, seed=0)
    first = world.next_item_probabilities(world.tastes, torch.tensor([-1, -1, -1]))
    _check(torch.allclose(first, world.next_item_probabilities(world.tastes)))
    _check(torch.allclose(first, world.tastes @ world.taste_matrix()))


def accuracy_of_labels_in_numpy(tmp):
    assert metrics.accuracy(np.array([0, 1, 1]), np.array([0, 1, 0])) == pytest.approx(2 / 3)


def fit_steps_as_numpy_int(tmp):
    assert len(fit_quietly(steps=np.int64(3)).steps) == 3


def tiny_recognizer() -> SpeechRecognizer:
    torch.manual_seed(0)
    return SpeechRecognizer(RecognizerConfig(d_model=16, n_head=2, n_layer=1))


def speech_library_missing(tmp):
    """eSpeak NG's package not importable: the error names the extra to install."""
    import sys

    saved_instance, saved_module = speech._INSTANCE, sys.modules.get("espeakng_loader")
    speech._INSTANCE, sys.modules["espeakng_loader"] = None, None
    try:
        speech.synthesize("go")
    finally:
        speech._INSTANCE = saved_instance
        if saved_module is None:
            sys.modules.pop("espeakng_loader", None)
        else:
            sys.modules["espeakng_loader"] = saved_module


# --- the catalogue -----------------------------------------------------------------------------------

CASES: list[Case] = [
    # data
    Case("data", "read_text of a missing file", lambda t: fdata.read_text(t / "nope.txt"), FileNotFoundError,
         "no text file"),
    Case("data", "read_text of a folder", lambda t: fdata.read_text(t), ValueError, "is not a file"),
    Case("data", "read_text of a binary file",
         lambda t: (t.joinpath("x.bin").write_bytes(b"\x89PNG\x00\x00"), fdata.read_text(t / "x.bin")),
         ValueError, "looks binary"),
    Case("data", "read_text of Latin-1 bytes",
         lambda t: (t.joinpath("x.txt").write_bytes(b"caf\xe9"), fdata.read_text(t / "x.txt")),
         ValueError, "is not UTF-8"),
    Case("data", "read_text of whitespace only",
         lambda t: (t.joinpath("x.txt").write_text(" \n\n"), fdata.read_text(t / "x.txt")), ValueError, "is empty"),
    Case("data", "train_val_split with val_fraction 1.5", lambda t: fdata.train_val_split("a\n\nb\n\nc", 1.5),
         ValueError, "val_fraction"),
    Case("data", "causal_lm_batches on a stream shorter than a window",
         lambda t: fdata.causal_lm_batches(torch.arange(5), 2, 8), ValueError, r"tokens|long|short"),
    Case("data", "causal_lm_batches with batch_size 0", lambda t: fdata.causal_lm_batches(torch.arange(50), 0, 8),
         ValueError, "batch_size"),
    Case("data", "causal_lm_batches of float tokens",
         lambda t: fdata.causal_lm_batches(torch.rand(50), 2, 8), (TypeError, ValueError), r"int|token"),
    Case("data", "mask_tokens with probability 2",
         lambda t: fdata.mask_tokens(torch.arange(10).view(1, 10), vocab_size=12, mask_id=11, probability=2.0),
         ValueError, "probability"),
    Case("data", "a Markov chain whose rows do not sum to 1",
         lambda t: fdata.MarkovChain(torch.full((3, 3), 0.5)), ValueError, r"sum"),
    Case("data", "clean_text of bytes", lambda t: fdata.clean_text(b"abc"), TypeError, "str"),
    Case("data", "fetch of a name the registry lacks", lambda t: fdata.fetch("no-such-corpus", cache=t),
         (KeyError, ValueError), "no-such-corpus"),
    # tokenizers
    Case("tokenizers", "encode a character the tokenizer never saw", lambda t: char_tok("abc").encode("abz"),
         ValueError, "'z'"),
    Case("tokenizers", "decode an id outside the vocabulary", lambda t: char_tok("abc").decode([0, 7]),
         ValueError, r"0\.\.2"),
    Case("tokenizers", "encode a number", lambda t: char_tok("abc").encode(12), TypeError, "str"),
    Case("tokenizers", "decode float ids", lambda t: char_tok("abc").decode(torch.tensor([0.0, 1.0])),
         (TypeError, ValueError), r"int"),
    Case("tokenizers", "BPE with a vocabulary smaller than its 256 bytes",
         lambda t: tokenizers.BPETokenizer.train("hello world", 100), ValueError, "256"),
    Case("tokenizers", "a tokenizer dict of unknown type",
         lambda t: tokenizers.tokenizer_from_dict({"type": "wordpiece"}), ValueError, "wordpiece"),
    Case("tokenizers", "load_tokenizer of a missing file", lambda t: tokenizers.load_tokenizer(t / "tok.json"),
         FileNotFoundError, "no tokenizer file at .*tok.json"),
    Case("tokenizers", "a character tokenizer with repeated characters",
         lambda t: tokenizers.CharTokenizer("abca"), ValueError, "distinct"),
    # objectives
    Case("objectives", "cross_entropy of integer logits",
         lambda t: objectives.cross_entropy(torch.ones(2, 3, dtype=torch.long), torch.tensor([0, 1])),
         TypeError, "floating"),
    Case("objectives", "cross_entropy with a target out of range",
         lambda t: objectives.cross_entropy(torch.randn(2, 3), torch.tensor([0, 3])), ValueError, r"class index 3"),
    Case("objectives", "cross_entropy in torch's (B, C, T) layout with C != T",
         lambda t: objectives.cross_entropy(torch.randn(2, 5, 7), torch.randint(0, 5, (2, 7))), ValueError,
         "class_dim=1"),
    Case("objectives", "cross_entropy (B, C, T) with C == T: classes last, or class_dim=1 as torch",
         classes_last_when_c_equals_t),
    Case("objectives", "cross_entropy with probability targets in torch's layout", probabilities_with_class_dim),
    Case("objectives", "cross_entropy with class_dim outside the logits",
         lambda t: objectives.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), class_dim=2), ValueError,
         "class_dim"),
    Case("objectives", "cross_entropy with float class indices",
         lambda t: objectives.cross_entropy(torch.randn(2, 3), torch.tensor([0.0, 1.0])), TypeError, "integer"),
    Case("objectives", "label_smoothing 2", lambda t: objectives.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]),
                                                                              label_smoothing=2.0),
         ValueError, "label_smoothing"),
    Case("objectives", "an unknown reduction",
         lambda t: objectives.mse(torch.zeros(3), torch.zeros(3), reduction="avg"), ValueError, "reduction"),
    Case("objectives", "mse of shapes that would broadcast", lambda t: objectives.mse(torch.zeros(3, 1), torch.zeros(3)),
         ValueError, r"shape"),
    Case("objectives", "info_nce with different batch sizes",
         lambda t: objectives.info_nce(torch.randn(4, 8), torch.randn(5, 8)), ValueError, "batch size"),
    Case("objectives", "info_nce with temperature 0",
         lambda t: objectives.info_nce(torch.randn(4, 8), torch.randn(4, 8), temperature=0.0), ValueError,
         "temperature"),
    # metrics
    Case("metrics", "accuracy of nan scores",
         lambda t: metrics.accuracy(torch.tensor([[0.1, float("nan")], [0.3, 0.2]]), torch.tensor([0, 1])),
         ValueError, "nan"),
    Case("metrics", "accuracy with float targets",
         lambda t: metrics.accuracy(torch.tensor([0, 1]), torch.tensor([0.0, 1.0])), TypeError, "targets"),
    Case("metrics", "accuracy of scores that do not fit the targets",
         lambda t: metrics.accuracy(torch.randn(4, 3), torch.tensor([0, 1])), ValueError, r"do not fit"),
    Case("metrics", "accuracy of nothing", lambda t: metrics.accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)),
         ValueError, "no examples"),
    Case("metrics", "accuracy with a target beyond the score columns",
         lambda t: metrics.accuracy(torch.randn(2, 3), torch.tensor([0, 5])), ValueError, r"targets"),
    Case("metrics", "accuracy of NumPy labels", accuracy_of_labels_in_numpy),
    Case("metrics", "confusion_matrix with num_classes 0",
         lambda t: metrics.confusion_matrix(torch.tensor([0]), torch.tensor([0]), num_classes=0), ValueError,
         "num_classes"),
    # nn
    Case("nn", "attention heads that do not divide the width", lambda t: fnn.MultiHeadAttention(10, 3), ValueError,
         r"divisible|divide"),
    Case("nn", "a mask of the wrong shape",
         lambda t: fnn.attention(torch.randn(1, 4, 8), torch.randn(1, 4, 8), torch.randn(1, 4, 8),
                                 mask=torch.ones(5, 5, dtype=torch.bool)), ValueError, "mask"),
    Case("nn", "LoRA of rank 0", lambda t: fnn.LoRALinear(nn.Linear(4, 4), rank=0), ValueError, "rank"),
    Case("nn", "multi-head attention on inputs of another width",
         lambda t: fnn.MultiHeadAttention(8, 2)(torch.randn(1, 3, 6)), ValueError, r"8|width|d_model"),
    Case("nn", "sinusoidal positions of odd width", lambda t: fnn.sinusoidal_positions(4, 7), ValueError, r"even|dim"),
    # models
    Case("models", "a GPT given ids beyond its vocabulary", lambda t: tiny_gpt()(torch.tensor([[1, 12]])), ValueError,
         r"vocab|0\.\.11"),
    Case("models", "a GPT given more tokens than its context", lambda t: tiny_gpt()(torch.zeros(1, 9, dtype=torch.long)),
         ValueError, "context"),
    Case("models", "a GPT given float ids", lambda t: tiny_gpt()(torch.zeros(1, 3)), TypeError, r"int|dtype"),
    Case("models", "a GPT with n_head not dividing d_model",
         lambda t: GPT(GPTConfig(vocab_size=5, context_length=4, n_head=3, d_model=16)), ValueError,
         "not divisible by n_head=3"),
    Case("models", "a GPT config with a negative size", lambda t: GPTConfig(vocab_size=-1, context_length=4),
         ValueError, "vocab_size"),
    Case("models", "generate with a negative temperature",
         lambda t: tiny_gpt().generate(torch.zeros(1, 2, dtype=torch.long), 3, temperature=-1.0), ValueError,
         "temperature"),
    # train
    Case("train", "fit for 2.5 steps", lambda t: fit_quietly(steps=2.5), TypeError, "whole number"),
    Case("train", "fit for 0 steps", lambda t: fit_quietly(steps=0), ValueError, "at least 1"),
    Case("train", "fit with both steps and epochs", lambda t: fit_quietly(epochs=1), ValueError, "exactly one"),
    Case("train", "fit with lr nan", lambda t: fit_quietly(lr=float("nan")), ValueError, "lr"),
    Case("train", "fit for epochs of a batch function", lambda t: fit_quietly(data=lambda: regression_batches()[0],
                                                                             steps=None, epochs=1),
         ValueError, "epochs"),
    Case("train", "fit on no data", lambda t: fit_quietly(data=[]), ValueError, "no batches"),
    Case("train", "fit on something that is not data", lambda t: fit_quietly(data=42), TypeError, "train_data"),
    Case("train", "fit on data with an infinite value",
         lambda t: fit_quietly(data=[(torch.full((4, 3), float("inf")), torch.zeros(4))]), FloatingPointError,
         "loss became"),
    Case("train", "fit twice with one optimizer starts from the same peak", fit_twice_keeps_the_peak),
    Case("train", "fit with steps as a NumPy integer", fit_steps_as_numpy_int),
    Case("train", "resume without a checkpoint path", lambda t: fit_quietly(resume=True), ValueError, "checkpoint="),
    Case("train", "resume from a missing state", lambda t: fit_quietly(checkpoint=t / "s.pt", resume=True),
         FileNotFoundError, "no training state"),
    Case("train", "resume with other steps than the saved run",
         lambda t: (fit_quietly(checkpoint=t / "s.pt", steps=4), fit_quietly(checkpoint=t / "s.pt", steps=6,
                                                                             resume=True)),
         ValueError, "4 steps, not 6"),
    Case("train", "a checkpoint path that is a folder", lambda t: fit_quietly(checkpoint=t), IsADirectoryError,
         "folder"),
    Case("train", "resume from a file that is not a training state",
         lambda t: (t.joinpath("s.pt").write_text("hello"), fit_quietly(checkpoint=t / "s.pt", resume=True)),
         ValueError, "not a training state"),
    Case("train", "a batch that is a dict", lambda t: fit_quietly(data=[{"x": torch.zeros(2)}]), TypeError,
         "tensor or a tuple"),
    # checkpoints
    Case("checkpoints", "save a model without a config", lambda t: checkpoints.save(nn.Linear(2, 2), t / "c"),
         TypeError, "dataclass instance"),
    Case("checkpoints", "save onto a file",
         lambda t: (t.joinpath("c").write_text("keep me"), checkpoints.save(tiny_gpt(), t / "c")),
         NotADirectoryError, "is a file", after=lambda t: _check(t.joinpath("c").read_text() == "keep me")),
    Case("checkpoints", "load from a folder without a checkpoint", lambda t: checkpoints.load(t, GPT),
         FileNotFoundError, "no checkpoint"),
    Case("checkpoints", "load after n_head was edited in checkpoint.json",
         lambda t: (edit_manifest(saved(t), lambda m: m["config"].update(n_head=4)),
                    checkpoints.load(t / "ckpt", GPT)), ValueError, "was edited after it was saved"),
    Case("checkpoints", "load after the tokenizer's alphabet was reordered",
         lambda t: (edit_manifest(saved(t), lambda m: m["tokenizer"]["chars"].reverse()),
                    checkpoints.load(t / "ckpt", GPT)), ValueError, "was edited after it was saved"),
    Case("checkpoints", "load as another architecture",
         lambda t: checkpoints.load(saved(t), __import__("fmcourse.models", fromlist=["Encoder"]).Encoder),
         ValueError, "load it with GPT"),
    Case("checkpoints", "load a truncated checkpoint.json",
         lambda t: (saved(t), (t / "ckpt" / checkpoints.MANIFEST).write_text('{"format": 1, "arch'),
                    checkpoints.load(t / "ckpt", GPT)), ValueError, "not valid JSON"),
    Case("checkpoints", "load with the weights of another save",
         lambda t: (saved(t, 0), checkpoints.save(tiny_gpt(1), t / "other"),
                    (t / "other" / checkpoints.WEIGHTS).replace(t / "ckpt" / checkpoints.WEIGHTS),
                    checkpoints.load(t / "ckpt", GPT)), ValueError, "sha256 differs"),
    Case("checkpoints", "load with the weights file deleted",
         lambda t: ((saved(t) / checkpoints.WEIGHTS).unlink(), checkpoints.load(t / "ckpt", GPT)),
         FileNotFoundError, "no model.safetensors"),
    Case("checkpoints", "save metadata JSON cannot hold, over a checkpoint",
         lambda t: (saved(t), checkpoints.save(tiny_gpt(1), t / "ckpt", metadata={"when": object()})), TypeError,
         "metadata must hold JSON values", after=lambda t: loads_as(t / "ckpt", 0)),
    Case("checkpoints", "a save killed before its commit keeps the previous checkpoint", save_killed_before_commit),
    Case("checkpoints", "a manifest written before checksums loads", old_manifest_without_checksum_loads),
    Case("checkpoints", "the metadata of checkpoint.json may be edited", metadata_may_be_edited),
    # finetune
    Case("finetune", "a linear probe with fewer labels than features",
         lambda t: finetune.linear_probe(torch.randn(10, 4), torch.randint(0, 2, (9,))), ValueError, r"10|9"),
    Case("finetune", "a stratified subset of fraction 0", lambda t: finetune.stratified_subset(torch.arange(10) % 2, 0.0),
         ValueError, "fraction"),
    Case("finetune", "LoRA of rank 0 on a model", lambda t: finetune.add_lora(tiny_gpt(), rank=0), ValueError, "rank"),
    Case("finetune", "a classifier for 0 classes", lambda t: finetune.Classifier(nn.Linear(4, 4), 0, dim=4),
         ValueError, "num_classes|classes"),
    Case("finetune", "k nearest neighbours with k larger than the training set",
         lambda t: finetune.knn_predict(torch.randn(3, 4), torch.tensor([0, 1, 0]), torch.randn(2, 4), k=5),
         ValueError, r"\bk\b"),
    Case("finetune", "freeze something that is not a module", lambda t: finetune.freeze("encoder"), TypeError,
         "Module"),
    # pretrain: the API and the command
    Case("pretrain", "sample with the tokenizer of another model",
         lambda t: pretrain.sample(checkpoints.load(saved(t), GPT)[0], char_tok("lkjihgfedcba"), "abc", 5),
         ValueError, "not the one this model was trained with"),
    Case("pretrain", "sample with a tokenizer of another size",
         lambda t: pretrain.sample(tiny_gpt(), char_tok("abc"), "abc", 5), ValueError, "3 tokens but the model has 12"),
    Case("pretrain", "sample of negative length",
         lambda t: pretrain.sample(tiny_gpt(), char_tok(), "abc", -1), ValueError, "length"),
    Case("pretrain", "sample with its own tokenizer is seeded", sample_with_its_own_tokenizer),
    Case("pretrain", "command: --out is an existing file",
         lambda t: (t.joinpath("out").write_text("keep me"),
                    command("--text", str(text_file(t)), "--out", str(t / "out"), *FAST)),
         CommandFailed, "is a file, not a folder",
         after=lambda t: (_check(t.joinpath("out").read_text() == "keep me"), untrained(t))),
    Case("pretrain", "command: --out below a file",
         lambda t: (t.joinpath("f").write_text("x"), command("--text", str(text_file(t)), "--out", str(t / "f" / "run"),
                                                             *FAST)),
         CommandFailed, "cannot be created", after=untrained),
    Case("pretrain", "command: --samples -1",
         lambda t: command("--text", str(text_file(t)), "--out", str(t / "run"), *FAST, "--samples", "-1"),
         CommandFailed, "--samples", after=lambda t: _check(not (t / "run").exists())),
    Case("pretrain", "command: --sample-length 0",
         lambda t: command("--text", str(text_file(t)), "--out", str(t / "run"), *FAST, "--sample-length", "0"),
         CommandFailed, "--sample-length", after=lambda t: _check(not (t / "run").exists())),
    Case("pretrain", "command: --temperature nan",
         lambda t: command("--text", str(text_file(t)), "--out", str(t / "run"), *FAST, "--temperature", "nan"),
         CommandFailed, "--temperature", after=lambda t: _check(not (t / "run").exists())),
    Case("pretrain", "command: a prompt with a character the text lacks",
         lambda t: command("--text", str(text_file(t)), "--out", str(t / "run"), *FAST, "--prompt", "the Zebra"),
         CommandFailed, "never uses: 'Z'", after=lambda t: _check(not (t / "run").exists())),
    Case("pretrain", "command: --d-model not divisible by --n-head",
         lambda t: command("--text", str(text_file(t)), "--out", str(t / "run"), *FAST, "--d-model", "15"),
         CommandFailed, "divisible", after=lambda t: _check(not (t / "run").exists())),
    Case("pretrain", "command: no --out", lambda t: command("--text", str(text_file(t)), *FAST), CommandFailed,
         "--out DIR is required"),
    Case("pretrain", "command: --resume of a folder with no interrupted run",
         lambda t: command("--resume", str(t)), CommandFailed, "no interrupted run"),
    Case("pretrain", "command: --resume with settings of its own",
         lambda t: command("--resume", str(t), "--steps", "9"), CommandFailed, "only --resume DIR"),
    Case("pretrain", "command: a new run into the folder of an interrupted one",
         lambda t: (t.joinpath(pretrain.STATE).write_bytes(b"state"),
                    command("--text", str(text_file(t)), "--out", str(t), *FAST)),
         CommandFailed, "holds an interrupted run.*--resume",
         after=lambda t: _check(t.joinpath(pretrain.STATE).read_bytes() == b"state")),
    Case("pretrain", "command: a failed run keeps the previous checkpoint in --out",
         failed_command_keeps_the_previous_checkpoint),
    # recommendation: the shop world, ranking metrics, recommenders
    Case("recommendation", "ndcg_at_k with k = 0",
         lambda t: metrics.ndcg_at_k(torch.randn(3, 5), torch.tensor([0, 1, 2]), k=0), ValueError, r"k must be an int in \[1, 5\]"),
    Case("recommendation", "recall_at_k with k larger than the catalogue",
         lambda t: metrics.recall_at_k(torch.randn(3, 5), torch.tensor([0, 1, 2]), k=6), ValueError,
         r"k must be an int in \[1, 5\]"),
    Case("recommendation", "ndcg_at_k of an unknown item id",
         lambda t: metrics.ndcg_at_k(torch.randn(3, 5), torch.tensor([0, 5, 2]), k=2), ValueError, "unknown item id 5"),
    Case("recommendation", "ndcg_at_k with no users",
         lambda t: metrics.ndcg_at_k(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long), k=2), ValueError, "no users"),
    Case("recommendation", "ranking_ceiling of rows not summing to 1",
         lambda t: metrics.ranking_ceiling(torch.ones(2, 4), k=2), ValueError, "summing to 1"),
    Case("recommendation", "matrix factorization of an unknown user",
         lambda t: MatrixFactorization(4, 6)(torch.tensor([0, 4])), ValueError, "unknown user id 4.*fold_in"),
    Case("recommendation", "popularity of an unknown item",
         lambda t: popularity_scores(torch.tensor([[0, 1, 9]]), 6), ValueError, "unknown item id 9"),
    Case("recommendation", "a bigram from empty histories",
         lambda t: ItemBigram(torch.zeros(3, 0, dtype=torch.long), 6), ValueError, "empty"),
    Case("recommendation", "float histories", lambda t: popularity_scores(torch.rand(2, 3), 6), TypeError,
         "integer tensor of item ids"),
    Case("recommendation", "leave_last_out of two purchases per user",
         lambda t: leave_last_out(torch.zeros(5, 2, dtype=torch.long)), ValueError, "at least 3 purchases"),
    Case("recommendation", "next-item scores from a GPT of another vocabulary",
         lambda t: next_item_scores(tiny_gpt(vocab_size=12), torch.tensor([[1, 2]]), 20), ValueError,
         "needs 21"),
    Case("recommendation", "the first purchase's law (no previous item)", first_purchase_law),
    # speech
    Case("speech", "log-mel features of a (batch, channel, samples) waveform",
         lambda t: audio.MelFeatures()(torch.zeros(2, 2, 4000)), ValueError, r"\(samples,\) or \(batch, samples\)"),
    Case("speech", "log-mel features of an empty waveform", lambda t: audio.MelFeatures()(torch.zeros(0)),
         ValueError, "empty"),
    Case("speech", "log-mel features of int16 samples",
         lambda t: audio.MelFeatures()(torch.zeros(4000, dtype=torch.int16)), TypeError, "32768"),
    Case("speech", "16 kHz audio for features built for 11,025 Hz",
         lambda t: audio.MelFeatures()(torch.zeros(4000), sample_rate=16_000), ValueError, "built for 11025 Hz"),
    Case("speech", "a recognizer given 16 kHz audio",
         lambda t: tiny_recognizer().transcribe([torch.zeros(4000)], sample_rate=16_000), ValueError,
         "built for 11025 Hz"),
    Case("speech", "a recognizer given features with the wrong number of mels",
         lambda t: tiny_recognizer()(torch.zeros(1, 20, 64)), ValueError, "n_mels=40"),
    Case("speech", "a synthesizer given a character it has no symbol for",
         lambda t: SpeechSynthesizer(SynthesizerConfig(d_model=16, n_head=2, prenet=16)).synthesize("turn left!"),
         ValueError, "outside the alphabet"),
    Case("speech", "synthesize digits written as numerals", lambda t: speech.synthesize("go 2"), ValueError,
         "numbers as words"),
    Case("speech", "the speech library missing", speech_library_missing, speech.SpeechLibraryError,
         r'pip install "fmcourse\[speech\]"'),
    Case("speech", "error rates of references that are all empty",
         lambda t: metrics.character_error_rate(["a"], [""]), ValueError, "empty"),
    Case("speech", "CTC greedy decoding of a (frames, labels) matrix",
         lambda t: decoding.ctc_greedy(torch.zeros(10, 5)), ValueError, r"\(batch, frames, labels\)"),
    # trust: interpret, fairness, privacy
    Case("interpret", "an attribution target out of range", lambda t: interpret.integrated_gradients(
        classifier3(), torch.randn(2, 4), 3), ValueError, "target class 3 is out of range.*3 outputs"),
    Case("interpret", "a negative attribution target", lambda t: interpret.gradient_times_input(
        classifier3(), torch.randn(2, 4), -1), ValueError, "out of range"),
    Case("interpret", "a float attribution target", lambda t: interpret.gradient_times_input(
        classifier3(), torch.randn(2, 4), torch.tensor([0.0, 1.0])), TypeError, "class indices"),
    Case("interpret", "ablating a head that does not exist",
         lambda t: interpret.ablate_heads(tiny_gpt(), [(0, 5)]).__enter__(), ValueError, "does not exist"),
    Case("fairness", "target word lists of unequal sizes", lambda t: fairness.association_test(
        ["a", "b", "c"], ["d", "e"], ["f", "g"], ["h", "a"], WORD_VECTORS), ValueError, "equal sizes.*X has 3.*Y has 2"),
    Case("fairness", "attribute word lists of unequal sizes", lambda t: fairness.association_test(
        ["a", "b"], ["c", "d"], ["e", "f", "g"], ["h"], WORD_VECTORS), ValueError, "attribute lists must have equal"),
    Case("fairness", "a word with no vector", lambda t: fairness.association_test(
        ["a", "zebra"], ["c", "d"], ["e", "f"], ["g", "h"], WORD_VECTORS), ValueError, "no vector for \\['zebra'\\]"),
    Case("fairness", "a word the encoder cannot embed", lambda t: fairness.encode_words(_WordEncoder(), ["rose", "☃"]),
         ValueError, "cannot embed '☃'"),
    Case("fairness", "an empty word", lambda t: fairness.encode_words(_WordEncoder(), ["rose", ""]),
         ValueError, "non-empty string"),
    Case("fairness", "a single string instead of a word list", lambda t: fairness.association_test(
        "ab", ["c", "d"], ["e", "f"], ["g", "h"], WORD_VECTORS), TypeError, "list of words"),
    Case("fairness", "equal lists of known words run", equal_lists_of_known_words_run),
    Case("privacy", "a target epsilon of 0", lambda t: privacy.noise_for_epsilon(0.0, 0.05, 100, 1e-5),
         ValueError, "target_epsilon must be a positive number"),
    Case("privacy", "a negative target epsilon", lambda t: privacy.noise_for_epsilon(-2.0, 0.05, 100, 1e-5),
         ValueError, "target_epsilon must be a positive number"),
    Case("privacy", "a clipping norm of 0", lambda t: one_dp_step(0.0), ValueError, "clip_norm must be a positive"),
    Case("privacy", "a negative clipping norm", lambda t: privacy.clip_and_noise({"w": torch.zeros(2, 3)}, -1.0, 1.0),
         ValueError, "clip_norm must be a positive"),
    Case("privacy", "a sample rate above 1", lambda t: privacy.epsilon(1.5, 1.0, 10, 1e-5), ValueError, "sample_rate"),
    Case("privacy", "a secret with characters outside the alphabet",
         lambda t: privacy.exposure(tiny_gpt(), char_tok("0123456789ab"), "ab", "12x4"), ValueError, "over the alphabet"),
    Case("privacy", "exposure of a never-seen secret is near zero", exposure_of_an_unseen_secret_is_small),
    # distributed training, scaling laws, compression
    Case("distributed", "a batch that the processes cannot share evenly",
         lambda t: distributed.local_batch_size(32, 3), ValueError, "multiple of 3"),
    Case("distributed", "joining a process group without a launcher",
         lambda t: without_launcher(distributed.init), RuntimeError, "not started by a launcher.*torchrun"),
    Case("distributed", "a time budget under torchrun", lambda t: budget_under_torchrun(t), ValueError,
         "cannot be used under torchrun.*give steps"),
    Case("scaling", "a power law fitted to two points", lambda t: scaling.fit_power_law([1e3, 1e4], [2.0, 1.5]),
         ValueError, "at least 3"),
    Case("scaling", "a power law fitted to a loss of 0",
         lambda t: scaling.fit_power_law([1e3, 1e4, 1e5], [2.0, 1.5, 0.0]), ValueError, "positive"),
    Case("scaling", "memory of ZeRO stage 4", lambda t: scaling.training_memory(1e9, world=8, stage=4), ValueError,
         "stage"),
    Case("compress", "pruning at sparsity 1", lambda t: compress.prune(tiny_gpt(), 1.0), ValueError, r"\[0, 1\)"),
    Case("compress", "pruning at a negative sparsity", lambda t: compress.prune(tiny_gpt(), -0.2), ValueError,
         r"\[0, 1\)"),
    Case("compress", "quantizing something that is not a model", lambda t: compress.quantize("gpt.safetensors"),
         TypeError, "Module"),
    Case("objectives", "distillation with both teacher logits and probabilities",
         lambda t: objectives.distillation_loss(torch.randn(2, 3), torch.randn(2, 3),
                                                teacher_probs=torch.full((2, 3), 1 / 3)), ValueError, "exactly one"),
    # exercises
    Case("exercises", "an endless loop in the student's function is stopped", endless_loop_is_stopped),
    Case("exercises", "an endless loop outside the main thread is abandoned", endless_loop_in_a_thread_is_abandoned),
    Case("exercises", "a value answer as 0-d tensor, NumPy value or float", zero_d_tensor_and_numpy_answers),
    Case("exercises", "a number where a one-element tensor is expected", number_for_a_one_element_tensor),
    Case("exercises", "a string as a value answer is named as such", string_as_a_value_answer),
    Case("exercises", "too few parts for a two-part experiment",
         lambda t: exercises.Exercise("e", lambda a, b: None, "", (1, 2), (1, 3), "", kind="experiment",
                                      parts=2).problem(1), TypeError, "give 2 answer"),
    Case("exercises", "an exercise of unknown kind", lambda t: exercises.Exercise("e", lambda a: None, "", 1, 2, "",
                                                                                 kind="essay"),
         ValueError, "kind"),
    Case("boxes", "a box with x2 < x1", lambda t: boxes.iou(torch.tensor([[4.0, 0, 2, 3]]), torch.zeros(1, 4)),
         ValueError, r"x2 < x1"),
    Case("boxes", "a box with y2 < y1", lambda t: boxes.box_area(torch.tensor([[0.0, 5, 2, 3]])), ValueError, r"y2 < y1"),
    Case("boxes", "boxes of three numbers", lambda t: boxes.iou(torch.zeros(2, 3), torch.zeros(1, 4)), ValueError,
         r"shape \(N, 4\)"),
    Case("boxes", "an NMS threshold above 1", lambda t: boxes.nms(torch.zeros(2, 4), torch.zeros(2), 1.5),
         ValueError, r"iou_threshold must be a number in \[0, 1\]"),
    Case("boxes", "an NMS threshold below 0", lambda t: boxes.nms(torch.zeros(2, 4), torch.zeros(2), -0.1),
         ValueError, r"iou_threshold must be a number in \[0, 1\]"),
    Case("boxes", "a grid that does not divide the image", lambda t: boxes.encode_boxes(torch.zeros(1, 4), 32, 5),
         ValueError, "dividing image_size"),
    Case("models", "a ResNet given images of the wrong size", lambda t: models.ResNet(4)(torch.rand(2, 3, 8, 8)),
         ValueError, r"expected images of shape \(B, 3, 16, 16\)"),
    Case("models", "a detector given one-channel images",
         lambda t: models.GridDetector()(torch.rand(2, 1, 32, 32)), ValueError, r"\(B, 3, 32, 32\)"),
    Case("models", "a detector given integer images",
         lambda t: models.GridDetector()(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)), TypeError, "float tensor"),
    Case("models", "a caption with an unknown word",
         lambda t: models.caption_ids(["a small pink circle at the top left"]), ValueError,
         "outside the shapes world's vocabulary"),
    Case("models", "a caption that is too short to draw", lambda t: models.caption_ids(["a red circle"]),
         ValueError, "8 words"),
    Case("models", "two box centres in one detector cell",
         lambda t: models.detection_targets([torch.tensor([[0.0, 0, 4, 4], [1, 1, 5, 5]])], [torch.tensor([0, 1])],
                                                   32, 4), ValueError, "one cell"),
    Case("data", "detection scenes too crowded to place",
         lambda t: fdata.make_detection_scenes(2, image_size=16, max_objects=3, min_distance=30.0), ValueError,
         "cannot place"),
]


def budget_under_torchrun(tmp: Path) -> None:
    """``pretrain(..., minutes=...)`` in a process that a launcher started (``WORLD_SIZE`` set)."""
    import os

    os.environ["WORLD_SIZE"] = "2"
    try:
        pretrain.pretrain("abcdefgh " * 200, minutes=0.05, plot=False, progress=False)
    finally:
        del os.environ["WORLD_SIZE"]


def without_launcher(function: Callable[[], object]) -> object:
    """Call ``function`` with the variables a launcher (torchrun) sets removed from the environment."""
    import os

    saved = {name: os.environ.pop(name) for name in distributed.LAUNCHER_VARIABLES if name in os.environ}
    try:
        return function()
    finally:
        os.environ.update(saved)


def _check(condition: bool) -> None:
    assert condition


def test_the_catalogue_is_large_and_covers_every_area():
    areas = {case.area for case in CASES}
    assert len(CASES) >= 60
    assert areas >= {"data", "tokenizers", "objectives", "metrics", "nn", "models", "train", "checkpoints",
                     "finetune", "pretrain", "exercises", "recommendation"}
    assert len({case.id for case in CASES}) == len(CASES), "each case has its own name"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case):
    result, detail = outcome(case)
    assert result != "FAILED", detail


def test_the_results_table_is_current():
    """bench/results/reliability.md counts the cases of this catalogue (rerun bench/reliability.py)."""
    table = Path(__file__).parents[1] / "bench" / "results" / "reliability.md"
    text = table.read_text(encoding="utf-8")
    documented = sum(case.error is None for case in CASES)
    assert f"| clear error | {len(CASES) - documented} |" in text
    assert f"| documented behaviour | {documented} |" in text
    assert "| FAILED | 0 |" in text
