"""The artifacts the course makes itself and ships inside the package: two pretrained language models,
chapter 05's SimCLR digits encoder, chapter 08's vision models, chapter 09's speech models and chapter 10's
recommender comparison with its GPT over items. ``README.md`` in this folder lists each file with its
size, its sha256 and the one command that made it.

They are package data, so they are found the same way in a clone, an editable install and an installed
wheel (Colab's ``pip install``): next to this file.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent


def path(name: str) -> Path:
    """The shipped file or folder ``name`` (e.g. ``"simclr_digits.safetensors"``), which must exist."""
    found = FOLDER / name
    if not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(f"a shipped artifact is named by its path inside {FOLDER}, got {name!r}")
    if not found.exists():
        present = sorted(p.name for p in FOLDER.iterdir() if not p.name.startswith(("_", ".")))
        raise FileNotFoundError(
            f"{name} is not in this installation of fmcourse ({FOLDER} holds: {', '.join(present)}). "
            "Reinstall fmcourse (the file travels with the package), or rebuild it with the command that "
            f"{FOLDER / 'README.md'} gives for it.")
    return found
