"""Nothing a student trains is lost, training resumes exactly, runs repeat, and nothing needs the network.

- a checkpoint save killed at each of its stages leaves a checkpoint that loads (the previous one
  before the commit point, the new one after it), both when the failure raises and when the process
  dies on the spot (a copy of the folder taken at that moment);
- ``fit`` interrupted at step k (an exception, or Ctrl-C) and resumed gives the weights and history
  of a run that was never interrupted, and so does ``python -m fmcourse.pretrain --resume``;
- a short pretraining run twice, in two processes, gives identical files;
- the package's key paths and its own tests pass with every network connection refused.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fmcourse import checkpoints, pretrain, train
from fmcourse.data import causal_lm_batches, causal_lm_eval_batches
from fmcourse.data.files import sha256_file
from fmcourse.models import GPT, GPTConfig
from fmcourse.tokenizers import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
PYTHON_ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "FMCOURSE_HEADLESS": "1"}


def tiny_gpt(seed: int, dropout: float = 0.0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=6, context_length=8, n_layer=1, n_head=2, d_model=16, dropout=dropout))


TOKENIZER = CharTokenizer("abcdef")


def which(folder: Path) -> int:
    """The seed of the tiny GPT whose checkpoint is in ``folder`` (it must load)."""
    model, tok = checkpoints.load(folder, GPT)
    assert tok.chars == TOKENIZER.chars
    for seed in (0, 1):
        if torch.equal(model.token_embedding.weight, tiny_gpt(seed).token_embedding.weight):
            return seed
    raise AssertionError("the checkpoint holds neither the old nor the new weights")


class Stages:
    """Counts the file operations of a save; at ``at`` it raises (or snapshots the folder first)."""

    def __init__(self, monkeypatch, folder: Path, at: int | None = None, snapshot_to: Path | None = None):
        self.count, self.at, self.folder, self.snapshot_to = 0, at, folder, snapshot_to
        self.names: list[str] = []
        for owner, name in ((checkpoints, "save_file"), (checkpoints, "sha256_file"), (os, "replace"),
                            (Path, "write_text"), (Path, "unlink")):
            monkeypatch.setattr(owner, name, self.wrap(name, getattr(owner, name)))

    def wrap(self, name, function):
        def staged(*args, **kwargs):
            index = self.count
            self.count += 1
            self.names.append(name)
            if self.snapshot_to is not None:
                shutil.copytree(self.folder, self.snapshot_to / f"{index:02d}-{name}")
            if index == self.at:
                raise OSError(f"killed at stage {index} ({name})")
            return function(*args, **kwargs)

        return staged


def test_a_save_killed_at_every_stage_leaves_a_checkpoint_that_loads(tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    checkpoints.save(tiny_gpt(0), folder, tokenizer=TOKENIZER)
    with monkeypatch.context() as patch:
        stages = Stages(patch, folder)
        checkpoints.save(tiny_gpt(1), folder, tokenizer=TOKENIZER)
    total, names = stages.count, stages.names
    assert total >= 5 and {"save_file", "replace", "write_text"} <= set(names), names

    seen = []
    for at in range(total):
        checkpoints.save(tiny_gpt(0), folder, tokenizer=TOKENIZER)  # the previous checkpoint
        with monkeypatch.context() as patch:
            Stages(patch, folder, at=at)
            try:
                checkpoints.save(tiny_gpt(1), folder, tokenizer=TOKENIZER)
            except OSError as error:
                assert f"stage {at}" in str(error)
        seen.append(which(folder))
        assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")], "no temporary file is left"
    # the previous checkpoint until the new manifest is in place, the new one from then on
    assert seen == sorted(seen) and seen[0] == 0 and seen[-1] == 1, list(zip(names, seen))


def test_a_save_cut_off_at_any_moment_leaves_a_checkpoint_that_loads(tmp_path, monkeypatch):
    """As if the power went off: the folder as it was just before each file operation of the save."""
    folder, snapshots = tmp_path / "ckpt", tmp_path / "snapshots"
    checkpoints.save(tiny_gpt(0), folder, tokenizer=TOKENIZER)
    with monkeypatch.context() as patch:
        Stages(patch, folder, snapshot_to=snapshots)
        checkpoints.save(tiny_gpt(1), folder, tokenizer=TOKENIZER)
    seen = [which(snapshot) for snapshot in sorted(snapshots.iterdir())]
    assert len(seen) >= 5 and seen == sorted(seen) and seen[0] == 0, seen
    assert which(folder) == 1


def test_a_manifest_committed_before_the_weights_moved_loads_the_new_weights(tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    checkpoints.save(tiny_gpt(0), folder, tokenizer=TOKENIZER)
    real_replace = os.replace

    def stop_before_the_weights_move(source, target):
        if Path(target).name == checkpoints.WEIGHTS:
            raise KeyboardInterrupt
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", stop_before_the_weights_move)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save(tiny_gpt(1), folder, tokenizer=TOKENIZER)
    monkeypatch.undo()
    assert which(folder) == 1  # load found the pending weights the manifest names, and moved them in place
    assert sorted(p.name for p in folder.iterdir()) == [checkpoints.MANIFEST, checkpoints.WEIGHTS]


# --- resumable training ------------------------------------------------------------------------------

TOKENS = torch.tensor([(i * 7 + i // 5) % 6 for i in range(600)])


def run_fit(state: Path | None = None, *, stop_at: int | None = None, how: str = "raise", resume: bool = False,
            data: str = "function", steps: int = 17):
    """A tiny GPT with dropout trained by ``fit``; ``stop_at`` interrupts it at the start of that step."""
    model = tiny_gpt(0, dropout=0.1)
    generator = torch.Generator().manual_seed(3)
    batches = causal_lm_batches(TOKENS, 4, 8, generator=generator)
    train_data = batches if data == "function" else [batches() for _ in range(5)]
    calls = []
    base = train.supervised()

    def loss_fn(model, batch):
        if model.training:
            calls.append(1)
            if stop_at is not None and len(calls) == stop_at + 1:
                if how == "raise":
                    raise RuntimeError("the machine went away")
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of a step
        return base(model, batch)

    history = train.fit(model, train_data, loss_fn, steps=steps, lr=3e-2, warmup_steps=3,
                        val_data=causal_lm_eval_batches(TOKENS, 4, 8, max_batches=2), eval_every=4,
                        plot=False, progress=False, device="cpu", checkpoint=state, checkpoint_every=3,
                        resume=resume, generators=[generator] if data == "function" else ())
    return model, history


def assert_same_run(a, b):
    (model_a, history_a), (model_b, history_b) = a, b
    for (name, x), y in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6, msg=name)
    assert history_a.steps == history_b.steps and history_a.lr == history_b.lr
    assert history_a.train_loss == pytest.approx(history_b.train_loss, abs=1e-6)
    assert history_a.val_steps == history_b.val_steps
    assert history_a.val_loss == pytest.approx(history_b.val_loss, abs=1e-6)


@pytest.mark.parametrize("data", ["function", "list"])
@pytest.mark.parametrize("stop_at", [4, 7, 16])
def test_fit_interrupted_at_step_k_and_resumed_equals_the_uninterrupted_run(tmp_path, data, stop_at):
    uninterrupted = run_fit(data=data)
    state = tmp_path / "state.pt"
    with pytest.raises(RuntimeError, match="went away"):
        run_fit(state, stop_at=stop_at, data=data)
    assert torch.load(state, weights_only=True)["done"] == stop_at // 3 * 3  # the last periodic save
    assert_same_run(uninterrupted, run_fit(state, resume=True, data=data))


def test_ctrl_c_saves_at_the_end_of_the_step_and_resumes_exactly(tmp_path):
    uninterrupted = run_fit()
    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt, match="after step 5 of 17.*resume=True"):
        run_fit(state, stop_at=4, how="ctrl-c")
    assert torch.load(state, weights_only=True)["done"] == 5  # not the periodic save at 3
    assert_same_run(uninterrupted, run_fit(state, resume=True))


def test_resume_after_the_last_step_changes_nothing(tmp_path):
    state = tmp_path / "state.pt"
    done = run_fit(state)
    assert_same_run(done, run_fit(state, resume=True))


def test_the_training_state_loads_without_pickle_code(tmp_path):
    state = tmp_path / "state.pt"
    run_fit(state, steps=3)
    saved = torch.load(state, weights_only=True)  # refuses anything but tensors and plain values
    assert set(saved) >= {"model", "optimizer", "rng", "history", "done", "steps", "base_lrs"}


# --- the command: interrupted, resumed --------------------------------------------------------------

TEXT = "".join(f"the {a} {b} on the mat.\n\n" for a in ("cat", "dog", "hen", "fox") for b in ("sat", "ran", "lay")) * 12
COMMAND = ["--steps", "12", "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context-length", "16",
           "--batch-size", "4", "--eval-batches", "1", "--evaluations", "3", "--warmup-steps", "2",
           "--dropout", "0.1", "--samples", "1", "--sample-length", "10", "--checkpoint-every", "2"]


def test_the_command_interrupted_says_how_to_resume_and_resumes_exactly(tmp_path, monkeypatch, capsys):
    source = tmp_path / "notes.txt"
    source.write_text(TEXT, encoding="utf-8")
    assert pretrain.main(["--text", str(source), "--out", str(tmp_path / "whole"), *COMMAND]) == 0

    real_to_device, calls = train.to_device, []

    def ctrl_c_at_step_7(batch, device):
        calls.append(1)
        if len(calls) == 7:
            os.kill(os.getpid(), signal.SIGINT)
        return real_to_device(batch, device)

    out = tmp_path / "run"
    monkeypatch.setattr(train, "to_device", ctrl_c_at_step_7)
    capsys.readouterr()
    assert pretrain.main(["--text", str(source), "--out", str(out), *COMMAND]) == 130
    monkeypatch.undo()
    message = capsys.readouterr().err
    assert f"last saved state is {out / pretrain.STATE}" in message
    assert f"python -m fmcourse.pretrain --resume {out}" in message
    assert not (out / checkpoints.MANIFEST).exists()

    assert pretrain.main(["--resume", str(out)]) == 0
    assert "resuming the run" in capsys.readouterr().out
    assert sha256_file(out / checkpoints.WEIGHTS) == sha256_file(tmp_path / "whole" / checkpoints.WEIGHTS)
    assert not (out / pretrain.STATE).exists() and not (out / pretrain.RUN).exists()
    assert checkpoints.read_manifest(out)["metadata"] == checkpoints.read_manifest(tmp_path / "whole")["metadata"]


def test_the_command_refuses_to_resume_on_another_text(tmp_path, monkeypatch, capsys):
    source = tmp_path / "notes.txt"
    source.write_text(TEXT, encoding="utf-8")
    monkeypatch.setattr(train, "to_device", lambda batch, device: os.kill(os.getpid(), signal.SIGINT) or batch)
    assert pretrain.main(["--text", str(source), "--out", str(tmp_path / "run"), *COMMAND]) == 130
    monkeypatch.undo()
    source.write_text(TEXT + "more text\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        pretrain.main(["--resume", str(tmp_path / "run")])
    assert "changed since the interrupted run" in capsys.readouterr().err


# --- determinism and no network ----------------------------------------------------------------------

def test_a_short_pretraining_twice_gives_identical_files(tmp_path):
    """Two processes, the same command: the same weights byte for byte, the same losses and samples."""
    source = tmp_path / "notes.txt"
    source.write_text(TEXT, encoding="utf-8")
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-m", "fmcourse.pretrain", "--text", str(source), "--out", str(tmp_path / run),
                        *COMMAND], check=True, env=PYTHON_ENV, cwd=tmp_path, capture_output=True, timeout=300)
    for name in (checkpoints.WEIGHTS, checkpoints.MANIFEST, "samples.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


NO_NETWORK = """
import socket, sys

