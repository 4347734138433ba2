"""The Colab path, emulated: the course's package built as a wheel and installed, not editable, into a
fresh virtual environment outside the repository.

    python tools/wheel_venv.py FOLDER      # prints the new environment's python

The fresh environment borrows the already-installed dependencies of the current one (a ``.pth`` line
pointing at its site-packages), so nothing is downloaded; the wheel itself is installed with pip,
and pip resolves the package's declared dependencies and extras against what is there.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(out: Path) -> Path:
    """Build the package's wheel into ``out`` (no download: the current setuptools builds it)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(out), str(ROOT)], check=True)
    (wheel,) = out.glob("fmcourse-*.whl")
    return wheel


def wheel_venv(folder: Path, extras: str = "course") -> Path:
    """A fresh virtual environment in ``folder`` with the course's wheel installed; returns its python."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(folder / "dist")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "_borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # The venv's own, older setuptools would hide the borrowed one that torch asks for.
    subprocess.run([str(python), "-m", "pip", "uninstall", "--quiet", "--yes", "setuptools"], check=True)
    # --force-reinstall: pip sees the borrowed editable fmcourse; it never uninstalls outside its environment.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--force-reinstall",
                    "--disable-pip-version-check", str(wheel)], check=True)
    # Every declared dependency, extras included, must be satisfied by what is installed: nothing to fetch.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--dry-run",
                    "--disable-pip-version-check", f"fmcourse[{extras}] @ {wheel.as_uri()}"], check=True)
    return python


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(wheel_venv(Path(sys.argv[1]).resolve()))
