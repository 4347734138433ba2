"""Create or repair the course's virtual environment and install the tested versions into it.

    python3 tools/setup_venv.py [VENV]        # what `make install` runs; VENV defaults to .venv

Works wherever Python 3.11+ runs (Windows too: `py -3.11 tools\\setup_venv.py`). It
1. checks the Python it runs on (the tested versions in requirements.txt need 3.11 or newer);
2. checks an existing virtual environment (its Python runs, is new enough, has pip) and rebuilds a broken
   or outdated one;
3. installs torch first: on Linux without an NVIDIA GPU the CPU build from PyTorch's own index (about
   200 MB instead of several GB of CUDA libraries), elsewhere the default build; `TORCH_BUILD=cpu` or
   `TORCH_BUILD=default` overrides the choice, which is printed;
4. installs requirements.txt and the course's package (editable), with pip's progress visible.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

MINIMUM = (3, 11)
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
ROOT = Path(__file__).resolve().parent.parent


def python_in(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def problem_with(venv: Path) -> str | None:
    """Why the virtual environment at ``venv`` cannot be used, or None when it can."""
    python = python_in(venv)
    if not python.exists():
        return f"{python} is missing"
    probe = "import sys, pip; print('%d.%d' % sys.version_info[:2])"
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"its Python does not run or has no pip ({result.stderr.strip().splitlines()[-1:] or 'no output'})"
    version = tuple(int(part) for part in result.stdout.split("."))
    if version < MINIMUM:
        return f"it uses Python {result.stdout.strip()}, and the tested versions need {'.'.join(map(str, MINIMUM))}+"
    return None


def has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia/version").exists()


def torch_choice() -> tuple[list[str], str]:
    """pip arguments that select the torch build, and a sentence saying which and why."""
    chosen = os.environ.get("TORCH_BUILD", "auto")
    if chosen not in ("auto", "cpu", "default"):
        sys.exit(f"TORCH_BUILD must be auto, cpu or default, got {chosen!r}")
    if chosen == "auto":
        linux_without_gpu = platform.system() == "Linux" and not has_nvidia_gpu()
        chosen = "cpu" if linux_without_gpu else "default"
        why = "Linux without an NVIDIA GPU" if linux_without_gpu else "a CUDA-capable or non-Linux machine"
    else:
        why = "TORCH_BUILD"
    if chosen == "cpu":  # torch alone from PyTorch's index; its dependencies come from PyPI in step 4
        return ["--extra-index-url", CPU_INDEX, "--no-deps", "--retries", "2"], f"the CPU build ({why})"
    return [], f"the default build from PyPI ({why}; TORCH_BUILD=cpu picks the small CPU build)"


def pinned_torch() -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith("torch=="):
            return line.strip()
    sys.exit("requirements.txt must pin torch (torch==X.Y.Z)")


def run(args: list[str]) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.check_call(args)


def main(venv: Path) -> None:
    if sys.version_info[:2] < MINIMUM:
        sys.exit(f"the course's tested versions need Python {'.'.join(map(str, MINIMUM))} or newer; this is "
                 f"{platform.python_version()} ({sys.executable}). Install Python 3.11+ (python.org, your package "
                 "manager, conda or pyenv), then run `make PYTHON=python3.11` (or that Python with this script).")
    if venv.exists() and (why := problem_with(venv)):
        print(f"rebuilding {venv}: {why}", flush=True)
        shutil.rmtree(venv)
    if not venv.exists():
        run([sys.executable, "-m", "venv", str(venv)])
    python = str(python_in(venv))
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    torch = pinned_torch()
    installed = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    if installed.returncode == 0 and installed.stdout.strip().split("+")[0] == torch.removeprefix("torch=="):
        print(f"{torch} is installed ({installed.stdout.strip()})", flush=True)
    else:
        arguments, which = torch_choice()
        print(f"installing {torch}: {which}", flush=True)
        run(pip + arguments + [torch])
    run(pip + ["-r", str(ROOT / "requirements.txt"), "-e", str(ROOT)])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".venv")
