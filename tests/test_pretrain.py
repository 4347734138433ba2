"""Pretraining on any text: preparation, baselines, the function, sampling, the command, shipped models."""

import dataclasses
import hashlib
import math
import re
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fmcourse import checkpoints
from fmcourse.data import MarkovChain, causal_lm_eval_batches, masked_lm_eval_batches, pydoc_text
from fmcourse.models import GPT, Encoder
from fmcourse.pretrain import (
    MASK,
    SHIPPED,
    Settings,
    encode_prompt,
    fill_in,
    load_shipped,
    main,
    prepare,
    pretrain,
    sample,
    shipped_command,
    unigram_loss,
)
from fmcourse.tokenizers import UNK, BPETokenizer, CharTokenizer
from fmcourse.train import evaluate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "fmcourse" / "shipped"
TINY = dict(steps=40, n_layer=1, n_head=2, d_model=32, context_length=32, batch_size=16, eval_batches=2,
            evaluations=2, lr=1e-2, warmup_steps=5)


def markov_text(paragraphs: int = 120, seed: int = 0) -> tuple[str, MarkovChain]:
    """Paragraphs of letters from a sharp first-order Markov chain: predictable from the last letter."""
    chain = MarkovChain.random(vocab_size=6, order=1, sharpness=4.0, generator=torch.Generator().manual_seed(seed))
    tokens = chain.sample(paragraphs * 80, generator=torch.Generator().manual_seed(seed + 1)).tolist()
    letters = "".join("abcdef"[t] for t in tokens)
    return "\n\n".join(letters[i:i + 80] for i in range(0, len(letters), 80)), chain


def test_prepare_trains_the_tokenizer_on_the_training_part_only():
    paragraphs = [f"paragraph {i}: " + "abc " * 5 for i in range(40)] + ["a rare letter: é"]
    corpus = prepare("\n\n".join(paragraphs), val_fraction=0.3, seed=0)
    tok = corpus.tokenizer
    train_text = tok.decode(corpus.train.tolist())
    val_text = tok.decode(corpus.val.tolist())
    train_paragraphs, val_paragraphs = set(train_text.split("\n\n")), set(val_text.split("\n\n"))
    assert not train_paragraphs & val_paragraphs, "no paragraph is in both parts"
    assert set(tok.chars) == set(train_text), "the alphabet is the training text's"
    if "é" not in tok.chars:  # the rare paragraph went to validation: its unseen letter is <unk> there
        assert UNK in val_text
    assert corpus.chars_per_token == 1.0


def test_prepare_with_bpe_compresses_and_keeps_specials():
    corpus = prepare(pydoc_text()[:60_000], "bpe", bpe_vocab_size=512, specials=(MASK,))
    assert isinstance(corpus.tokenizer, BPETokenizer) and MASK in corpus.tokenizer.specials
    assert corpus.tokenizer.vocab_size == 512
    assert corpus.chars_per_token > 1.7, "a BPE token stands for several characters of English"


def test_unigram_loss_known_answers():
    # Without smoothing: two equally frequent tokens cost ln 2 each.
    assert unigram_loss(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1]), 2, smoothing=0) == pytest.approx(math.log(2))
    # Add-one over 3 tokens: counts 3, 3, 1 of 7; the unseen token 2 costs ln 7.
    assert unigram_loss(torch.tensor([0, 0, 1, 1]), torch.tensor([2]), 3) == pytest.approx(math.log(7))


def test_unigram_loss_equals_cross_entropy_of_the_count_distribution():
    g = torch.Generator().manual_seed(0)
    train, val = torch.randint(0, 20, (500,), generator=g), torch.randint(0, 20, (300,), generator=g)
    counts = torch.bincount(train, minlength=20).double() + 1
    reference = F.cross_entropy((counts / counts.sum()).log().expand(300, 20), val).item()
    assert unigram_loss(train, val, 20) == pytest.approx(reference, rel=1e-9)


def test_unigram_loss_refuses_bad_input():
    with pytest.raises(ValueError, match="must lie in 0..4"):
        unigram_loss(torch.tensor([0, 5]), torch.tensor([1]), 5)
    with pytest.raises(ValueError, match="smoothing must be positive"):
        unigram_loss(torch.tensor([0, 0]), torch.tensor([1]), 2, smoothing=0)
    with pytest.raises(ValueError, match="1-D tensor"):
        unigram_loss(torch.tensor([]), torch.tensor([1]), 2)


