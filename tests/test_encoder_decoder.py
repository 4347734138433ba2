"""Cross-attention, the decoder block and the encoder–decoder, against torch's own modules."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmcourse import checkpoints
from fmcourse.models import EncoderDecoder, EncoderDecoderConfig
from fmcourse.nn import Block, CrossAttention, causal_mask, set_fast_attention


def copy_into_torch_mha(ours: CrossAttention) -> nn.MultiheadAttention:
    d_model = ours.q.in_features
    theirs = nn.MultiheadAttention(d_model, ours.n_head, batch_first=True, dtype=ours.q.weight.dtype)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.q.weight, ours.kv.weight]))  # q, k, v stacked
        theirs.in_proj_bias.copy_(torch.cat([ours.q.bias, ours.kv.bias]))
        theirs.out_proj.weight.copy_(ours.out.weight)
        theirs.out_proj.bias.copy_(ours.out.bias)
    return theirs


def case(seed, d_model=12, B=3, Tq=5, Tk=7):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, Tq, d_model, generator=g, dtype=torch.float64)
    memory = torch.randn(B, Tk, d_model, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, Tk + 1, (B,), generator=g)
    return x, memory, torch.arange(Tk)[None, :] < lengths[:, None]


@pytest.mark.parametrize("padding", [False, True])
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_cross_attention_equals_torch_multihead_attention(seed, fast, padding):
    torch.manual_seed(seed)
    ours = CrossAttention(12, 3).double()
    ours.fast = fast
    theirs = copy_into_torch_mha(ours)
    x, memory, is_token = case(seed)
    x.requires_grad_()
    expected, expected_weights = theirs(x, memory, memory, key_padding_mask=~is_token if padding else None,
                                        average_attn_weights=False)
    got = ours(x, memory, is_token if padding else None)
    torch.testing.assert_close(got, expected)
    (grad_ours,) = torch.autograd.grad(got.sum(), x)
    (grad_theirs,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(grad_ours, grad_theirs)
    _, weights = ours(x, memory, is_token if padding else None, need_weights=True)
    assert weights.shape == (3, 3, 5, 7)
    torch.testing.assert_close(weights, expected_weights)


def test_cross_attention_ignores_padded_memory_and_refuses_bad_shapes():
    torch.manual_seed(0)
    ours = CrossAttention(8, 2)
    x, memory = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    is_token = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    changed = memory.clone()
    changed[1, 3:] = torch.randn(3, 8)
    torch.testing.assert_close(ours(x, memory, is_token), ours(x, changed, is_token))
    assert not torch.allclose(ours(x, memory), ours(x, changed))
    with pytest.raises(ValueError, match=r"memory of shape \(2, memory length, 8\)"):
        ours(x, torch.randn(2, 6, 9))
    with pytest.raises(ValueError, match=r"memory_is_token.*\(2, 6\)"):
        ours(x, memory, is_token[:, :5])
    with pytest.raises(ValueError, match="divisible"):
        CrossAttention(10, 3)


@pytest.mark.parametrize("padding", [False, True])
def test_cross_block_equals_torch_pre_norm_decoder_layer(padding):
    torch.manual_seed(0)
    d_model, n_head = 16, 4
    ours = Block(d_model, n_head, causal=True, cross=True).double().eval()
    theirs = nn.TransformerDecoderLayer(d_model, n_head, 4 * d_model, dropout=0.0, batch_first=True, norm_first=True,
                                        activation=lambda x: F.gelu(x, approximate="tanh"), dtype=torch.float64).eval()
    with torch.no_grad():
        for attn, torch_attn in ((ours.attn, theirs.self_attn), (ours.cross_attn, theirs.multihead_attn)):
            for name, p in attn.named_parameters():
                nn.init.normal_(p, std=0.3)  # random biases too, so that every term can fail the test
        theirs.self_attn.in_proj_weight.copy_(ours.attn.qkv.weight)
        theirs.self_attn.in_proj_bias.copy_(ours.attn.qkv.bias)
        theirs.self_attn.out_proj.weight.copy_(ours.attn.out.weight)
        theirs.self_attn.out_proj.bias.copy_(ours.attn.out.bias)
        theirs.multihead_attn.load_state_dict(copy_into_torch_mha(ours.cross_attn).state_dict())
        for mine, other in ((ours.norm1, theirs.norm1), (ours.norm_cross, theirs.norm2), (ours.norm2, theirs.norm3),
                            (ours.mlp.fc, theirs.linear1), (ours.mlp.proj, theirs.linear2)):
            nn.init.normal_(mine.weight)
            other.weight.copy_(mine.weight)
            nn.init.normal_(mine.bias)
            other.bias.copy_(mine.bias)
    x, memory, is_token = case(1, d_model=16, Tq=6, Tk=9)
    expected = theirs(x, memory, tgt_mask=~causal_mask(6), memory_key_padding_mask=~is_token if padding else None)
    for fast in (True, False):
        set_fast_attention(ours, fast)
        got = ours(x, memory=memory, memory_is_token=is_token if padding else None)
        torch.testing.assert_close(got, expected)
    out, (self_weights, cross_weights) = ours(x, need_weights=True, memory=memory)
    torch.testing.assert_close(out, ours(x, memory=memory))
    assert self_weights.shape == (3, n_head, 6, 6) and cross_weights.shape == (3, n_head, 6, 9)


def test_blocks_refuse_a_missing_or_unexpected_memory():
    x, memory = torch.randn(1, 3, 8), torch.randn(1, 4, 8)
    with pytest.raises(ValueError, match="cross=True"):
        Block(8, 2, cross=True)(x)
    with pytest.raises(ValueError, match="no cross-attention"):
        Block(8, 2)(x, memory=memory)


def tiny(**overrides):
    sizes = dict(vocab_size=13, context_length=12, n_layer=2, n_head=2, d_model=16) | overrides
    torch.manual_seed(0)
    return EncoderDecoder(EncoderDecoderConfig(**sizes)).eval()


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_encoder_decoder_shapes_causality_and_source_padding(positional):
    model = tiny(positional=positional, n_decoder_layer=3)
    g = torch.Generator().manual_seed(1)
    source, target = torch.randint(0, 13, (2, 9), generator=g), torch.randint(0, 13, (2, 6), generator=g)
    logits = model(source, target)
    assert logits.shape == (2, 6, 13) and len(model.decoder_blocks) == 3
    # the decoder is causal: changing target token 3 leaves positions 0..2 alone
    changed = target.clone()
    changed[:, 3] = (changed[:, 3] + 1) % 13
    after = model(source, changed)
    torch.testing.assert_close(logits[:, :3], after[:, :3])
    assert not torch.allclose(logits[:, 3:], after[:, 3:])
    # every target position reads the whole source ...
    other_source = source.clone()
    other_source[:, -1] = (other_source[:, -1] + 1) % 13
    assert (model(other_source, target) - logits).abs().amax(dim=(0, 2)).min() > 1e-6
    # ... except its padding
    is_token = torch.tensor([[True] * 9, [True] * 5 + [False] * 4])
    padded_changed = source.clone()
    padded_changed[1, 5:] = (padded_changed[1, 5:] + 1) % 13
    torch.testing.assert_close(model(source, target, is_token)[1], model(padded_changed, target, is_token)[1])
    maps = model.cross_attention_maps(source, target, is_token)
    assert maps.shape == (3, 2, 2, 6, 9)
    torch.testing.assert_close(maps.sum(-1), torch.ones(3, 2, 2, 6))
    assert (maps[:, 1, :, :, 5:] == 0).all()


def test_encoder_decoder_fast_and_teaching_paths_agree_and_head_is_tied():
    model = tiny()
    source, target = torch.randint(0, 13, (3, 8)), torch.randint(0, 13, (3, 5))
    fast = model(source, target)
    torch.testing.assert_close(set_fast_attention(model, False)(source, target), fast, atol=1e-5, rtol=1e-5)
    assert model.head.weight is model.token_embedding.weight


def test_encoder_decoder_learns_to_reverse_and_generates_greedily():
    model = tiny(vocab_size=12, context_length=8, d_model=32)
    g = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(300):
        source = torch.randint(2, 12, (64, 5), generator=g)
        target = torch.cat([torch.ones(64, 1, dtype=torch.long), source.flip(1)], 1)  # start token 1
        loss = F.cross_entropy(model(source, target[:, :-1]).flatten(0, 1), target[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    source = torch.randint(2, 12, (200, 5), generator=g)
    out = model.generate(source, start_token=1, max_new_tokens=5)
    assert out.shape == (200, 6) and (out[:, 0] == 1).all()
    assert (out[:, 1:] == source.flip(1)).float().mean() > 0.9
    # greedy: each generated token is the argmax of the model given the previous ones
    logits = model(source, out[:, :-1])
    torch.testing.assert_close(logits.argmax(-1), out[:, 1:])


def test_encoder_decoder_bad_input_and_checkpoint_round_trip(tmp_path):
    model = tiny()
    with pytest.raises(ValueError, match="source sequence of length 13 is longer than the context length 12"):
        model(torch.zeros(1, 13, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target ids must be in \[0, 13\)"):
        model(torch.zeros(1, 3, dtype=torch.long), torch.tensor([[1, 13]]))
    with pytest.raises(TypeError, match="source ids must be a \\(batch, length\\) integer tensor"):
        model(torch.zeros(1, 3), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="rotary"):
        EncoderDecoderConfig(vocab_size=5, context_length=4, positional="rotary")
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(torch.zeros(1, 3, dtype=torch.long), start_token=1, max_new_tokens=12)
    source, target = torch.randint(0, 13, (2, 7)), torch.randint(0, 13, (2, 4))
    checkpoints.save(model, tmp_path / "model")
    loaded, _ = checkpoints.load(tmp_path / "model", EncoderDecoder)
    assert isinstance(loaded, EncoderDecoder) and loaded.config == model.config
    assert loaded.head.weight is loaded.token_embedding.weight
    torch.testing.assert_close(loaded(source, target), model(source, target))
