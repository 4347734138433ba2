import importlib.metadata

import matplotlib as mpl
import pytest
import torch

from fmcourse import env


def test_auto_device_is_available():
    device = env.get_device("auto")
    assert torch.zeros(1, device=device).device.type == device.type


def test_device_override_from_environment(monkeypatch):
    monkeypatch.setenv("FMCOURSE_DEVICE", "cpu")
    assert env.get_device() == torch.device("cpu")
    monkeypatch.setenv("FMCOURSE_DEVICE", " CPU ")
    assert env.get_device() == torch.device("cpu")


def test_unknown_device_lists_the_choices(monkeypatch):
    monkeypatch.setenv("FMCOURSE_DEVICE", "gpu0")
    with pytest.raises(ValueError) as error:
        env.get_device()
    message = str(error.value)
    assert "'gpu0'" in message and "FMCOURSE_DEVICE" in message
    for choice in env.DEVICE_CHOICES:
        assert choice in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_unavailable_device_says_so():
    with pytest.raises(RuntimeError, match="not available"):
        env.get_device("cuda")


def test_seed_everything_repeats_python_numpy_and_torch():
    import random

    import numpy as np

    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    env.seed_everything(7)
    first = draw()
    env.seed_everything(7)
    assert draw() == first
    env.seed_everything(8)
    assert draw() != first


def test_seed_rejects_negative():
    with pytest.raises(ValueError, match="non-negative"):
        env.seed_everything(-1)


def test_set_threads_round_trip():
    before = torch.get_num_threads()
    try:
        assert env.set_threads(1) == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError):
        env.set_threads(0)


def test_check_environment_reports_missing_and_old(monkeypatch):
    assert env.check_environment() == []  # the test environment is the tested one
    real_version = importlib.metadata.version

    def fake_version(name):
        if name == "numpy":
            return "1.0.0"
        if name == "tqdm":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", fake_version)
    problems = env.check_environment()
    assert any("numpy 1.0.0" in p and "pip install" in p for p in problems)
    assert any(p.startswith("tqdm is missing") for p in problems)
    assert len(problems) == 2


def test_report_names_device_and_versions():
    info = env.report(torch.device("cpu"))
    assert info["device"] == "cpu" and info["torch"] == torch.__version__


def test_presenter_mode_enlarges_fonts_and_restores():
    default = mpl.rcParamsDefault["font.size"]
    env.presenter_mode(True)
    try:
        assert mpl.rcParams["font.size"] > default
    finally:
        env.presenter_mode(False)
    assert mpl.rcParams["font.size"] == default


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FMCOURSE_CACHE", str(tmp_path))
    assert env.cache_dir() == tmp_path


def test_pytest_is_not_jupyter_and_headless_follows_environment(monkeypatch):
    assert not env.in_jupyter()
    monkeypatch.setenv("FMCOURSE_HEADLESS", "1")
    assert env.headless()
    monkeypatch.setenv("FMCOURSE_HEADLESS", "0")
    assert not env.headless()