def test_pretrain_learns_what_the_context_predicts_and_never_beats_the_source():
    text, chain = markov_text()
    result = pretrain(text, plot=False, progress=False, **(TINY | {"steps": 120}))
    assert isinstance(result.model, GPT) and not result.model.training
    # The chain's letters carry chain.entropy_rate() nats each; the newlines add a little on top.
    assert result.val_loss < result.unigram - 0.5, (result.val_loss, result.unigram)
    assert result.val_loss > chain.entropy_rate() - 0.05, "no model can beat the entropy rate of the source"
    assert result.history.val_loss[0] > result.val_loss
    summary = result.summary()
    assert summary["perplexity"] == pytest.approx(math.exp(result.val_loss), rel=1e-3)
    assert summary["settings"]["steps"] == 120


def test_pretrain_is_seeded():
    text, _ = markov_text(60)
    runs = [pretrain(text, plot=False, progress=False, **(TINY | {"steps": 10})).history.val_loss for _ in range(2)]
    assert runs[0] == runs[1]


def test_masked_objective_gives_an_encoder_that_fills_in_blanks():
    text, _ = markov_text(60)
    result = pretrain(text, objective="masked", plot=False, progress=False, **TINY)
    assert isinstance(result.model, Encoder)
    assert MASK in result.tokenizer.specials
    filled, candidates = fill_in(result.model, result.tokenizer, "ab_de_ab", top_k=2)
    assert len(filled) == 8 and filled[:2] == "ab" and filled[3:5] == "de"
    assert len(candidates) == 2 and all(len(c) == 2 for c in candidates)
    assert all(text_ not in (MASK, UNK) and 0 <= p <= 1 for c in candidates for text_, p in c)
    assert "perplexity" not in result.summary(), "a masked loss is not a perplexity of the text"


def test_text_too_short_or_empty_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than the 65 that one window of context_length=64 needs"):
        pretrain("\n\n".join(f"line {i}" for i in range(30)), plot=False, progress=False, steps=1)
    with pytest.raises(ValueError, match="empty after cleaning"):
        prepare(" \n\t\x00 ")
    with pytest.raises(TypeError, match="text must be a str"):
        prepare(b"bytes")


def test_the_defaults_are_the_best_setting_of_the_tuning_bench():
    table = (ROOT / "bench" / "results" / "pretrain_tuning.md").read_text()
    (best,) = re.findall(r"^\| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|.*\*\*[\d.]+\*\* \|$", table, re.M)
    lr, warmup, width, layers, batch = map(float, best)
    defaults = Settings()
    assert (defaults.lr, defaults.warmup_steps, defaults.d_model, defaults.n_layer, defaults.batch_size) == \
        (lr, warmup, width, layers, batch), "set the defaults to the best setting of bench/pretrain_tuning.py"


@pytest.mark.parametrize("overrides, message", [
    (dict(objective="mlm"), "objective must be one of"),
    (dict(d_model=30, n_head=4), "divisible by n_head"),
    (dict(steps=0), "steps must be a positive int"),
    (dict(lr=-1.0), "lr must be positive"),
    (dict(warmup_steps=-1), "warmup_steps"),
])
def test_settings_refuse_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        Settings(**overrides)


def test_sample_is_seeded_keeps_the_prompt_and_names_unseen_characters():
    text, _ = markov_text(60)
    result = pretrain(text, plot=False, progress=False, **(TINY | {"steps": 5}))
    model, tok = result.model, result.tokenizer
    first = sample(model, tok, "abc", 30, seed=1)
    assert first.startswith("abc") and len(first.replace(UNK, "?")) == 33  # an untrained model may pick <unk>
    assert first == sample(model, tok, "abc", 30, seed=1)
    assert set(sample(model, tok, "", 20).replace(UNK, "")) <= set(tok.chars)
    greedy = sample(model, tok, "ab", 10, temperature=0)
    assert greedy == sample(model, tok, "ab", 10, temperature=0, seed=5), "temperature 0 does not depend on the seed"
    with pytest.raises(ValueError, match=r"never saw in training: 'xz'"):
        sample(model, tok, "abzx", 10)
    with pytest.raises(TypeError, match="needs a GPT"):
        sample(Encoder(dataclasses.replace(model.config)), tok, "ab")
    no_newline = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match="give a non-empty prompt"):
        encode_prompt(no_newline, "")


