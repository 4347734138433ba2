"""Data-parallel pretraining under torchrun: two processes give the weights of one, only rank 0 writes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fmcourse import checkpoints, distributed, env
from fmcourse.models import GPT
from fmcourse.train import fit

ROOT = Path(__file__).resolve().parents[1]
TEXT = "".join(f"the cat {w} on the mat, and the dog {w} by the door.\n\n"
               for w in ["sat", "ran", "lay", "sang", "slept", "ate"] * 30)
FAST = ["--steps", "6", "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context-length", "16",
        "--warmup-steps", "1", "--samples", "1", "--sample-length", "10", "--device", "cpu", "--evaluations", "2"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", FMCOURSE_HEADLESS="1")
    return env


def run(*argv: str, processes: int | None = None, cwd: Path) -> subprocess.CompletedProcess:
    launcher = [] if processes is None else ["-m", "torch.distributed.run", "--standalone",
                                             f"--nproc_per_node={processes}", "--log-dir", "logs", "--redirects", "3"]
    return subprocess.run([sys.executable, *launcher, "-m", "fmcourse.pretrain", *argv], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=300)


def test_two_processes_give_the_weights_of_one_with_the_same_global_batch_and_only_rank_0_writes(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    two = run("--text", "t.txt", "--out", "two", "--batch-size", "8", *FAST, processes=2, cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-2000:]
    one = run("--text", "t.txt", "--out", "one", "--batch-size", "8", *FAST, cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-2000:]
    a, b = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-4)
    model, _ = checkpoints.load(tmp_path / "one", GPT)
    env.seed_everything(0)  # the initial weights (pretrain seeds, then builds the model)
    initial = GPT(model.config).state_dict()
    assert max((a[k] - initial[k]).abs().max().item() for k in a) > 100 * 1e-4  # the steps moved the weights
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["checkpoint.json", "model.safetensors", "samples.txt"]
    logs = {p.parent.name: p.read_text() for p in (tmp_path / "logs").rglob("stdout.log")}
    assert "validation loss" in logs["0"] and logs["1"] == ""  # rank 1 trained but printed nothing


def test_a_batch_the_processes_cannot_share_evenly_is_refused(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    result = run("--text", "t.txt", "--out", "odd", "--batch-size", "7", *FAST, processes=2, cwd=tmp_path)
    assert result.returncode != 0
    assert "multiple of 2" in result.stderr + "".join(p.read_text() for p in (tmp_path / "logs").rglob("stderr.log"))
    assert not (tmp_path / "odd" / "model.safetensors").exists()


def test_only_rank_0_saves_the_training_state(tmp_path, monkeypatch):
    data = [(torch.randn(4, 3), torch.randn(4, 1)) for _ in range(3)]
    for rank, saves in (("1", False), ("0", True)):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        fit(torch.nn.Linear(3, 1), data, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), steps=3,
            plot=False, progress=False, device="cpu", checkpoint=tmp_path / f"rank{rank}.pt")
        assert (tmp_path / f"rank{rank}.pt").exists() == saves


def test_helpers_outside_a_launcher(monkeypatch):
    for name in distributed.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched() and distributed.rank() == 0 and distributed.world_size() == 1
    with pytest.raises(RuntimeError, match="torchrun"):
        distributed.init()
    assert distributed.local_batch_size(32, 4) == 8
    with pytest.raises(ValueError, match="multiple of 3"):
        distributed.local_batch_size(32, 3)


def test_shards_are_the_rows_of_the_global_batch():
    batch = (torch.arange(12).view(6, 2), torch.arange(6))
    parts = [distributed.shard(lambda: batch, rank, 3)() for rank in range(3)]
    for i in range(2):
        assert torch.equal(torch.cat([p[i] for p in parts]), batch[i])
