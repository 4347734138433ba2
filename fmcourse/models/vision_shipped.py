"""The vision models shipped with the course (chapter 08), built and loaded by name.

    detector = load_vision("detector")     # GridDetector, trained by bench/vision.py
    judge = load_vision("judge")           # AttributeJudge
    generator = load_vision("generator")   # TextToImage (its VQ-VAE tokenizer inside)

``fmcourse/shipped/vision/`` holds one ``<name>.safetensors`` per model (weights in float16) and ``models.json`` with the
sizes each was built with and what it scored; ``bench/vision.py`` makes them all with one command.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from safetensors.torch import load_model, save_model
from torch import nn

from fmcourse import shipped
from fmcourse.models.detector import GridDetector
from fmcourse.models.text_to_image import VQVAE, AttributeJudge, TextToImage

FOLDER = "vision"
NAMES = ("detector", "judge", "generator")


def build_vision(name: str, sizes: dict) -> nn.Module:
    """An untrained model ``name`` (one of ``NAMES``) of the given ``sizes`` (keyword arguments)."""
    if name == "detector":
        return GridDetector(**sizes)
    if name == "judge":
        return AttributeJudge(**sizes)
    if name == "generator":
        return TextToImage(VQVAE(**sizes["tokenizer"]), **sizes["prior"])
    raise ValueError(f"unknown vision model {name!r}; choose one of {NAMES}")


def vision_info() -> dict:
    """``models.json``: per model, the ``sizes`` it was built with and its ``scores``."""
    return json.loads(shipped.path(f"{FOLDER}/models.json").read_text())


def load_vision(name: str) -> nn.Module:
    """The shipped model ``name``, in evaluation mode, on the CPU."""
    if name not in NAMES:
        raise ValueError(f"unknown vision model {name!r}; choose one of {NAMES}")
    model = build_vision(name, vision_info()[name]["sizes"])
    load_model(model, shipped.path(f"{FOLDER}/{name}.safetensors"))
    return model.eval()


def to_half_precision(model: nn.Module) -> nn.Module:
    """Round ``model``'s weights to float16 and back, in place: what is saved is then exactly what was
    measured (the files are stored in float16, half the size; loading gives float32 again)."""
    return model.half().float()


def save_vision(model: nn.Module, name: str, folder: Path) -> None:
    """Write ``model``'s weights in float16 to ``folder / f"{name}.safetensors"`` (shared tensors once)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_model(copy.deepcopy(model).half(), str(folder / f"{name}.safetensors"))