def test_fill_in_refuses_what_it_cannot_do():
    text, _ = markov_text(60)
    gpt = pretrain(text, plot=False, progress=False, **(TINY | {"steps": 2}))
    encoder = pretrain(text, objective="masked", plot=False, progress=False, **(TINY | {"steps": 2}))
    with pytest.raises(TypeError, match="needs an Encoder"):
        fill_in(gpt.model, gpt.tokenizer, "a_c")
    with pytest.raises(ValueError, match="no '<mask>' token"):
        fill_in(encoder.model, gpt.tokenizer, "a_c")
    with pytest.raises(ValueError, match="no blank"):
        fill_in(encoder.model, encoder.tokenizer, "abc")
    with pytest.raises(ValueError, match="more than the context length 32"):
        fill_in(encoder.model, encoder.tokenizer, "a_" * 20)


COMMAND = ["--steps", "30", "--n-layer", "1", "--n-head", "2", "--d-model", "32", "--context-length", "32",
           "--batch-size", "16", "--eval-batches", "2", "--samples", "2", "--sample-length", "40"]


@pytest.mark.parametrize("objective, model_class", [("causal", GPT), ("masked", Encoder)])
def test_command_writes_a_checkpoint_and_samples(tmp_path, capsys, objective, model_class):
    text, _ = markov_text(80)
    source = tmp_path / "letters.txt"
    source.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["--text", str(source), "--out", str(out), "--objective", objective] + COMMAND) == 0
    printed = capsys.readouterr().out
    assert "validation loss" in printed and "unigram baseline" in printed
    model, tok = checkpoints.load(out, model_class)
    manifest = checkpoints.read_manifest(out)
    assert manifest["metadata"]["settings"]["steps"] == 30 and manifest["metadata"]["source"] == "letters.txt"
    assert isinstance(tok, CharTokenizer) and set(tok.chars) <= set(text)
    samples = (out / "samples.txt").read_text(encoding="utf-8")
    assert samples.count("--- ") == 2
    if objective == "masked":
        assert "predicted:" in samples and "truth:" in samples


def test_command_trains_for_a_time_budget(tmp_path, capsys):
    text, _ = markov_text(80)
    source = tmp_path / "letters.txt"
    source.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    seconds = 2.0
    started = time.perf_counter()
    assert main(["--text", str(source), "--out", str(out), "--minutes", str(seconds / 60), "--warmup-steps", "5"]
                + COMMAND[2:]) == 0
    assert time.perf_counter() - started < seconds + 8, "the budget is the training's; saving and sampling add a little"
    assert f"for {seconds / 60:g} minutes" in capsys.readouterr().out
    metadata = checkpoints.read_manifest(out)["metadata"]
    assert metadata["steps_trained"] > 10
    with pytest.raises(SystemExit):
        main(["--text", str(source), "--out", str(tmp_path / "other"), "--minutes", "-1"])
    assert "--minutes must be a positive number" in capsys.readouterr().err


def test_pretrain_for_a_time_budget_ends_at_the_lowest_rate():
    text, _ = markov_text(80)
    result = pretrain(text, minutes=1 / 60, **(TINY | {"warmup_steps": 5}), plot=False, progress=False)
    assert len(result.history.steps) > 20
    assert result.history.lr[-1] == pytest.approx(0.1 * TINY["lr"])
    assert result.history.seconds == pytest.approx(1.0, rel=0.1)
    assert result.summary()["steps_trained"] == len(result.history.steps)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"   \n\n", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks binary"),
    (b"caf\xe9", "is not UTF-8"),
])
def test_command_refuses_empty_and_binary_files_with_a_message(tmp_path, capsys, content, message):
    source = tmp_path / "input.txt"
    source.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["--text", str(source), "--out", str(tmp_path / "run"), "--steps", "5"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "usage:" not in err, "the message alone, without the whole usage text"
    assert not (tmp_path / "run").exists(), "nothing is written"


def test_command_warns_when_the_warm_up_fills_most_of_the_run(tmp_path, capsys):
    text, _ = markov_text(80)
    source = tmp_path / "letters.txt"
    source.write_text(text, encoding="utf-8")
    main(["--text", str(source), "--out", str(tmp_path / "a")] + COMMAND)  # the default warm-up: 300 of 30 steps
    assert "note: the learning-rate warm-up (300 steps)" in capsys.readouterr().out
    main(["--text", str(source), "--out", str(tmp_path / "b"), "--warmup-steps", "3"] + COMMAND)
    assert "note:" not in capsys.readouterr().out


def test_command_refuses_a_prompt_with_characters_the_text_lacks(tmp_path, capsys):
    text, _ = markov_text(60)
    source = tmp_path / "letters.txt"
    source.write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["--text", str(source), "--out", str(tmp_path / "run"), "--prompt", "abc?"] + COMMAND)
    assert "the text never uses: '?'" in capsys.readouterr().err


