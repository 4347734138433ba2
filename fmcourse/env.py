"""The environment a chapter runs in: device, seeds, threads, versions, presenter mode.

Environment variables (all optional):

- ``FMCOURSE_DEVICE``: ``auto`` (default), ``cpu``, ``cuda`` or ``mps``.
- ``FMCOURSE_PRESENTER``: ``1`` turns on presenter mode (large fonts) at import.
- ``FMCOURSE_HEADLESS``: ``1`` keeps progress bars and live plots quiet (set by the test suite).
- ``FMCOURSE_CACHE``: where downloads are cached (default ``~/.cache/fmcourse``).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import sys
from pathlib import Path

import numpy as np
import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")

def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def get_device(name: str | None = None) -> torch.device:
    """The device to compute on: ``name``, else ``$FMCOURSE_DEVICE``, else CUDA, then MPS, then CPU.

    Raises ``ValueError`` for a name outside ``DEVICE_CHOICES`` and ``RuntimeError`` when the named
    back end is not available on this machine.
    """
    source = "argument" if name is not None else "FMCOURSE_DEVICE"
    choice = (name if name is not None else os.environ.get("FMCOURSE_DEVICE", "auto")).strip().lower()
    if choice not in DEVICE_CHOICES:
        raise ValueError(
            f"unknown device {choice!r} (from {source}); choose one of: {', '.join(DEVICE_CHOICES)}"
        )
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps_available()}
    if not available[choice]:
        raise RuntimeError(
            f"device {choice!r} was asked for (from {source}) but is not available here; "
            f"use 'auto' or 'cpu'"
        )
    return torch.device(choice)


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python's, NumPy's and torch's generators; return a torch.Generator seeded the same."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count (default: every core); return the count now in use."""
    n = n if n is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ValueError(f"thread count must be at least 1, got {n}")
    torch.set_num_threads(n)
    return torch.get_num_threads()


def cache_dir() -> Path:
    """The folder downloads are cached in: ``$FMCOURSE_CACHE`` or ``~/.cache/fmcourse``."""
    return Path(os.environ.get("FMCOURSE_CACHE", Path.home() / ".cache" / "fmcourse")).expanduser()


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Colab, nbval), False in a script or a terminal."""
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None else None
    return ip is not None and type(ip).__name__ in ("ZMQInteractiveShell", "Shell")  # "Shell": Colab


def headless() -> bool:
    """True when progress bars and live plots should stay quiet (``FMCOURSE_HEADLESS=1``, set by tests)."""
    return os.environ.get("FMCOURSE_HEADLESS", "0") == "1"


def check_environment() -> list[str]:
    """Problems with the installed packages, one sentence each saying what to do; empty when fine.

    The versions asked for are those in fmcourse's own package metadata (pyproject.toml).
    """
    from packaging.requirements import Requirement

    problems = []
    if sys.version_info < (3, 10):
        problems.append(f"Python {platform.python_version()} is too old: the course needs 3.10 or newer.")
    try:
        wanted = importlib.metadata.requires("fmcourse") or []
    except importlib.metadata.PackageNotFoundError:
        return problems + ["fmcourse is not installed: run `make install`, or pip install -e . in the course folder"]
    for requirement in map(Requirement, wanted):
        if requirement.marker is not None:  # optional extras such as [dev]
            continue
        try:
            found = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{requirement.name} is missing: pip install '{requirement}'")
            continue
        if not requirement.specifier.contains(found, prereleases=True):
            problems.append(f"{requirement.name} {found} is outside {requirement.specifier}: pip install '{requirement}'")
    return problems


def report(device: torch.device | None = None) -> dict[str, str]:
    """Versions, device and threads as a dict (printable as a table by ``print_report``)."""
    device = device or get_device()
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": str(device),
        "threads": str(torch.get_num_threads()),
        "platform": f"{platform.system()} {platform.machine()}",
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = str(torch.version.cuda)
    elif device.type == "mps":
        # MPS can compute some operations wrongly: compare a small case with the CPU.
        x = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
        error = (x.to(device) @ x.to(device)).cpu().sub(x @ x).abs().max().item()
        info["mps vs cpu max error"] = f"{error:.2e}"
    return info


def print_report(device: torch.device | None = None) -> None:
    info = report(device)
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:>{width}}  {value}")


PRESENTER_RC = {
    "font.size": 16,
    "axes.titlesize": 18,
    "axes.labelsize": 16,
    "xtick.labelsize": 14,
    "ytick.labelsize": 14,
    "legend.fontsize": 14,
    "lines.linewidth": 2.5,
    "figure.dpi": 110,
}


def presenter_mode(on: bool = True) -> None:
    """Large fonts and thick lines in every later plot, for teaching from a projector."""
    import matplotlib as mpl

    if on:
        mpl.rcParams.update(PRESENTER_RC)
    else:
        mpl.rcParams.update({key: mpl.rcParamsDefault[key] for key in PRESENTER_RC})


if os.environ.get("FMCOURSE_PRESENTER", "0") == "1":
    presenter_mode(True)
