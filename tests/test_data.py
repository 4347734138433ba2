import hashlib
import http.server
import math
import threading
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fmcourse.data import (
    IGNORE_INDEX,
    REGISTRY,
    ChecksumError,
    Download,
    MarkovChain,
    causal_lm_batches,
    causal_lm_eval_batches,
    clean_text,
    fetch,
    mask_tokens,
    masked_lm_batches,
    masked_lm_eval_batches,
    pydoc_text,
    read_text,
    tiny_shakespeare,
    train_val_split,
)

# --- corpora -------------------------------------------------------------------------------------


def test_pydoc_text_is_plenty_of_real_english():
    text = pydoc_text()
    assert len(text) > 100_000
    words = Counter(text.lower().split())
    assert words["the"] > 1000 and words["of"] > 300


def test_read_text_reads_utf8_and_drops_a_byte_order_mark(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_bytes("\ufeffÉté, 夏天\n".encode("utf-8"))
    assert read_text(path) == "Été, 夏天\n"


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b" \n\t\n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ("hello".encode("utf-16"), "binary"),
    ("café".encode("latin-1"), "not UTF-8: byte 0xe9 at offset 3"),
])
def test_read_text_rejects_empty_binary_and_non_utf8_files(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_text(path)


def test_read_text_names_a_missing_file_or_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no text file"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="not a file"):
        read_text(tmp_path)


def test_clean_text_canonical_form():
    raw = "\ufeffCafe\u0301  \r\nline\x07 two\t \r\n\r\n\r\n\r\nend\n\n"
    assert clean_text(raw) == "Café\nline two\n\nend"
    assert clean_text("a\tb") == "a\tb"  # tabs are kept inside a line
    with pytest.raises(TypeError, match="str"):
        clean_text(b"bytes")


def paragraphs(text):
    return [p for p in text.split("\n\n") if p]


def test_split_has_no_overlap_even_when_the_text_repeats_itself():
    unique = [f"paragraph {i} " + "word " * (i % 7) for i in range(200)]
    repeated = ["LICENSE: free to share."] * 30 + ["Chorus: la la la."] * 30
    text = "\n\n".join(unique + repeated + unique[:50])
    train, val = train_val_split(text, val_fraction=0.2, seed=1)
    train_units, val_units = set(paragraphs(train)), set(paragraphs(val))
    assert train_units.isdisjoint(val_units)
    assert train_units | val_units == set(unique + repeated)  # nothing lost, duplicates kept once
    assert len(paragraphs(train)) + len(paragraphs(val)) == len(set(unique + repeated))
    share = len(val) / (len(train) + len(val))
    assert 0.17 < share < 0.25


def test_split_is_seeded_and_keeps_the_order_of_the_text():
    text = "\n\n".join(f"unit {i:03d}" for i in range(100))
    a, b, c = (train_val_split(text, 0.3, seed=s) for s in (0, 0, 1))
    assert a == b and a != c
    for part in a:
        units = paragraphs(part)
        assert units == sorted(units)


def test_split_uses_lines_for_text_without_paragraphs_and_refuses_too_little_text():
    text = "\n".join(f"line {i}" for i in range(50))
    train, val = train_val_split(text, 0.1)
    assert set(train.split("\n")).isdisjoint(val.split("\n")) and val
    with pytest.raises(ValueError, match="cannot split"):
        train_val_split("one line only\n\n\n")
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(text, 1.0)


def test_split_of_the_python_docs_has_no_shared_paragraph():
    train, val = train_val_split(clean_text(pydoc_text()), 0.1)
    assert set(paragraphs(train)).isdisjoint(paragraphs(val))
    assert 0.09 < len(val) / (len(train) + len(val)) < 0.12


# --- registry --------------------------------------------------------------------------------------


def file_entry(path: Path, sha256: str | None = None, url: str | None = None) -> Download:
    data = path.read_bytes()
    return Download(name="test_corpus", url=url or path.as_uri(), sha256=sha256 or hashlib.sha256(data).hexdigest(),
                    size=len(data), filename="corpus.txt", description="a test file")


def test_registry_entries_are_pinned():
    for entry in REGISTRY.values():
        assert entry.url.startswith("https://")
        assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
        assert entry.size > 0 and entry.description


def test_fetch_downloads_checks_and_caches(tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("To be, or not to be.\n")
    cache = tmp_path / "cache"
    path = fetch(file_entry(source), cache=cache)
    assert path == cache / "corpus.txt" and path.read_text() == "To be, or not to be.\n"
    entry = file_entry(source)
    source.unlink()  # a second fetch must come from the cache
    assert fetch(entry, cache=cache).read_text() == "To be, or not to be.\n"


def test_a_tampered_download_is_rejected_and_not_kept(tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("the real text\n")
    entry = file_entry(source)
    source.write_text("the real text, with an insertion\n")
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="rejected") as error:
        fetch(entry, cache=cache, retries=2, backoff=0)
    assert entry.sha256 in str(error.value)
    assert isinstance(error.value, ValueError)
    assert list(cache.iterdir()) == []  # neither the file nor a temporary left behind


def test_a_tampered_cached_copy_is_replaced(tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("the real text\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "corpus.txt").write_text("a forged copy\n")
    assert fetch(file_entry(source), cache=cache).read_text() == "the real text\n"


def test_offline_error_names_the_offline_corpora(tmp_path):
    entry = Download("gone", (tmp_path / "nowhere" / "gone.txt").as_uri(), "0" * 64, 1, "gone.txt", "missing")
    with pytest.raises(ConnectionError) as error:
        fetch(entry, cache=tmp_path, retries=2, backoff=0)
    message = str(error.value)
    assert "2 tries" in message and "pydoc_text()" in message and "MarkovChain" in message
    assert list(tmp_path.iterdir()) == []


def test_unknown_names_list_the_registry():
    with pytest.raises(ValueError, match="tiny_shakespeare"):
        fetch("no_such_corpus")


@pytest.fixture
def flaky_server(tmp_path):
    """An HTTP server on localhost that answers 503 to its first two requests, then serves tmp_path."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            if len(requests) <= 2:
                self.send_error(503, "busy")
            else:
                super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", requests
    server.shutdown()
    thread.join()


def test_fetch_retries_a_failing_server(tmp_path, flaky_server):
    base, requests = flaky_server
    (tmp_path / "play.txt").write_text("Exit, pursued by a bear.\n")
    entry = file_entry(tmp_path / "play.txt", url=f"{base}/play.txt")
    with pytest.raises(ConnectionError, match="503"):
        fetch(entry, cache=tmp_path / "cache", retries=2, backoff=0)
    assert fetch(entry, cache=tmp_path / "cache", retries=2, backoff=0).read_text() == "Exit, pursued by a bear.\n"
    assert len(requests) == 3


def test_tiny_shakespeare_goes_through_the_registry(tmp_path, monkeypatch):
    source = tmp_path / "shakespeare.txt"
    source.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n")
    monkeypatch.setitem(REGISTRY, "tiny_shakespeare", file_entry(source))
    assert tiny_shakespeare(cache=tmp_path / "cache").startswith("First Citizen:")


# --- the Markov source -------------------------------------------------------------------------------


def binary_entropy(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_two_state_chain_entropy_rate_by_hand():
    a, b = 0.1, 0.3  # P(0 -> 1), P(1 -> 0)
    chain = MarkovChain(torch.tensor([[1 - a, a], [b, 1 - b]], dtype=torch.float64))
    pi = chain.stationary()
    assert torch.allclose(pi, torch.tensor([b / (a + b), a / (a + b)], dtype=torch.float64))
    assert torch.allclose(pi @ chain.transition, pi)
    expected = b / (a + b) * binary_entropy(a) + a / (a + b) * binary_entropy(b)
    assert chain.entropy_rate() == pytest.approx(expected, rel=1e-12)


def test_uniform_chain_has_entropy_log_v():
    for order in (1, 2):
        chain = MarkovChain(torch.full((5**order, 5), 0.2), order=order)
        assert chain.entropy_rate() == pytest.approx(math.log(5), rel=1e-12)


def empirical_conditional_entropy(tokens, order):
    """Plug-in estimate of H(X_t | previous `order` tokens) from one sample."""
    seq = tokens.tolist()
    joint = Counter(tuple(seq[i:i + order + 1]) for i in range(len(seq) - order))
    context = Counter()
    for key, n in joint.items():
        context[key[:-1]] += n
    total = sum(joint.values())
    return -sum(n / total * math.log(n / context[key[:-1]]) for key, n in joint.items())


@pytest.mark.parametrize("order", [1, 2])
def test_entropy_rate_matches_a_long_sample(order):
    chain = MarkovChain.random(6, order=order, sharpness=1.5, generator=torch.Generator().manual_seed(order))
    tokens = chain.sample(300_000, torch.Generator().manual_seed(7))
    assert tokens.dtype == torch.long and tokens.shape == (300_000,)
    contexts = Counter(tuple(tokens[i:i + order].tolist()) for i in range(0, len(tokens) - order, 7))
    frequency = torch.zeros(6**order, dtype=torch.float64)
    for context, n in contexts.items():
        frequency[sum(x * 6 ** (order - 1 - i) for i, x in enumerate(context))] = n / sum(contexts.values())
    assert torch.allclose(frequency, chain.stationary(), atol=0.01)
    assert empirical_conditional_entropy(tokens, order) == pytest.approx(chain.entropy_rate(), abs=0.01)


def test_conditional_entropies_match_a_long_sample_and_fall_with_more_context():
    chain = MarkovChain.random(6, order=2, sharpness=1.5, generator=torch.Generator().manual_seed(2))
    tokens = chain.sample(300_000, torch.Generator().manual_seed(7))
    levels = [chain.conditional_entropy(k) for k in range(3)]
    for k, level in enumerate(levels):
        assert empirical_conditional_entropy(tokens, k) == pytest.approx(level, abs=0.01), k
    assert levels[2] == pytest.approx(chain.entropy_rate(), rel=1e-12)
    pi_tokens = chain.stationary().reshape(6, 6).sum(0)  # the newest token of each context
    assert levels[0] == pytest.approx(-(pi_tokens * pi_tokens.log()).sum().item(), rel=1e-9)
    assert levels[0] > levels[1] > levels[2]


def test_conditional_entropy_of_a_two_state_chain_by_hand():
    a, b = 0.1, 0.3
    chain = MarkovChain(torch.tensor([[1 - a, a], [b, 1 - b]], dtype=torch.float64))
    assert chain.conditional_entropy(0) == pytest.approx(binary_entropy(a / (a + b)), rel=1e-12)
    assert chain.conditional_entropy(1) == pytest.approx(chain.entropy_rate(), rel=1e-12)
    for bad in (-1, 2, 1.0, True):
        with pytest.raises(ValueError, match="context_length"):
            chain.conditional_entropy(bad)


def test_sample_follows_the_transition_table_and_is_seeded():
    chain = MarkovChain.random(4, generator=torch.Generator().manual_seed(0))
    tokens = chain.sample(200_000, torch.Generator().manual_seed(1))
    counts = torch.zeros(4, 4)
    counts.index_put_((tokens[:-1], tokens[1:]), torch.ones(len(tokens) - 1), accumulate=True)
    assert torch.allclose(counts / counts.sum(1, keepdim=True), chain.transition.float(), atol=0.01)
    first, again = (chain.sample(50, torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(first, again)


def test_sharper_chains_are_more_predictable():
    rates = [MarkovChain.random(8, sharpness=s, generator=torch.Generator().manual_seed(0)).entropy_rate()
             for s in (0.5, 2.0, 4.0)]
    assert math.log(8) > rates[0] > rates[1] > rates[2] > 0


@pytest.mark.parametrize("transition, order, message", [
    (torch.tensor([[0.5, 0.4], [0.5, 0.5]]), 1, "row 0 sums to 0.9"),
    (torch.full((3, 3), 1 / 3), 2, "does not fit order 2"),
    (torch.tensor([[1.0, 0.0], [0.0, 1.0]]), 1, "not irreducible"),
    (torch.tensor([[0.5, 0.5], [0.0, 1.0]]), 1, "not irreducible"),  # 0 reaches 1, but never comes back
    (torch.tensor([[1.5, -0.5], [0.5, 0.5]]), 1, "non-negative"),
    (torch.ones(4), 1, "2-D"),
])
def test_bad_transition_tables_are_refused(transition, order, message):
    with pytest.raises(ValueError, match=message):
        MarkovChain(transition, order)


# --- batches -------------------------------------------------------------------------------------------


def test_causal_batches_are_windows_with_next_token_targets():
    stream = torch.arange(1000)
    inputs, targets = causal_lm_batches(stream, 16, 32, generator=torch.Generator().manual_seed(0))()
    assert inputs.shape == targets.shape == (16, 32) and inputs.dtype == torch.long
    assert torch.equal(inputs[:, 1:] - inputs[:, :-1], torch.ones(16, 31, dtype=torch.long))  # contiguous slices
    assert torch.equal(targets, inputs + 1)
    assert int(targets.max()) <= 999


def test_causal_batches_reach_both_ends_of_the_stream():
    batch = causal_lm_batches(torch.arange(10), 64, 4, generator=torch.Generator().manual_seed(0))
    starts = torch.cat([batch()[0][:, 0] for _ in range(20)])
    assert set(starts.tolist()) == set(range(6))


def test_causal_eval_batches_are_fixed_and_targets_never_repeat():
    stream = torch.arange(1001)
    batches = causal_lm_eval_batches(stream, 8, 10)
    targets = torch.cat([t.flatten() for _, t in batches])
    assert len(targets) == 1000 and len(set(targets.tolist())) == 1000
    spread = causal_lm_eval_batches(stream, 4, 10, max_batches=2)
    assert len(spread) == 2 and sum(len(x) for x, _ in spread) == 8
    assert spread[0][0][0, 0] == 0 and spread[-1][1][-1, -1] == 1000  # from one end to the other


@pytest.mark.parametrize("tokens, error, message", [
    (torch.arange(8), ValueError, "fewer than the 11"),
    (torch.rand(100), TypeError, "integer"),
    (torch.zeros(4, 100, dtype=torch.long), ValueError, "1-D"),
])
def test_causal_batches_refuse_bad_streams(tokens, error, message):
    with pytest.raises(error, match=message):
        causal_lm_batches(tokens, 4, 10)


def test_masking_statistics_follow_bert():
    vocab, mask_id, special = 50, 0, [1, 2]
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, vocab, (400, 500), generator=generator)
    tokens[:, 0] = 1  # a special token at the start of every row, like [CLS]
    inputs, targets = mask_tokens(tokens, vocab_size=vocab, mask_id=mask_id, special_ids=special, generator=generator)
    selected = targets != IGNORE_INDEX
    assert selected.float()[:, 1:].mean().item() == pytest.approx(0.15, abs=0.003)
    assert not selected[:, 0].any()  # special tokens are never selected
    assert torch.equal(targets[selected], tokens[selected])
    assert torch.equal(inputs[~selected], tokens[~selected])
    chosen_in, chosen_orig = inputs[selected], tokens[selected]
    masked = (chosen_in == mask_id).float().mean().item()
    kept = (chosen_in == chosen_orig).float().mean().item()
    swapped = ((chosen_in != mask_id) & (chosen_in != chosen_orig)).float().mean().item()
    replacements = vocab - 3  # a random token is drawn from the non-special ids, so it may equal the original
    assert masked == pytest.approx(0.8, abs=0.01)
    assert kept == pytest.approx(0.1 + 0.1 / replacements, abs=0.01)
    assert swapped == pytest.approx(0.1 * (1 - 1 / replacements), abs=0.01)
    assert int(chosen_in[chosen_in != mask_id].min()) >= 3  # random replacements are never special


def test_masked_targets_give_the_loss_on_selected_positions_only():
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 20, (4, 30), generator=generator)
    inputs, targets = mask_tokens(tokens, vocab_size=20, mask_id=0, generator=generator)
    logits = torch.randn(4, 30, 20, generator=generator)
    selected = targets != IGNORE_INDEX
    reference = -torch.log_softmax(logits, -1)[selected].gather(1, tokens[selected][:, None]).mean()
    assert torch.allclose(F.cross_entropy(logits.flatten(0, 1), targets.flatten()), reference)


def test_every_sequence_gets_a_target():
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 10, (2000, 3), generator=generator)
    _, targets = mask_tokens(tokens, vocab_size=10, mask_id=0, generator=generator)
    assert (targets != IGNORE_INDEX).any(dim=1).all()


def test_masked_batches_and_eval_batches():
    stream = torch.randint(1, 30, (5000,), generator=torch.Generator().manual_seed(0))
    inputs, targets = masked_lm_batches(stream, 8, 64, vocab_size=30, mask_id=0,
                                        generator=torch.Generator().manual_seed(1))()
    assert inputs.shape == targets.shape == (8, 64)
    originals = torch.where(targets != IGNORE_INDEX, targets, inputs)
    assert any(torch.equal(row, stream[s:s + 64]) for row in originals for s in range(len(stream) - 63))
    first = masked_lm_eval_batches(stream, 8, 64, vocab_size=30, mask_id=0, max_batches=3)
    again = masked_lm_eval_batches(stream, 8, 64, vocab_size=30, mask_id=0, max_batches=3)
    assert len(first) == 3 and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))


@pytest.mark.parametrize("kwargs, message", [
    (dict(vocab_size=10, mask_id=10), "mask_id 10"),
    (dict(vocab_size=5, mask_id=0), "0..4"),
    (dict(vocab_size=10, mask_id=0, probability=0.0), "probability"),
    (dict(vocab_size=10, mask_id=0, special_ids=[12]), "special_ids"),
])
def test_masking_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mask_tokens(torch.arange(1, 8)[None], **kwargs)


def test_digits_split_matches_scikit_learn_and_is_disjoint():
    from sklearn.datasets import load_digits

    from fmcourse.data import load_digits_split

    images, labels, train_idx, test_idx = load_digits_split(test_size=500, seed=0)
    reference = load_digits()
    assert images.shape == (1797, 1, 8, 8) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images[:, 0] * 16, torch.tensor(reference.images, dtype=torch.float32))
    assert torch.equal(labels, torch.tensor(reference.target))
    assert len(test_idx) == 500 and len(train_idx) == 1297
    assert not set(train_idx.tolist()) & set(test_idx.tolist())
    assert torch.equal(load_digits_split(seed=0)[3], test_idx)  # seeded
    with pytest.raises(ValueError, match="test_size"):
        load_digits_split(test_size=0)