# --- the shipped models -----------------------------------------------------------------------

def readme_files() -> dict[str, tuple[int, str]]:
    """``{path: (size, sha256)}`` from the table of fmcourse/shipped/README.md."""
    rows = re.findall(r"^\| `([^`]+)` \| ([\d,]+) \| `([0-9a-f]{64})` \|", (DATA / "README.md").read_text(), re.M)
    return {path: (int(size.replace(",", "")), digest) for path, size, digest in rows}


def test_every_shipped_file_is_listed_with_its_size_and_sha256():
    listed = readme_files()
    present = {str(p.relative_to(DATA)) for p in DATA.rglob("*")
               if p.is_file() and p.name != "README.md" and p.suffix != ".py" and "__pycache__" not in p.parts}
    assert present == set(listed), "fmcourse/shipped/README.md must list exactly the files shipped there"
    for path, (size, digest) in listed.items():
        data = (DATA / path).read_bytes()
        assert len(data) == size, f"{path}: {len(data)} bytes, README says {size}"
        assert hashlib.sha256(data).hexdigest() == digest, f"{path}: sha256 differs from README"
    assert sum(size for size, _ in listed.values()) < 8_000_000, "keep the shipped files small"


def test_readme_gives_the_one_command_that_made_each_shipped_model():
    readme = (DATA / "README.md").read_text()
    for name in SHIPPED:
        assert f"`{shipped_command(name)}`" in readme, f"fmcourse/shipped/README.md must give the command of {name}"
        manifest = checkpoints.read_manifest(DATA / name)
        assert manifest["metadata"]["source"] == "pydoc_data.topics"


@pytest.mark.parametrize("folder, model_class", [("gpt_pydoc_char", GPT), ("encoder_pydoc_char", Encoder)])
def test_shipped_models_reach_the_validation_loss_they_claim(folder, model_class):
    model, tok = load_shipped(folder)
    assert isinstance(model, model_class)
    metadata = checkpoints.read_manifest(DATA / folder)["metadata"]
    settings = Settings(**metadata["settings"])
    corpus = prepare(pydoc_text(), settings.tokenizer, val_fraction=settings.val_fraction, seed=settings.seed,
                     specials=(MASK,) if settings.objective == "masked" else ())
    assert corpus.tokenizer.to_dict() == tok.to_dict(), "the same text and split give the same tokenizer"
    B, T = settings.batch_size, settings.context_length
    if settings.objective == "causal":
        batches = causal_lm_eval_batches(corpus.val, B, T, max_batches=settings.eval_batches)
    else:
        batches = masked_lm_eval_batches(corpus.val, B, T, vocab_size=tok.vocab_size, mask_id=tok.specials[MASK],
                                         special_ids=tok.specials.values(), seed=settings.seed,
                                         max_batches=settings.eval_batches)
    loss = evaluate(model, batches)
    assert loss == pytest.approx(metadata["val_loss"], abs=2e-3)
    assert loss < metadata["unigram_loss"] - 1.0, "well below the unigram baseline"


def test_a_missing_shipped_model_names_the_command_that_makes_it(tmp_path, monkeypatch):
    import fmcourse.shipped

    monkeypatch.setattr(fmcourse.shipped, "FOLDER", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"gpt_pydoc_char is not in this installation.*`python -m fmcourse.pretrain --pydoc"):
        load_shipped("gpt_pydoc_char")
    (tmp_path / "gpt_pydoc_char").mkdir()
    with pytest.raises(FileNotFoundError, match="has no checkpoint.json: rebuild it with `python -m fmcourse.pretrain"):
        load_shipped("gpt_pydoc_char")
    with pytest.raises(ValueError, match="no shipped model 'other'; there are: gpt_pydoc_char, encoder_pydoc_char"):
        load_shipped("other")
    with pytest.raises(ValueError, match="named by its path inside"):
        fmcourse.shipped.path("../pyproject.toml")