def refuse(self, address, *args):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise ConnectionRefusedError(f"network blocked in this test: connect to {address}")
    return real_connect(self, address, *args)

real_connect = socket.socket.connect
socket.socket.connect = refuse
socket.socket.connect_ex = lambda self, address: refuse(self, address) or 0
try:
    socket.create_connection(("1.1.1.1", 80), timeout=1)
    sys.exit("the network block did not work")
except ConnectionRefusedError:
    pass
"""

KEY_PATHS = """
import tempfile
from pathlib import Path
import torch
import fmcourse
from fmcourse import checkpoints, exercises, metrics, objectives, pretrain, train, viz, widgets
from fmcourse.exercises import losses
from fmcourse.models import GPT

folder = Path(tempfile.mkdtemp())
text = "".join(f"the {a} sat on the mat.\\n\\n" for a in ("cat", "dog", "hen") * 30)
result = pretrain.pretrain(text, steps=5, n_layer=1, n_head=2, d_model=16, context_length=16, batch_size=4,
                           warmup_steps=1, eval_batches=1, plot=False, progress=False)
checkpoints.save(result.model, folder / "run", tokenizer=result.tokenizer)
model, tok = checkpoints.load(folder / "run", GPT)
print(pretrain.sample(model, tok, "the ", 20))
shipped, shipped_tok = pretrain.load_shipped("gpt_pydoc_char")
print(pretrain.sample(shipped, shipped_tok, "The ", 20))
assert pretrain.main(["--pydoc", "--out", str(folder / "cli"), "--steps", "3", "--n-layer", "1", "--d-model", "16",
                      "--n-head", "2", "--batch-size", "2", "--eval-batches", "1", "--warmup-steps", "1",
                      "--samples", "1", "--sample-length", "5"]) == 0
