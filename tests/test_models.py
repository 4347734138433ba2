"""The GPT and the encoder: shapes, loss at initialisation, masking, tying, generation, costs, errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from fmcourse import checkpoints, viz, widgets
from fmcourse.models import GPT, Encoder, EncoderConfig, GPTConfig, forward_flops, parameter_counts
from fmcourse.nn import set_fast_attention
from fmcourse.train import _cannot_compile, compile_model, fit, supervised

POSITIONAL = ["learned", "sinusoidal", "rotary"]


def tiny(cls=GPT, **overrides):
    config_cls = GPTConfig if cls is GPT else EncoderConfig
    sizes = dict(vocab_size=23, context_length=16, n_layer=2, n_head=2, d_model=16) | overrides
    torch.manual_seed(0)
    return cls(config_cls(**sizes)).eval()


@pytest.mark.parametrize("vocab_size", [11, 100, 1000])
def test_gpt_shapes_and_loss_at_initialisation_close_to_log_vocab(vocab_size):
    model = tiny(vocab_size=vocab_size, context_length=32, d_model=64, n_head=4)
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, vocab_size, (8, 32), generator=g)
    targets = torch.randint(0, vocab_size, (8, 32), generator=g)
    logits = model(idx)
    assert logits.shape == (8, 32, vocab_size)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten()).item()
    assert abs(loss - math.log(vocab_size)) < 0.1, f"loss {loss:.3f} at init, ln(V) = {math.log(vocab_size):.3f}"


@pytest.mark.parametrize("positional", POSITIONAL)
@pytest.mark.parametrize("fast", [True, False])
def test_gpt_is_causal_future_tokens_change_nothing_before_them(positional, fast):
    model = set_fast_attention(tiny(positional=positional), fast)
    idx = torch.randint(0, 23, (3, 12), generator=torch.Generator().manual_seed(0))
    changed = idx.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 23
    before, after = model(idx), model(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7:], after[:, 7:])


@pytest.mark.parametrize("positional", POSITIONAL)
def test_encoder_sees_both_sides_and_ignores_padding(positional):
    model = tiny(Encoder, positional=positional)
    idx = torch.randint(0, 23, (1, 10), generator=torch.Generator().manual_seed(0))
    changed = idx.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 23
    assert not torch.allclose(model(idx)[:, :7], model(changed)[:, :7])  # bidirectional
    padded = torch.cat([idx, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    is_token = torch.arange(14)[None] < 10
    torch.testing.assert_close(model(padded, is_token)[:, :10], model(idx))


@pytest.mark.parametrize("cls", [GPT, Encoder])
@pytest.mark.parametrize("positional", POSITIONAL)
def test_fast_and_teaching_paths_agree_forward_and_gradients(cls, positional):
    model = tiny(cls, positional=positional).double()
    idx = torch.randint(0, 23, (2, 9), generator=torch.Generator().manual_seed(0))
    results = []
    for fast in (True, False):
        set_fast_attention(model, fast)
        model.zero_grad()
        logits = model(idx, torch.ones_like(idx, dtype=torch.bool))
        logits.square().mean().backward()
        results.append((logits, [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0])
    for fast_grad, teaching_grad in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(fast_grad, teaching_grad)


@pytest.mark.parametrize("cls", [GPT, Encoder])
@pytest.mark.parametrize("positional", POSITIONAL)
def test_head_is_tied_and_parameter_counts_add_up(cls, positional):
    model = tiny(cls, positional=positional)
    assert model.head.weight is model.token_embedding.weight
    assert sum(parameter_counts(model.config).values()) == sum(p.numel() for p in model.parameters())
    assert isinstance(model.config, GPTConfig if cls is GPT else EncoderConfig)


def test_forward_flops_equal_torch_flop_counter():
    model = set_fast_attention(tiny(context_length=20, d_model=32, n_head=4, n_layer=3), False)
    idx = torch.randint(0, 23, (3, 13))
    with FlopCounterMode(display=False) as counter:
        model(idx)
    assert counter.get_total_flops() == 3 * sum(forward_flops(model.config, 13).values())
    with pytest.raises(ValueError, match="between 1 and the context length 20, got 21"):
        forward_flops(model.config, 21)


def test_attention_maps_shapes_rows_and_causality():
    model = tiny()
    idx = torch.randint(0, 23, (3, 10))
    maps = model.attention_maps(idx)
    assert maps.shape == (2, 3, 2, 10, 10)  # (layers, batch, heads, queries, keys)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 3, 2, 10))
    assert torch.equal(maps.triu(1), torch.zeros_like(maps))


def test_greedy_generation_follows_the_argmax_and_keeps_the_context():
    model = tiny(context_length=8)
    prompt = torch.randint(0, 23, (2, 5), generator=torch.Generator().manual_seed(0))
    out = model.generate(prompt, max_new_tokens=6, temperature=0)
    assert out.shape == (2, 11) and torch.equal(out[:, :5], prompt)
    expected = prompt
    for _ in range(6):  # reference: a plain loop over the last 8 tokens
        expected = torch.cat([expected, model(expected[:, -8:])[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, expected)
    top1 = model.generate(prompt, 6, temperature=1.0, top_k=1)
    assert torch.equal(top1, expected)


def test_sampling_is_seeded_and_top_k_restricts_choices():
    model = tiny()
    prompt = torch.zeros(64, 1, dtype=torch.long)
    first = model.generate(prompt, 1, top_k=3, generator=torch.Generator().manual_seed(5))
    again = model.generate(prompt, 1, top_k=3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, again)
    allowed = model(prompt[:1])[0, -1].topk(3).indices
    assert set(first[:, 1].tolist()) <= set(allowed.tolist())
    with pytest.raises(ValueError, match="top_k must be between 1 and vocab_size=23, got 30"):
        model.generate(prompt, 1, top_k=30)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(prompt, 1, temperature=-1)


def test_a_tiny_gpt_memorises_a_batch_with_the_course_training_loop():
    model = tiny(d_model=32)
    idx = torch.randint(0, 23, (4, 16), generator=torch.Generator().manual_seed(0))
    batch = (idx[:, :-1], idx[:, 1:])
    history = fit(model, [batch], supervised(), steps=60, lr=1e-2, device="cpu", plot=False, progress=False)
    assert history.train_loss[0] > 2.5 and history.train_loss[-1] < 0.1


def test_bad_input_errors_name_the_numbers():
    with pytest.raises(ValueError, match="d_model=30 is not divisible by n_head=4"):
        tiny(d_model=30, n_head=4)
    with pytest.raises(ValueError, match="positional"):
        GPTConfig(vocab_size=5, context_length=4, positional="relative")
    with pytest.raises(ValueError, match="n_layer must be a positive int, got 0"):
        GPTConfig(vocab_size=5, context_length=4, n_layer=0)
    model = tiny()
    with pytest.raises(ValueError, match="length 17 is longer than the context length 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 23\).*from -1 to 3"):
        model(torch.tensor([[-1, 3]]))
    with pytest.raises(ValueError, match=r"\[0, 23\).*from 0 to 23"):
        model(torch.tensor([[0, 23]]))
    with pytest.raises(TypeError, match="integer"):
        model(torch.zeros(1, 4))
    with pytest.raises(TypeError, match="integer"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"is_token.*\(1, 4\).*\(1, 5\)"):
        tiny(Encoder)(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 5, dtype=torch.bool))


@pytest.mark.parametrize("cls", [GPT, Encoder])
def test_checkpoint_round_trip_keeps_config_class_tying_and_outputs(cls, tmp_path):
    model = tiny(cls, positional="rotary")
    idx = torch.randint(0, 23, (2, 9))
    loaded, _ = checkpoints.load(checkpoints.save(model, tmp_path / "m"), cls)
    assert type(loaded.config) is type(model.config) and loaded.config == model.config
    assert loaded.head.weight is loaded.token_embedding.weight
    torch.testing.assert_close(loaded(idx), model(idx))


def test_attention_plots_show_the_models_own_weights():
    import matplotlib

    matplotlib.use("Agg")
    model = tiny()
    idx = torch.randint(0, 23, (10,))
    maps = model.attention_maps(idx[None])[:, 0]  # (layers, heads, T, T)
    vocab = [f"t{i}" for i in range(23)]
    torch.testing.assert_close(widgets.draw_attention(model, idx, layer=1, head=1, vocab=vocab), maps[1, 1])
    assert len(viz.attention_grid(maps, [vocab[i] for i in idx]).axes) == 2 * 2
    with pytest.raises(ValueError, match="layers 0..1 and heads 0..1, got layer 2"):
        widgets.draw_attention(model, idx, layer=2)
    with pytest.raises(ValueError, match=r"10 positions but 3 labels"):
        viz.attention_grid(maps, ["a", "b", "c"])
    explorer = widgets.attention_explorer(model, {"first": idx, "second": idx.flip(0)}, vocab)
    assert [c.description for c in explorer.children[:3]] == ["input", "layer", "head"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_on_both_paths():
    model = tiny(d_model=32)
    idx = torch.randint(0, 23, (4, 16))
    expected = model(idx)
    model.cuda()
    for fast in (True, False):
        set_fast_attention(model, fast)
        torch.testing.assert_close(model(idx.cuda()).cpu(), expected, atol=1e-4, rtol=1e-4)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            torch.testing.assert_close(model(idx.cuda()).float().cpu(), expected, atol=0.05, rtol=0.05)


def test_gpt_log_likelihood_is_the_negative_summed_cross_entropy():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, context_length=12, n_layer=2, n_head=2, d_model=16)).eval()
    idx = torch.randint(0, 11, (3, 9))
    logits = model(idx)
    expected = -F.cross_entropy(logits[:, :-1].reshape(-1, 11), idx[:, 1:].reshape(-1), reduction="none").view(3, 8).sum(1)
    assert torch.allclose(model.log_likelihood(idx), expected, atol=1e-5)
    with pytest.raises(ValueError, match="length >= 2"):
        model.log_likelihood(idx[:, :1])


@pytest.mark.skipif(_cannot_compile(torch.device("cpu")) is not None, reason="torch.compile cannot work here")
def test_compiled_and_uncompiled_gpt_give_the_same_logits():
    model = tiny(n_layer=1)
    idx = torch.randint(0, 23, (2, 16), generator=torch.Generator().manual_seed(1))
    names = list(model.state_dict())
    with torch.no_grad():  # the forward graph only: compiling the backward too doubles the test's time
        expected = model(idx)
        assert compile_model(model)
        torch.testing.assert_close(model(idx), expected, atol=1e-5, rtol=1e-5)
    assert list(model.state_dict()) == names, "compiling keeps the state-dict names (checkpoints load unchanged)"
