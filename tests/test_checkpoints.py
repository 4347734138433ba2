import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from fmcourse import checkpoints
from fmcourse.checkpoints import MANIFEST, WEIGHTS, load, read_manifest, save
from fmcourse.tokenizers import BPETokenizer, CharTokenizer


@dataclass
class TinyConfig:
    vocab_size: int = 11
    width: int = 8
    layers: int = 2


class TinyLM(nn.Module):
    """A small language model with tied input/output weights and a buffer, like a GPT."""

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.width)
        self.blocks = nn.Sequential(*[nn.Linear(config.width, config.width) for _ in range(config.layers)])
        self.head = nn.Linear(config.width, config.vocab_size, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("scale", torch.tensor(0.5))

    def forward(self, ids):
        return self.head(torch.tanh(self.blocks(self.embed(ids))) * self.scale)


@dataclass
class OtherConfig:
    width: int = 8


class OtherNet(nn.Module):
    def __init__(self, config: OtherConfig):
        super().__init__()
        self.config = config
        self.layer = nn.Linear(config.width, config.width)


@dataclass
class StackConfig:
    width: int = 4


class DeepConfig(StackConfig):
    """A config subclass, as GPTConfig is of TransformerConfig."""


class Stack(nn.Module):
    def __init__(self, config: StackConfig):
        super().__init__()
        self.config = config
        self.layer = nn.Linear(config.width, config.width)


class Deep(Stack):
    """Inherits __init__, whose annotation names the base config."""


class Wide(Stack):
    pass


class Unannotated(nn.Module):
    def __init__(self, config):
        super().__init__()


def trained_model(seed=0, **config):
    torch.manual_seed(seed)
    model = TinyLM(TinyConfig(**config))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # not the initial weights: a round trip must carry them
        model.scale.fill_(0.75)
    return model


def test_round_trip_restores_weights_config_tokenizer_and_outputs(tmp_path):
    model = trained_model(width=12)
    tokenizer = CharTokenizer.train("abcdefghij", specials=["<mask>"])
    save(model, tmp_path / "ckpt", tokenizer=tokenizer, metadata={"steps": 300, "val_loss": 1.25})
    loaded, loaded_tokenizer = load(tmp_path / "ckpt", TinyLM)
    assert loaded.config == model.config and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded.head.weight is loaded.embed.weight  # the tie survives
    ids = torch.randint(0, 11, (3, 5))
    assert torch.equal(model.eval()(ids), loaded(ids))
    assert loaded_tokenizer.to_dict() == tokenizer.to_dict()
    manifest = read_manifest(tmp_path / "ckpt")
    assert manifest["metadata"] == {"steps": 300, "val_loss": 1.25}
    assert manifest["config"] == {"vocab_size": 11, "width": 12, "layers": 2}
    assert manifest["parameters"] == sum(p.numel() for p in model.parameters())
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [MANIFEST, WEIGHTS]


def test_weights_are_plain_safetensors(tmp_path):
    from safetensors import safe_open

    save(trained_model(), tmp_path, tokenizer=BPETokenizer())
    with safe_open(tmp_path / WEIGHTS, framework="pt") as file:
        names = set(file.keys())
    assert names == {"embed.weight", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias", "scale"}
    assert read_manifest(tmp_path)["aliases"] == {"head.weight": "embed.weight"}
    _, tokenizer = load(tmp_path, TinyLM)
    assert isinstance(tokenizer, BPETokenizer)


def test_a_checkpoint_without_tokenizer_loads_as_none(tmp_path):
    save(trained_model(), tmp_path)
    assert load(tmp_path, TinyLM)[1] is None


def test_loading_another_architecture_is_refused(tmp_path):
    save(trained_model(), tmp_path)
    with pytest.raises(ValueError) as error:
        load(tmp_path, OtherNet)
    message = str(error.value)
    assert "TinyLM" in message and "TinyConfig" in message and "OtherNet" in message


def test_subclasses_sharing_an_init_load_by_their_own_names(tmp_path):
    model = Deep(DeepConfig(width=6))
    save(model, tmp_path)
    loaded, _ = load(tmp_path, Deep)
    assert type(loaded.config) is DeepConfig and loaded.config.width == 6
    assert torch.equal(loaded.layer.weight, model.layer.weight)
    with pytest.raises(ValueError, match="saved from class Deep .config DeepConfig., not from Wide"):
        load(tmp_path, Wide)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    save(trained_model(width=8), tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["config"]["width"] = 16  # e.g. a config edited by hand, in a manifest without a checksum
    del manifest["manifest_sha256"]
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"embed.weight is \(11, 8\) in the checkpoint but \(11, 16\) in the model"):
        load(tmp_path, TinyLM)


def test_unknown_config_fields_are_refused(tmp_path):
    save(trained_model(), tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["config"]["heads"] = 4
    del manifest["manifest_sha256"]
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"\['heads'\] are not fields of TinyConfig"):
        load(tmp_path, TinyLM)


def test_weights_from_another_save_are_detected(tmp_path):
    save(trained_model(seed=0), tmp_path / "a")
    save(trained_model(seed=1), tmp_path / "b")
    (tmp_path / "b" / WEIGHTS).replace(tmp_path / "a" / WEIGHTS)
    with pytest.raises(ValueError, match="sha256 differs"):
        load(tmp_path / "a", TinyLM)


def test_a_failed_save_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    save(trained_model(seed=0), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as file:
            file.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save(trained_model(seed=1), tmp_path)
    monkeypatch.undo()
    with pytest.raises(TypeError, match="JSON serializable"):
        save(trained_model(seed=1), tmp_path, metadata={"when": object()})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary files either
    assert torch.equal(load(tmp_path, TinyLM)[0].embed.weight, trained_model(seed=0).embed.weight)


def test_models_without_a_dataclass_config_are_refused(tmp_path):
    with pytest.raises(TypeError, match="dataclass instance"):
        save(nn.Linear(2, 2), tmp_path)
    save(trained_model(), tmp_path)
    with pytest.raises(TypeError, match="annotated"):
        load(tmp_path, Unannotated)


def test_a_folder_without_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load(tmp_path, TinyLM)


def test_load_onto_the_course_device(tmp_path):
    from fmcourse import env

    save(trained_model(), tmp_path)
    model, _ = load(tmp_path, TinyLM, device=env.get_device())
    assert next(model.parameters()).device.type == env.get_device().type
