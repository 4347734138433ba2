"""LoRA adapters: a new adapter changes nothing, merging changes nothing either, only the adapters
learn, the parameter count is rank (in + out), and impossible ranks are refused."""

import copy

import pytest
import torch
from torch import nn

from fmcourse.finetune import add_lora, count_parameters, lora_layers, merge_lora, remove_lora, unmerge_lora
from fmcourse.models import GPT, GPTConfig
from fmcourse.nn import LoRALinear


def small_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=20, context_length=12, n_layer=2, n_head=2, d_model=16)).double()


def tokens(seed=1, batch=3, length=10):
    return torch.randint(0, 20, (batch, length), generator=torch.Generator().manual_seed(seed))


def randomize_adapters(model, seed=2):
    """Give every B a random value, as training would (a zero B would hide mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model):
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g, dtype=layer.lora_B.dtype))


def test_a_new_adapter_leaves_the_outputs_unchanged():
    base = nn.Linear(7, 5).double()
    layer = LoRALinear(copy.deepcopy(base), rank=3, alpha=6)
    x = torch.randn(4, 2, 7, dtype=torch.float64)
    assert torch.equal(layer.lora_B, torch.zeros(5, 3, dtype=torch.float64))
    assert layer.lora_A.abs().sum() > 0, "A starts random, so B gets a gradient from the first step"
    torch.testing.assert_close(layer(x), base(x), rtol=0, atol=0)

    model = small_gpt()
    before = model(tokens())
    add_lora(model, rank=4)
    torch.testing.assert_close(model(tokens()), before, rtol=0, atol=0)


def test_forward_is_the_base_plus_the_scaled_low_rank_product():
    layer = LoRALinear(nn.Linear(6, 4).double(), rank=2, alpha=3)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(5, 6, dtype=torch.float64)
    W, b = layer.base.weight, layer.base.bias
    expected = x @ (W + 3 / 2 * layer.lora_B @ layer.lora_A).T + b
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(layer.delta_weight(), 1.5 * layer.lora_B @ layer.lora_A)


def test_merged_equals_unmerged_and_unmerge_restores_the_weight():
    model = small_gpt()
    add_lora(model, rank=3)
    randomize_adapters(model)
    x = tokens()
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    unmerged = model(x)
    merge_lora(model)
    assert all(layer.merged for layer in lora_layers(model))
    torch.testing.assert_close(model(x), unmerged, rtol=1e-10, atol=1e-10)
    merge_lora(model)  # a second merge changes nothing
    torch.testing.assert_close(model(x), unmerged, rtol=1e-10, atol=1e-10)
    unmerge_lora(model)
    torch.testing.assert_close(model(x), unmerged, rtol=1e-10, atol=1e-10)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, weights[name], rtol=1e-12, atol=1e-12)


def test_remove_gives_back_plain_layers_merged_or_pretrained():
    pretrained = small_gpt()
    x = tokens()
    adapted = copy.deepcopy(pretrained)
    add_lora(adapted, rank=2)
    randomize_adapters(adapted)
    tuned = adapted(x)
    assert not torch.allclose(tuned, pretrained(x)), "random adapters change the function"

    kept = remove_lora(copy.deepcopy(adapted), merge=True)
    assert not lora_layers(kept) and all(type(m.attn.qkv) is nn.Linear for m in kept.blocks)
    torch.testing.assert_close(kept(x), tuned, rtol=1e-10, atol=1e-10)

    thrown_away = remove_lora(adapted)
    torch.testing.assert_close(thrown_away(x), pretrained(x), rtol=0, atol=0)
    assert thrown_away.state_dict().keys() == pretrained.state_dict().keys()


def test_only_adapter_parameters_receive_gradients():
    model = small_gpt()
    names = add_lora(model, rank=2)
    assert names == [f"blocks.{i}.{layer}" for i in range(2) for layer in ("attn.qkv", "attn.out", "mlp.fc", "mlp.proj")]
    randomize_adapters(model)
    model(tokens()).logsumexp(-1).mean().backward()
    for name, p in model.named_parameters():
        if "lora_" in name:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_trainable_counts_match_a_hand_count():
    d, r = 16, 4
    model = small_gpt()
    add_lora(model, rank=r)
    # per block: qkv d -> 3d, out d -> d, fc d -> 4d, proj 4d -> d; an adapter has r (in + out) parameters
    per_block = r * ((d + 3 * d) + (d + d) + (d + 4 * d) + (4 * d + d))
    assert count_parameters(model) == 2 * per_block == 2 * 4 * 16 * 16
    assert count_parameters(model, trainable=False) == count_parameters(small_gpt()) + 2 * per_block

    encoder = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    add_lora(encoder, rank=3, targets=None)
    assert count_parameters(encoder) == 3 * (64 + 32) + 3 * (32 + 10)


@pytest.mark.parametrize("rank", [0, -1, 7, 2.5, True])
def test_impossible_ranks_are_refused(rank):
    with pytest.raises(ValueError, match=r"rank must be an int from 1 to min\(in_features, out_features\) = min\(6, 9\) = 6"):
        LoRALinear(nn.Linear(6, 9), rank=rank)


def test_add_lora_checks_before_changing_anything():
    model = small_gpt()
    with pytest.raises(ValueError, match=r"blocks.0.attn.qkv: rank must .* min\(16, 48\) = 16"):
        add_lora(model, rank=17)
    assert not lora_layers(model) and all(p.requires_grad for p in model.parameters()), "nothing changed"
    with pytest.raises(ValueError, match=r"no nn.Linear layer.*named one of \['query'\].*blocks.0.attn.qkv"):
        add_lora(model, rank=2, targets=("query",))
    add_lora(model, rank=2)
    with pytest.raises(ValueError, match="adapters already"):
        add_lora(model, rank=2)
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.Conv1d(3, 3, 1), rank=1)
    with pytest.raises(ValueError, match="alpha"):
        LoRALinear(nn.Linear(4, 4), rank=1, alpha=0)
