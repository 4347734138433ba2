"""fmcourse.nn against torch's own modules: attention (both paths), masks, positions, blocks."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmcourse.nn import (
    Block,
    MultiHeadAttention,
    Rotary,
    attention,
    attention_weights,
    causal_mask,
    padding_mask,
    set_fast_attention,
    sinusoidal_positions,
)

MASKS = ["none", "causal", "padding", "causal+padding"]


def random_case(seed):
    """Random sizes, inputs and a right-padded is_token (every sequence keeps at least one token)."""
    g = torch.Generator().manual_seed(seed)
    n_head = int(torch.randint(1, 5, (1,), generator=g))
    head_dim = int(torch.randint(1, 9, (1,), generator=g))
    B, T = int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(1, 12, (1,), generator=g))
    x = torch.randn(B, T, n_head * head_dim, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    is_token = torch.arange(T)[None, :] < lengths[:, None]
    return n_head, x, is_token


def copy_into_torch_mha(ours: MultiHeadAttention) -> nn.MultiheadAttention:
    d_model = ours.qkv.in_features
    theirs = nn.MultiheadAttention(d_model, ours.n_head, batch_first=True, dtype=ours.qkv.weight.dtype)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv.weight)
        theirs.in_proj_bias.copy_(ours.qkv.bias)
        theirs.out_proj.weight.copy_(ours.out.weight)
        theirs.out_proj.bias.copy_(ours.out.bias)
    return theirs


def torch_masks(mask_kind, is_token):
    """nn.MultiheadAttention's masks (True = blocked) for the same situation."""
    T = is_token.size(1)
    attn_mask = ~causal_mask(T) if "causal" in mask_kind else None
    key_padding_mask = ~is_token if "padding" in mask_kind else None
    return attn_mask, key_padding_mask


@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("seed", range(6))
def test_multi_head_attention_paths_equal_torch_forward_and_gradients(seed, mask_kind):
    torch.manual_seed(seed)
    n_head, x, is_token = random_case(seed)
    ours = MultiHeadAttention(x.size(-1), n_head, causal="causal" in mask_kind).double()
    theirs = copy_into_torch_mha(ours)
    attn_mask, key_padding_mask = torch_masks(mask_kind, is_token)
    ours_is_token = is_token if "padding" in mask_kind else None

    x_ref = x.clone().requires_grad_()
    expected, _ = theirs(x_ref, x_ref, x_ref, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False)
    upstream = torch.randn_like(expected)
    (expected * upstream).sum().backward()

    for fast in (True, False):
        ours.zero_grad()
        ours.fast = fast
        x_ours = x.clone().requires_grad_()
        got = ours(x_ours, ours_is_token)
        (got * upstream).sum().backward()
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(x_ours.grad, x_ref.grad)
        torch.testing.assert_close(ours.qkv.weight.grad, theirs.in_proj_weight.grad)
        torch.testing.assert_close(ours.qkv.bias.grad, theirs.in_proj_bias.grad)
        torch.testing.assert_close(ours.out.weight.grad, theirs.out_proj.weight.grad)


@pytest.mark.parametrize("mask_kind", MASKS)
def test_returned_weights_equal_torch_per_head_weights(mask_kind):
    torch.manual_seed(0)
    n_head, x, is_token = random_case(3)
    ours = MultiHeadAttention(x.size(-1), n_head, causal="causal" in mask_kind).double()
    attn_mask, key_padding_mask = torch_masks(mask_kind, is_token)
    out, weights = ours(x, is_token if "padding" in mask_kind else None, need_weights=True)
    expected, expected_weights = copy_into_torch_mha(ours)(
        x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, average_attn_weights=False)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(weights, expected_weights)


@pytest.mark.parametrize("seed", range(4))
def test_attention_function_paths_agree_with_broadcast_masks(seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 3, 5, 4, generator=g), torch.randn(2, 3, 7, 4, generator=g)
    v = torch.randn(2, 3, 7, 6, generator=g)
    for mask in (None, torch.rand(1, 7, generator=g) > 0.3, torch.rand(2, 1, 5, 7, generator=g) > 0.3):
        torch.testing.assert_close(attention(q, k, v, mask, fast=False), attention(q, k, v, mask, fast=True))


