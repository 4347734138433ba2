"""Checkpoints: a model's weights and what it takes to rebuild it, without pickle.

    save(model, "runs/gpt", tokenizer=tok, metadata={"steps": 2000})
    model, tok = load("runs/gpt", GPT)

A checkpoint is a folder of two files:

- ``model.safetensors``: the tensors of ``model.state_dict()``; loading it runs no code, unlike pickle;
- ``checkpoint.json``: the model's class name, its ``config`` dataclass as a dict, the tokenizer,
  the SHA-256 of the weights file (so a mismatched pair is caught), free-form ``metadata``, and
  ``manifest_sha256``, a checksum of everything in it but the metadata (so a hand-edited config or
  tokenizer is refused instead of giving garbage; manifests written before it existed still load).

Saving over an existing checkpoint never leaves a folder that does not load. The new weights are
first written whole under a pending name that carries their SHA-256 (``.model-<sha>.safetensors``);
the new manifest then replaces the old one in one rename (the commit point); last, the pending file
is renamed to ``model.safetensors``. A failure before the commit leaves the previous checkpoint as it
was; a failure after it leaves the new one, whose weights ``load`` finds under the pending name (and
moves into place).

The convention for models: ``model.config`` is a dataclass instance and ``ModelClass(config)``
builds the same architecture, with ``config`` annotated by its dataclass type in ``__init__``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import typing
import uuid
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fmcourse.data.files import sha256_file
from fmcourse.tokenizers import Tokenizer, tokenizer_from_dict

WEIGHTS = "model.safetensors"
MANIFEST = "checkpoint.json"
FORMAT = 1
#: The manifest entries its checksum covers: all but the free-form metadata and the checksum itself.
CHECKED = ("format", "architecture", "config_class", "config", "aliases", "parameters", "tokenizer",
           "weights_sha256")


def manifest_checksum(manifest: dict) -> str:
    """SHA-256 of the checked entries of ``manifest`` (canonical JSON: sorted keys, no spaces)."""
    import hashlib

    checked = {key: manifest.get(key) for key in CHECKED}
    text = json.dumps(checked, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _pending_name(sha256: str) -> str:
    return f".model-{sha256}.safetensors"


def _config_base(model_class: type[nn.Module]) -> type:
    """The dataclass that ``model_class.__init__`` takes as its first argument (its annotation)."""
    parameters = list(inspect.signature(model_class).parameters)
    try:
        hint = typing.get_type_hints(model_class.__init__).get(parameters[0]) if parameters else None
    except (NameError, TypeError):  # an annotation that does not resolve to a type
        hint = None
    if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
        raise TypeError(
            f"{model_class.__name__}.__init__ must take its config as first argument, annotated with the "
            f"config's dataclass type (e.g. `def __init__(self, config: GPTConfig)`)"
        )
    return hint


def _with_subclasses(cls: type) -> list[type]:
    return [cls] + [sub for child in cls.__subclasses__() for sub in _with_subclasses(child)]


def _shared_names(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """``{alias: name}`` for entries that are the very same tensor as an earlier one (tied weights)."""
    seen: dict[tuple, str] = {}
    aliases = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
               tensor.stride(), tensor.dtype, tensor.device)
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
    return aliases


def save(model: nn.Module, path: str | Path, *, tokenizer: Tokenizer | None = None,
         metadata: dict | None = None) -> Path:
    """Write ``model`` (and its tokenizer) to the folder ``path``; return the folder.

    ``model.config`` must be a dataclass instance whose fields are JSON values; ``metadata`` is any
    JSON-serializable dict (steps trained, validation loss, ...).
    """
    config = getattr(model, "config", None)
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        raise TypeError(f"{type(model).__name__} needs a `config` attribute that is a dataclass instance, "
                        f"got {type(config).__name__}")
    folder = Path(path)
    state = model.state_dict()
    aliases = _shared_names(state)
    manifest = {
        "format": FORMAT,
        "architecture": type(model).__qualname__,
        "config_class": type(config).__qualname__,
        "config": dataclasses.asdict(config),
        "aliases": aliases,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer": tokenizer.to_dict() if tokenizer is not None else None,
        "metadata": metadata or {},
    }
    try:  # fail on a value JSON cannot hold before anything is written
        json.dumps(manifest)
    except (TypeError, ValueError) as error:
        raise TypeError(f"the metadata must hold JSON values only (numbers, strings, lists, dicts): {error}") from None
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"cannot save a checkpoint to {folder}: it is a file, not a folder")
    tensors = {name: t.detach().to("cpu").clone() for name, t in state.items() if name not in aliases}
    folder.mkdir(parents=True, exist_ok=True)
    # 1. the weights, whole, under a pending name that the current manifest does not use
    writing = folder / f".{WEIGHTS}.{uuid.uuid4().hex}.tmp"
    try:
        save_file(tensors, writing, metadata={"format": "pt"})
        manifest["weights_sha256"] = sha256_file(writing)
        pending = folder / _pending_name(manifest["weights_sha256"])
        os.replace(writing, pending)
    finally:
        writing.unlink(missing_ok=True)
    manifest["manifest_sha256"] = manifest_checksum(manifest)
    committed = False
    writing = folder / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
    try:
        writing.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        # 2. the commit point: the new manifest replaces the old one in one rename
        os.replace(writing, folder / MANIFEST)
        committed = True
        # 3. the weights move into place (``load`` finishes this step if it was cut short)
        os.replace(pending, folder / WEIGHTS)
    finally:
        if not committed:  # the previous checkpoint stays; its weights file was never touched
            pending.unlink(missing_ok=True)
            writing.unlink(missing_ok=True)
    for stale in folder.glob(".model-*.safetensors"):  # left by saves that were killed
        stale.unlink(missing_ok=True)
    return folder


def read_manifest(path: str | Path) -> dict:
    """The ``checkpoint.json`` of the checkpoint folder ``path``: architecture, config, tokenizer, metadata."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: {MANIFEST} is missing")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{file} is not valid JSON ({error}): the checkpoint is damaged; save it again") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{file} holds a {type(manifest).__name__}, not a checkpoint manifest (a JSON object)")
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{file} has checkpoint format {manifest.get('format')!r}; "
                         f"this fmcourse reads format {FORMAT}")
    missing = [key for key in ("architecture", "config_class", "config", "aliases", "tokenizer", "weights_sha256")
               if key not in manifest]
    if missing:
        raise ValueError(f"{file} lacks the entries {missing}: the checkpoint is damaged; save it again")
    if "manifest_sha256" in manifest and manifest["manifest_sha256"] != manifest_checksum(manifest):
        raise ValueError(
            f"{file} was edited after it was saved: its architecture, config or tokenizer no longer match its "
            f"checksum (manifest_sha256), so the weights would be read with the wrong settings; save the model "
            f"again instead of editing {MANIFEST} (only its metadata may be edited)")
    return manifest


