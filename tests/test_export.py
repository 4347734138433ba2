"""Export to Hugging Face: the exported GPT2LMHeadModel computes the package's logits."""

import builtins

import pytest
import torch

from fmcourse.export import TOKENIZER_FILE, gpt2_state_dict, to_huggingface
from fmcourse.models import GPT, Encoder, EncoderConfig, GPTConfig
from fmcourse.tokenizers import CharTokenizer, load_tokenizer

transformers = pytest.importorskip("transformers", reason="the optional extra fmcourse[hf] is not installed")


def trained_looking_gpt(**overrides) -> GPT:
    """A small GPT whose weights are all far from their initial values (biases and LayerNorms too),
    so a weight mapped to the wrong place cannot go unnoticed."""
    sizes = dict(vocab_size=37, context_length=24, n_layer=2, n_head=4, d_model=32) | overrides
    torch.manual_seed(0)
    model = GPT(GPTConfig(**sizes))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model.eval()


def test_exported_logits_equal_the_package_logits():
    model = trained_looking_gpt()
    hf_model = to_huggingface(model)
    idx = torch.randint(0, 37, (3, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(idx)
        theirs = hf_model(idx).logits
    assert isinstance(hf_model, transformers.GPT2LMHeadModel)
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)


def test_save_pretrained_folder_loads_back_elsewhere(tmp_path):
    model = trained_looking_gpt(n_layer=3, d_model=48, n_head=3)
    tokenizer = CharTokenizer.train("hello world")
    to_huggingface(model, tmp_path / "hf", tokenizer=tokenizer)
    loaded = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    idx = torch.randint(0, 37, (2, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx).logits, model(idx), rtol=1e-4, atol=1e-4)
    assert loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr(), "the head stays tied"
    assert load_tokenizer(tmp_path / "hf" / TOKENIZER_FILE).to_dict() == tokenizer.to_dict()


def test_generation_agrees_greedy():
    model = trained_looking_gpt()
    hf_model = to_huggingface(model)
    prompt = torch.tensor([[1, 2, 3, 4]])
    ours = model.generate(prompt, max_new_tokens=12, temperature=0)
    theirs = hf_model.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=0,
                               attention_mask=torch.ones_like(prompt))
    assert torch.equal(theirs, ours)


def test_every_weight_is_exported_once():
    model = trained_looking_gpt()
    state = gpt2_state_dict(model)
    ours = sum(p.numel() for p in model.parameters())
    assert sum(t.numel() for t in state.values()) == ours  # the tied head is counted once on both sides


def test_what_gpt2_cannot_represent_is_refused():
    with pytest.raises(ValueError, match="positional='rotary'"):
        to_huggingface(trained_looking_gpt(positional="rotary"))
    encoder = Encoder(EncoderConfig(vocab_size=10, context_length=8, n_layer=1, n_head=2, d_model=8))
    with pytest.raises(TypeError, match="only fmcourse's GPT"):
        to_huggingface(encoder)


def test_a_missing_transformers_is_named(monkeypatch):
    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("No module named 'transformers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(ImportError, match=r"pip install 'fmcourse\[hf\]'"):
        to_huggingface(trained_looking_gpt())