for exercise in exercises.chapter_exercises(losses):
    assert exercise.verify() is None, exercise.title
print("offline: ok")
"""


def test_the_package_needs_no_network(tmp_path):
    """Key paths (pretraining, checkpoints, the shipped model, the command, exercise checks) and the
    package's own tests, in a process where every internet connection is refused."""
    script = tmp_path / "offline.py"
    script.write_text(NO_NETWORK + KEY_PATHS, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], env=PYTHON_ENV, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "offline: ok" in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]

    tests = ["tests/test_bad_inputs.py", "tests/test_checkpoints.py", "tests/test_tokenizers.py",
             "tests/test_exercises.py", "tests/test_objectives.py"]
    runner = tmp_path / "offline_tests.py"
    runner.write_text(NO_NETWORK + textwrap.dedent(f"""
        import pytest
        sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-x", *{tests!r}]))
    """), encoding="utf-8")
    done = subprocess.run([sys.executable, str(runner)], env=PYTHON_ENV, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout



def test_a_crash_during_training_names_the_saved_state(tmp_path, monkeypatch, capsys):
    source = tmp_path / "notes.txt"
    source.write_text(TEXT, encoding="utf-8")
    real_to_device, calls = train.to_device, []

    def fail_at_call_8(batch, device):
        calls.append(1)
        if len(calls) == 8:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_to_device(batch, device)

    monkeypatch.setattr(train, "to_device", fail_at_call_8)
    with pytest.raises(SystemExit) as stop:
        pretrain.main(["--text", str(source), "--out", str(tmp_path / "run"), *COMMAND])
    monkeypatch.undo()
    assert stop.value.code == 2
    message = capsys.readouterr().err
    assert "out of memory" in message and f"--resume {tmp_path / 'run'}" in message
    assert pretrain.main(["--resume", str(tmp_path / "run")]) == 0
    assert checkpoints.load(tmp_path / "run", GPT)[0].config.d_model == 16