def _weights_file(folder: Path, manifest: dict) -> Path:
    """The weights file of the manifest: ``model.safetensors``, or the pending file of a save that was
    cut short after its commit (moved into place here when the folder is writable)."""
    weights = folder / WEIGHTS
    if weights.is_file() and sha256_file(weights) == manifest["weights_sha256"]:
        return weights
    pending = folder / _pending_name(manifest["weights_sha256"])
    if pending.is_file() and sha256_file(pending) == manifest["weights_sha256"]:
        try:
            os.replace(pending, weights)
            return weights
        except OSError:
            return pending
    if not weights.is_file():
        raise FileNotFoundError(f"{folder} has {MANIFEST} but no {WEIGHTS}: the checkpoint is incomplete; save it again")
    raise ValueError(f"{weights} is not the weights file {MANIFEST} was written with (its sha256 differs): "
                     f"the checkpoint was changed or only partly written; save it again")


def load(path: str | Path, model_class: type[nn.Module], *,
         device: torch.device | str = "cpu") -> tuple[nn.Module, Tokenizer | None]:
    """Rebuild the model saved at ``path`` as a ``model_class`` (in eval mode, on ``device``) and its
    tokenizer (None if none was saved).

    Raises ``ValueError`` naming both sides when the checkpoint holds another architecture or
    config, when its weights do not fit the architecture, or when the weights file is not the one
    the manifest was written with.
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    base = _config_base(model_class)
    # The annotation may name a base class (GPT(config: TransformerConfig) built from a GPTConfig).
    config_class = next((c for c in _with_subclasses(base) if c.__qualname__ == manifest["config_class"]), None)
    if manifest["architecture"] != model_class.__qualname__ or config_class is None:
        raise ValueError(
            f"{folder} was saved from class {manifest['architecture']} (config {manifest['config_class']}), not "
            f"from {model_class.__qualname__} (config {base.__qualname__}): load it with {manifest['architecture']}"
        )
    fields = {f.name for f in dataclasses.fields(config_class)}
    if unknown := sorted(set(manifest["config"]) - fields):
        raise ValueError(f"{folder}: config fields {unknown} are not fields of {config_class.__qualname__} "
                         f"(it has {sorted(fields)}); was it saved by another version of the model?")
    try:
        config = config_class(**manifest["config"])
    except TypeError as error:
        raise ValueError(f"{folder}: cannot build {config_class.__qualname__} from {manifest['config']}: "
                         f"{error}") from None

    tensors = load_file(_weights_file(folder, manifest))
    for alias, name in manifest["aliases"].items():
        tensors[alias] = tensors[name]
    model = model_class(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in tensors.items()}
    if expected != found:
        missing, unexpected = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
        problems = [f"missing {missing[:5]}"] if missing else []
        problems += [f"unexpected {unexpected[:5]}"] if unexpected else []
        problems += [f"{name} is {found[name]} in the checkpoint but {shape} in the model"
                     for name, shape in expected.items() if name in found and found[name] != shape][:5]
        raise ValueError(f"{folder}: the weights do not fit {model_class.__qualname__}({config}): "
                         + "; ".join(problems))
    model.load_state_dict(tensors)
    tokenizer = tokenizer_from_dict(manifest["tokenizer"]) if manifest["tokenizer"] is not None else None
    model = model.to(device).eval()
    if tokenizer is not None:
        model.tokenizer_sha256 = tokenizer_fingerprint(tokenizer)  # lets ``sample`` refuse another tokenizer
    return model, tokenizer


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    """SHA-256 of a tokenizer's saved form: equal for the same vocabulary, different otherwise."""
    import hashlib

    text = json.dumps(tokenizer.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
