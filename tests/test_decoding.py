"""Decoding: the sampling rules against brute-force references, greedy as the limit of temperature,
the key/value cache against full recomputation, beam search against greedy and exhaustive search."""

import itertools
import math

import pytest
import torch

from fmcourse.decoding import (
    beam_search,
    filter_top_k,
    filter_top_p,
    decoder_log_probs,
    greedy_search,
    lm_log_probs,
    next_token_distribution,
    sample,
    translate,
)
from fmcourse.models import GPT, EncoderDecoder, EncoderDecoderConfig, GPTConfig


def tiny_gpt(positional="learned", context_length=16, vocab_size=11, seed=0):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, context_length=context_length, n_layer=2, n_head=2, d_model=16,
                          positional=positional))
    with torch.no_grad():  # larger weights than at initialisation: sharper, more varied next-token scores
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(20)
    return model.eval()


def random_logits(rows=6, vocab=20, seed=0):
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * 2


def nucleus_reference(probs: list[float], p: float) -> set[int]:
    """The smallest set of most likely tokens whose probabilities sum to at least p, by a plain loop."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, mass = set(), 0.0
    for i in order:
        kept.add(i)
        mass += probs[i]
        if mass >= p:
            break
    return kept


# ---------------------------------------------------------------- sampling rules

def test_top_k_keeps_the_k_largest_and_never_draws_outside_them():
    logits = random_logits()
    for k in (1, 3, 7, 20):
        filtered = filter_top_k(logits, k)
        for row, out in zip(logits, filtered):
            allowed = set(row.topk(k).indices.tolist())
            assert {i for i in range(20) if out[i] > float("-inf")} == allowed
            torch.testing.assert_close(out[list(allowed)], row[list(allowed)])
        probs = next_token_distribution(logits, top_k=k)
        draws = torch.multinomial(probs, 2000, replacement=True, generator=torch.Generator().manual_seed(k))
        for row, drawn in zip(logits, draws):
            assert set(drawn.tolist()) <= set(row.topk(k).indices.tolist())
        if k == 3:  # the kept probabilities are the softmax renormalised over the k tokens
            expected = torch.full_like(logits, float("-inf")).scatter(1, logits.topk(3).indices,
                                                                      logits.topk(3).values).softmax(-1)
            torch.testing.assert_close(probs, expected)


def test_top_p_keeps_the_nucleus_and_never_draws_outside_it():
    logits = random_logits(rows=8, vocab=15, seed=1)
    for p in (0.05, 0.3, 0.5, 0.8, 0.95, 1.0):
        filtered = filter_top_p(logits, p)
        probs = next_token_distribution(logits, top_p=p)
        draws = torch.multinomial(probs, 2000, replacement=True, generator=torch.Generator().manual_seed(3))
        for row, out, drawn in zip(logits, filtered, draws):
            nucleus = nucleus_reference(row.softmax(-1).tolist(), p)
            assert {i for i in range(15) if out[i] > float("-inf")} == nucleus
            assert set(drawn.tolist()) <= nucleus
        assert (filtered > float("-inf")).sum(-1).min() >= 1  # the most likely token is always kept
    assert torch.equal(filter_top_p(logits, 1.0), logits)


def test_temperature_top_k_and_top_p_compose_in_that_order():
    logits = random_logits(rows=4, vocab=12, seed=2)
    probs = next_token_distribution(logits, temperature=0.7, top_k=6, top_p=0.6)
    expected = filter_top_p(filter_top_k(logits / 0.7, 6), 0.6).softmax(-1)
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))


def test_temperature_to_zero_becomes_greedy():
    logits = random_logits(rows=5, vocab=9, seed=4)
    greedy = torch.zeros_like(logits).scatter(1, logits.argmax(-1, keepdim=True), 1.0)
    gaps = [(next_token_distribution(logits, temperature=t) - greedy).abs().max().item() for t in (1.0, 0.3, 0.1, 0.01, 0.001)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-6
    assert torch.equal(next_token_distribution(logits, temperature=0), greedy)


def test_sampling_at_a_tiny_temperature_equals_greedy_decoding():
    model = tiny_gpt()
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    # greedy by hand: the arg-max of a full forward pass at every step
    idx = prompt.clone()
    for _ in range(10):
        idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(sample(model, prompt, 10, temperature=0), idx)
    assert torch.equal(sample(model, prompt, 10, temperature=1e-4, seed=1), idx)
    assert torch.equal(model.generate(prompt, 10, temperature=0), idx)


def test_sampling_is_seeded_and_follows_the_prompt_shape():
    model = tiny_gpt()
    a = sample(model, [1, 2, 3], 8, temperature=1.0, top_p=0.9, seed=5)
    b = sample(model, torch.tensor([1, 2, 3]), 8, temperature=1.0, top_p=0.9, seed=5)
    assert a.shape == (11,) and torch.equal(a, b) and a[:3].tolist() == [1, 2, 3]
    many = [sample(model, [1, 2, 3], 8, seed=s) for s in range(6)]
    assert len({tuple(m.tolist()) for m in many}) > 1
    assert sample(model, torch.tensor([[1, 2], [3, 4]]), 5).shape == (2, 7)


# ---------------------------------------------------------------- key/value cache

@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "rotary"])
def test_the_cache_gives_the_logits_of_a_full_forward_pass(positional):
    model = tiny_gpt(positional)
    idx = torch.randint(0, 11, (2, 16), generator=torch.Generator().manual_seed(0))
    full = model(idx)                             # (2, 16, 11)
    cache = model.new_cache()
    pieces = [model(idx[:, :5], cache=cache)]     # a prompt of 5, then one position at a time,
    pieces.append(model(idx[:, 5:8], cache=cache))  # a chunk of 3,
    pieces += [model(idx[:, t:t + 1], cache=cache) for t in range(8, 16)]  # then single steps
    assert len(cache) == 16
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="cache holds 16 positions: 1 more exceed the context length 16"):
        model(idx[:, :1], cache=cache)


@pytest.mark.parametrize("positional", ["learned", "rotary"])
def test_generation_with_and_without_the_cache_gives_the_same_tokens(positional):
    model = tiny_gpt(positional, context_length=12)
    prompt = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    for settings in ({"temperature": 0}, {"temperature": 1.0, "seed": 3}, {"temperature": 0.8, "top_k": 4, "seed": 7},
                     {"temperature": 1.2, "top_p": 0.7, "seed": 11}):
        # 20 new tokens: past the context of 12, where the window slides and the cache restarts
        cached = sample(model, prompt, 20, use_cache=True, **settings)
        uncached = sample(model, prompt, 20, use_cache=False, **settings)
        assert torch.equal(cached, uncached), settings
    assert torch.equal(model.generate(prompt, 20, temperature=0, use_cache=True),
                       model.generate(prompt, 20, temperature=0, use_cache=False))


def test_the_cache_refuses_what_it_cannot_serve():
    model = tiny_gpt()
    cache = model.new_cache()
    with pytest.raises(ValueError, match="is_token=None"):
        model(torch.tensor([[1, 2]]), torch.tensor([[True, False]]), cache=cache)
    with pytest.raises(TypeError, match="KVCache with 2 layers"):
        model(torch.tensor([[1, 2]]), cache=[])
    model(torch.tensor([[1, 2]]), cache=cache)
    with pytest.raises(ValueError, match="batch of 1 sequences"):
        model(torch.tensor([[1], [2]]), cache=cache)
    from fmcourse.models import Encoder, EncoderConfig
    with pytest.raises(ValueError, match="not causal"):
        Encoder(EncoderConfig(vocab_size=11, context_length=8, n_layer=1, n_head=2, d_model=8)).new_cache()


# ---------------------------------------------------------------- beam search

def gpt_step(model):
    def step_log_probs(prefixes):
        with torch.no_grad():
            return model(prefixes)[:, -1].log_softmax(-1)
    return step_log_probs


def greedy_by_hand(step, start, n, eos_id=None):
    ids, score = list(start), 0.0
    for _ in range(n):
        log_probs = step(torch.tensor([ids]))[0].double()
        token = int(log_probs.argmax())
        ids.append(token)
        score += log_probs[token].item()
        if token == eos_id:
            break
    return ids, score


def sequence_score(step, ids, start_length):
    return sum(step(torch.tensor([ids[:t]]))[0, ids[t]].item() for t in range(start_length, len(ids)))


@pytest.mark.parametrize("eos_id", [None, 3])
def test_beam_size_one_is_greedy(eos_id):
    for seed in range(4):
        step = gpt_step(tiny_gpt(seed=seed))
        ids, score = beam_search(step, [1, 2], beam_size=1, max_new_tokens=10, eos_id=eos_id)[0]
        expected_ids, expected_score = greedy_by_hand(step, [1, 2], 10, eos_id)
        assert ids == expected_ids
        assert score == pytest.approx(expected_score, abs=1e-9)
        assert greedy_search(step, [1, 2], 10, eos_id) == (ids, score)


def test_beam_scores_are_the_log_probabilities_of_the_sequences_best_first():
    step = gpt_step(tiny_gpt(seed=1))
    results = beam_search(step, [1], beam_size=4, max_new_tokens=5)
    assert len(results) == 4 and len({tuple(ids) for ids, _ in results}) == 4
    assert [s for _, s in results] == sorted((s for _, s in results), reverse=True)
    for ids, score in results:
        assert score == pytest.approx(sequence_score(step, ids, 1), abs=1e-4)
    again = beam_search(lm_log_probs(tiny_gpt(seed=1)), [1], beam_size=4, max_new_tokens=5)
    assert [ids for ids, _ in again] == [ids for ids, _ in results]
    assert [s for _, s in again] == pytest.approx([s for _, s in results])


def test_a_wide_enough_beam_is_exhaustive_search_and_beats_greedy():
    V, n = 5, 3
    model = tiny_gpt(vocab_size=V, seed=2)
    step = gpt_step(model)
    every = [[0] + list(tail) for tail in itertools.product(range(V), repeat=n)]
    scores = [sequence_score(step, ids, 1) for ids in every]
    best = max(range(len(every)), key=scores.__getitem__)
    ids, score = beam_search(step, [0], beam_size=V ** (n - 1), max_new_tokens=n)[0]
    assert ids == every[best] and score == pytest.approx(scores[best], abs=1e-4)
    assert score >= greedy_by_hand(step, [0], n)[1] - 1e-5  # (a batch of prefixes rounds a little differently)


def test_larger_beams_score_at_least_as_well_as_greedy_on_these_models():
    worse = better = 0
    for seed in range(6):
        step = gpt_step(tiny_gpt(seed=seed))
        greedy = greedy_by_hand(step, [1], 8)[1]
        for beam_size in (2, 3, 5):
            score = beam_search(step, [1], beam_size, 8)[0][1]
            worse += score < greedy - 1e-5
            better += score > greedy + 1e-3
    assert worse == 0 and better >= 3  # and the search does find more likely sequences


def test_beam_search_can_lose_the_greedy_path():
    """Not a guarantee: greedy's prefix can fall out of a beam of 2, and its sure ending with it.

    Tokens a=0, b=1, x=2, y=3, z=4. Step 1: a 0.5, b 0.5. After a: x 0.4, y 0.3, z 0.3; after b:
    x 0.45, y 0.45, z 0.1. Then after a-anything the next token is certain (1.0); after b-anything
    it is not (at most 0.4). Greedy takes a, x, then the sure token: 0.5 * 0.4 * 1 = 0.2. A beam of 2
    keeps b-x and b-y (0.225 each) over a-x (0.2) and ends at 0.225 * 0.4 = 0.09.
    """
    first = {(): [0.5, 0.5, 0, 0, 0], (0,): [0, 0, 0.4, 0.3, 0.3], (1,): [0, 0, 0.45, 0.45, 0.1]}

    def step(prefixes):
        rows = []
        for prefix in prefixes.tolist():
            key = tuple(prefix[1:])  # after the start token 9
            if key in first:
                probs = first[key]
            else:
                probs = [1.0, 0, 0, 0, 0] if key[0] == 0 else [0.3, 0.3, 0.4, 0, 0]
            rows.append(torch.tensor(probs, dtype=torch.float64).log())
        return torch.stack(rows)

    greedy_ids, greedy_score = greedy_by_hand(step, [9], 3)
    beam_ids, beam_score = beam_search(step, [9], 2, 3)[0]
    assert greedy_ids == [9, 0, 2, 0] and greedy_score == pytest.approx(math.log(0.2))
    assert beam_ids[:2] == [9, 1] and beam_score == pytest.approx(math.log(0.09)) and beam_score < greedy_score
    assert beam_search(step, [9], 3, 3)[0][1] == pytest.approx(math.log(0.2))  # a beam of 3 keeps a-x


def test_finished_beams_stop_and_keep_their_score():
    step = gpt_step(tiny_gpt(seed=3))
    for eos_id in range(11):
        results = beam_search(step, [1], beam_size=3, max_new_tokens=6, eos_id=eos_id)
        for ids, score in results:
            assert eos_id not in ids[1:-1]  # nothing after the end token
            assert len(ids) <= 7
            assert score == pytest.approx(sequence_score(step, ids, 1), abs=1e-4)


# ---------------------------------------------------------------- translation with an encoder–decoder

def tiny_seq2seq(seed=0):
    torch.manual_seed(seed)
    model = EncoderDecoder(EncoderDecoderConfig(vocab_size=9, context_length=10, n_layer=1, n_head=2, d_model=16))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(20)
    return model.eval()


@pytest.mark.parametrize("eos_id", [2, 4, 8])
def test_greedy_translation_equals_the_model_generate_cut_at_the_end_token(eos_id):
    model = tiny_seq2seq()
    source = torch.randint(3, 9, (5, 6), generator=torch.Generator().manual_seed(0))
    target = torch.ones(5, 1, dtype=torch.long)  # greedy by hand: the whole target through the decoder at each step
    for _ in range(8):
        target = torch.cat([target, model(source, target)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(model.generate(source, start_token=1, max_new_tokens=8), target)
    expected = [row[:row.index(eos_id)] if eos_id in row else row for row in target[:, 1:].tolist()]
    assert translate(model, source, max_new_tokens=8, bos_id=1, eos_id=eos_id) == expected
    assert translate(model, source[0], max_new_tokens=8, bos_id=1, eos_id=eos_id) == expected[0]
    assert translate(model, source[0].tolist(), beam_size=1, max_new_tokens=8, bos_id=1, eos_id=eos_id) == expected[0]


def test_beam_translation_is_beam_search_over_the_decoder():
    model = tiny_seq2seq(seed=1)
    source = torch.tensor([4, 5, 6, 7])
    memory = model.encode(source[None])

    def step(prefixes):
        with torch.no_grad():
            return model.decode(prefixes, memory.expand(len(prefixes), -1, -1))[:, -1].log_softmax(-1)

    ids, _ = beam_search(step, [1], 3, 8, eos_id=2)[0]
    assert beam_search(decoder_log_probs(model, memory), [1], 3, 8, eos_id=2)[0][0] == ids
    expected = ids[1:ids.index(2)] if 2 in ids else ids[1:]
    assert translate(model, source, beam_size=3, max_new_tokens=8, bos_id=1, eos_id=2) == expected
    padded = torch.tensor([[4, 5, 6, 7, 0, 0]])
    assert translate(model, padded, beam_size=3, max_new_tokens=8, bos_id=1, eos_id=2,
                     source_is_token=padded != 0) == [expected]


# ---------------------------------------------------------------- bad input

def test_bad_settings_are_refused_with_the_value_named():
    logits = random_logits()
    model = tiny_gpt()
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\], got 0"):
        filter_top_p(logits, 0)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\], got 1.5"):
        next_token_distribution(logits, top_p=1.5)
    with pytest.raises(ValueError, match="temperature must be a non-negative number .* got -0.5"):
        next_token_distribution(logits, temperature=-0.5)
    with pytest.raises(ValueError, match="top_k must be between 1 and vocab_size=20, got 0"):
        filter_top_k(logits, 0)
    with pytest.raises(ValueError, match="top_k must be between 1 and vocab_size=11, got 12"):
        sample(model, [1], 3, top_k=12)
    with pytest.raises(TypeError, match="logits must be a floating-point tensor"):
        filter_top_k(torch.tensor([1, 2, 3]), 1)
    with pytest.raises(ValueError, match="the prompt is empty"):
        sample(model, [], 3)
    with pytest.raises(ValueError, match="the prompt has 17 tokens, more than the model's context length 16"):
        sample(model, list(range(11)) + list(range(6)), 3)
    assert sample(model, list(range(11)) + list(range(6)), 3, truncate=True).shape == (20,)
    with pytest.raises(ValueError, match="max_new_tokens must be a non-negative int, got -1"):
        sample(model, [1], -1)
    step = gpt_step(model)
    with pytest.raises(ValueError, match="beam_size must be a positive int, got 0"):
        beam_search(step, [1], 0, 3)
    with pytest.raises(ValueError, match="start_ids is empty"):
        beam_search(step, [], 2, 3)
    with pytest.raises(ValueError, match=r"step_log_probs must return \(1, vocab_size\)"):
        beam_search(lambda p: torch.zeros(3), [1], 2, 3)
    seq2seq = tiny_seq2seq()
    with pytest.raises(ValueError, match="beam_size must be a positive int, got 0"):
        translate(seq2seq, [4, 5], beam_size=0, bos_id=1, eos_id=2)
    with pytest.raises(ValueError, match=r"eos_id must be a token id in \[0, 9\), got 9"):
        translate(seq2seq, [4, 5], bos_id=1, eos_id=9)
    with pytest.raises(ValueError, match="source sequence of length 11 is longer than the context length 10"):
        translate(seq2seq, [3] * 11, bos_id=1, eos_id=2)


def test_the_decoder_cache_gives_the_logits_of_a_full_decoder_pass():
    model = tiny_seq2seq(seed=2)
    source = torch.randint(3, 9, (3, 7), generator=torch.Generator().manual_seed(1))
    target = torch.randint(0, 9, (3, 10), generator=torch.Generator().manual_seed(2))
    memory = model.encode(source)
    full = model.decode(target, memory)
    cache = model.new_cache()
    pieces = [model.decode(target[:, :4], memory, cache=cache)]
    pieces += [model.decode(target[:, t:t + 1], memory, cache=cache) for t in range(4, 10)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="cache holds 10 target positions"):
        model.decode(target[:, :1], memory, cache=cache)