@pytest.mark.parametrize("fast", [True, False])
def test_causal_flag_equals_an_explicit_causal_mask(fast):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 4, generator=g) for _ in range(3))
    explicit = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(6, 6, dtype=torch.bool).tril())
    torch.testing.assert_close(attention(q, k, v, causal=True, fast=fast), explicit)
    keys = torch.tensor([True] * 4 + [False] * 2)[None]  # (1, 6): hide the last two keys as well
    both = torch.ones(6, 6, dtype=torch.bool).tril() & keys
    torch.testing.assert_close(attention(q, k, v, keys, causal=True, fast=fast),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=both))
    with pytest.raises(ValueError, match="6 queries and 5 keys"):
        attention(q, k[..., :5, :], v[..., :5, :], causal=True, fast=fast)


def test_teaching_path_is_the_formula():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(4, 8, generator=g, dtype=torch.float64) for _ in range(3))
    by_hand = torch.exp(q @ k.T / math.sqrt(8))
    by_hand = by_hand / by_hand.sum(dim=1, keepdim=True)
    torch.testing.assert_close(attention_weights(q, k), by_hand)
    torch.testing.assert_close(attention(q, k, v, fast=False), by_hand @ v)


def test_a_query_that_may_see_nothing_gets_zero_output_on_both_paths():
    torch.manual_seed(0)
    q = torch.randn(1, 1, 3, 4, requires_grad=True)
    mask = torch.tensor([[False, False, False], [True, False, False], [True, True, True]])
    outputs = [attention(q, q, q, mask, fast=fast) for fast in (True, False)]
    torch.testing.assert_close(*outputs)
    assert torch.equal(outputs[1][0, 0, 0], torch.zeros(4))
    (grad,) = torch.autograd.grad(outputs[1].sum(), q)
    assert torch.isfinite(grad).all()


def test_masked_keys_get_zero_weight_and_rows_sum_to_one():
    torch.manual_seed(0)
    is_token = torch.tensor([[True, True, True, False], [True, True, False, False]])
    mask = padding_mask(is_token) & causal_mask(4)
    weights = attention_weights(torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5), mask)
    assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 4))


@pytest.mark.parametrize("fast", [True, False])
def test_causal_attention_ignores_the_future(fast):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, causal=True).eval()
    mha.fast = fast
    x = torch.randn(2, 10, 16)
    changed = x.clone()
    changed[:, 6:] = torch.randn(2, 4, 16)  # perturb positions 6..9
    before, after = mha(x), mha(changed)
    torch.testing.assert_close(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_padding_is_invisible():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).eval()
    x = torch.randn(1, 6, 8)
    is_token = torch.tensor([[True] * 4 + [False] * 2])
    padded = mha(x, is_token)[:, :4]
    x[:, 4:] = 100.0  # change the padding: the real positions must not notice
    torch.testing.assert_close(mha(x, is_token)[:, :4], padded)
    torch.testing.assert_close(mha(x[:, :4]), padded)  # same as no padding at all


def test_dropout_only_in_training_and_paths_agree_in_expectation_shape():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 5, 8)
    mha.eval()
    torch.testing.assert_close(mha(x), mha(x))
    mha.train()
    assert not torch.allclose(mha(x), mha(x))


def test_set_fast_attention_switches_every_layer():
    model = nn.Sequential(Block(8, 2), Block(8, 2))
    set_fast_attention(model, False)
    assert [m.attn.fast for m in model] == [False, False]
    set_fast_attention(model, True)
    assert [m.attn.fast for m in model] == [True, True]


def test_bad_input_errors_name_the_numbers():
    with pytest.raises(ValueError, match=r"d_model=10 is not divisible by n_head=4"):
        MultiHeadAttention(10, 4)
    q = torch.randn(2, 3, 5, 4)
    with pytest.raises(ValueError, match=r"\(5, 6\).*\(2, 3, 5, 5\)"):
        attention(q, q, q, torch.ones(5, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(5, 6\).*\(2, 3, 5, 5\)"):
        attention(q, q, q, torch.ones(5, 6, dtype=torch.bool), fast=False)
    with pytest.raises(ValueError, match=r"\(5,\) does not broadcast"):
        attention(q, q, q, torch.ones(5, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        attention(q, q, q, torch.ones(5, 5))
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        mha(torch.randn(2, 3, 8), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(batch, length, 8\).*\(2, 3, 6\)"):
        mha(torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match="bool"):
        padding_mask(torch.ones(2, 3))


def test_sinusoidal_positions_follow_the_paper():
    length, dim = 12, 10
    table = sinusoidal_positions(length, dim)
    for pos in range(length):
        for i in range(dim // 2):
            angle = pos / 10_000 ** (2 * i / dim)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 5)


def test_rotary_is_complex_multiplication_and_depends_on_offsets_only():
    torch.manual_seed(0)
    head_dim, T = 8, 16
    rotary = Rotary(head_dim, T)
    x = torch.randn(2, T, head_dim, dtype=torch.float64)
    # reference: pair (x_i, x_{i+half}) as a complex number, multiplied by e^{i p w_i}
    half = head_dim // 2
    z = torch.complex(x[..., :half], x[..., half:])
    w = 10_000 ** (-torch.arange(half, dtype=torch.float64) * 2 / head_dim)
    rotated = z * torch.polar(torch.ones(T, half, dtype=torch.float64), torch.arange(T)[:, None] * w)
    torch.testing.assert_close(rotary(x), torch.cat([rotated.real, rotated.imag], -1).to(x.dtype), atol=1e-6, rtol=1e-6)
    # the score between positions m and n depends on m - n only
    q, k = torch.randn(head_dim), torch.randn(head_dim)
    at = lambda v: rotary(v.expand(T, head_dim))  # the same vector at every position
    scores = at(q) @ at(k).T
    torch.testing.assert_close(scores[5, 2], scores[12, 9])
    torch.testing.assert_close(scores[3, 3], q @ k)
    with pytest.raises(ValueError, match="even"):
        Rotary(7, 4)
    with pytest.raises(ValueError, match="length 17.*16"):
        rotary(torch.randn(17, head_dim))


@pytest.mark.parametrize("mask_kind", MASKS)
def test_block_equals_torch_pre_norm_encoder_layer(mask_kind):
    torch.manual_seed(0)
    d_model, n_head = 16, 4
    ours = Block(d_model, n_head, causal="causal" in mask_kind).double().eval()
    theirs = nn.TransformerEncoderLayer(d_model, n_head, 4 * d_model, dropout=0.0, batch_first=True, norm_first=True,
                                        activation=lambda x: F.gelu(x, approximate="tanh"), dtype=torch.float64).eval()
    with torch.no_grad():
        theirs.self_attn.load_state_dict(copy_into_torch_mha(ours.attn).state_dict())
        for mine, other in ((ours.norm1, theirs.norm1), (ours.norm2, theirs.norm2),
                            (ours.mlp.fc, theirs.linear1), (ours.mlp.proj, theirs.linear2)):
            nn.init.normal_(mine.weight)  # move LayerNorm away from the identity so the test can fail
            other.weight.copy_(mine.weight)
            nn.init.normal_(mine.bias)
            other.bias.copy_(mine.bias)
    x = torch.randn(3, 7, d_model, dtype=torch.float64)
    is_token = torch.tensor([[True] * 7, [True] * 5 + [False] * 2, [True] * 2 + [False] * 5])
    attn_mask, key_padding_mask = torch_masks(mask_kind, is_token)
    expected = theirs(x, src_mask=attn_mask, src_key_padding_mask=key_padding_mask)
    got = ours(x, is_token if "padding" in mask_kind else None)
    real = is_token if "padding" in mask_kind else torch.ones_like(is_token)
    torch.testing.assert_close(got[real], expected[real])  # torch may zero the padded rows on its fast path


def test_mean_over_tokens_ignores_padding():
    from fmcourse.nn import mean_over_tokens

    hidden = torch.randn(2, 4, 3)
    is_token = torch.tensor([[True, True, False, False], [True, True, True, True]])
    pooled = mean_over_tokens(hidden, is_token)
    assert torch.allclose(pooled[0], hidden[0, :2].mean(0)) and torch.allclose(pooled[1], hidden[1].mean(0))
    assert torch.allclose(mean_over_tokens(hidden), hidden.mean(1))
