import time
from collections import Counter

import pytest
import torch

from fmcourse.data import clean_text, pydoc_text
from fmcourse.tokenizers import (
    PIECES,
    UNK,
    BPETokenizer,
    CharTokenizer,
    load_tokenizer,
    tokenizer_from_dict,
)

HARD_TEXTS = [
    "",
    " ",
    "Hello, world!",
    "  leading and trailing spaces  \n\n\ttabs\r\nand CRLF",
    "naïve café, 夏天的风, Ελληνικά, русский, עברית",
    "emoji 👩‍💻🚀 and combining e\u0301 and \x00\x07 control characters",
    "snake_case __dunder__ 3.14159 x**2 ~=~ ",
    "don't we'll they've I'm",
]


# --- character tokenizer --------------------------------------------------------------------------


def test_char_round_trip_and_empty_string():
    tok = CharTokenizer.train("hello world")
    assert tok.vocab_size == len(set("hello world"))
    for text in ["hello world", "", "dlrow olleh", "o"]:
        ids = tok.encode(text)
        assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok.decode(torch.tensor(tok.encode("hello"))) == "hello"


def test_char_unknown_characters_raise_by_default():
    tok = CharTokenizer.train("abc")
    with pytest.raises(ValueError) as error:
        tok.encode("cab?!")
    message = str(error.value)
    assert "'!?'" in message and "position 3" in message and "unknown='replace'" in message


def test_char_unknown_characters_can_become_unk():
    tok = CharTokenizer.train("abc", unknown="replace", specials=["<mask>"])
    assert tok.specials == {UNK: 0, "<mask>": 1}
    ids = tok.encode("aXb")
    assert ids == [tok.encode("a")[0], 0, tok.encode("b")[0]]
    assert tok.decode(ids) == f"a{UNK}b"
    assert tok.decode([1]) == "<mask>"


def test_char_specials_come_first_and_cannot_clash():
    tok = CharTokenizer.train("ba", specials=["<pad>", "<mask>"])
    assert tok.specials == {"<pad>": 0, "<mask>": 1} and tok.encode("ab") == [2, 3]
    with pytest.raises(ValueError, match="also characters"):
        CharTokenizer("ab", specials=["a"])
    with pytest.raises(ValueError, match="unknown must be"):
        CharTokenizer("ab", unknown="ignore")
    with pytest.raises(ValueError, match="empty text"):
        CharTokenizer.train("")


@pytest.mark.parametrize("ids, error, message", [
    ([0, 9], ValueError, "0..2"),
    ([-1], ValueError, "0..2"),
    (torch.zeros(2, 3, dtype=torch.long), ValueError, "1-D"),
    (torch.zeros(3), ValueError, "integer"),
    ([0.0], TypeError, "integer"),
])
def test_decode_refuses_bad_ids(ids, error, message):
    with pytest.raises(error, match=message):
        CharTokenizer("abc").decode(ids)


def test_encode_refuses_non_text():
    with pytest.raises(TypeError, match="str"):
        CharTokenizer("abc").encode(b"abc")
    with pytest.raises(TypeError, match="str"):
        BPETokenizer().encode(["abc"])


# --- byte-level BPE -----------------------------------------------------------------------------------


def test_bpe_merges_by_hand():
    # "aaabdaaabac": pairs aa:4, ab:2, bd:1, da:1, ba:1, ac:1, so (a, a) is merged first. Then
    # aa|a|b|d|aa|a|b|a|c has (aa, a):2 and (a, b):2, a tie that goes to the smaller ids, (97, 98).
    # Then aa|ab|d|aa|ab|a|c has (aa, ab):2, and nothing else occurs twice.
    tok = BPETokenizer.train("aaabdaaabac", vocab_size=300)
    a, b = ord("a"), ord("b")
    assert tok.merges == [(a, a), (a, b), (256, 257)]
    assert [tok.token_str(i) for i in (256, 257, 258)] == ["aa", "ab", "aaab"]
    assert tok.segment("aaabdaaabac", 0) == list("aaabdaaabac")
    assert tok.segment("aaabdaaabac", 1) == ["aa", "a", "b", "d", "aa", "a", "b", "a", "c"]
    assert tok.segment("aaabdaaabac", 2) == ["aa", "ab", "d", "aa", "ab", "a", "c"]
    assert tok.segment("aaabdaaabac") == ["aaab", "d", "aaab", "a", "c"]
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, a, ord("c")]
    assert tok.vocab_size == 259


def test_bpe_never_merges_across_pieces():
    tok = BPETokenizer.train("ab ab ab ab", vocab_size=300)
    assert all(" " not in tok.token_str(i)[1:] for i in range(256, tok.vocab_size))
    assert tok.segment("ab ab") == ["ab", " ab"]


def reference_bpe_merges(text, n_merges):
    """BPE the slow, obvious way: recount every pair of every piece before each merge."""
    words = Counter(PIECES.findall(text))
    sequences = {word: list(word.encode("utf-8")) for word in words}
    merges = []
    for new_id in range(256, 256 + n_merges):
        pairs = Counter()
        for word, seq in sequences.items():
            for pair in zip(seq, seq[1:]):
                pairs[pair] += words[word]
        if not pairs or max(pairs.values()) < 2:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for word, seq in sequences.items():
            out, i = [], 0
            while i < len(seq):
                if seq[i:i + 2] == list(best):
                    out.append(new_id)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            sequences[word] = out
    return merges, sequences


def test_bpe_training_equals_a_slow_reference():
    text = clean_text(pydoc_text())[:20_000]
    tok = BPETokenizer.train(text, vocab_size=256 + 150)
    merges, sequences = reference_bpe_merges(text, 150)
    assert tok.merges == merges
    for word, seq in list(sequences.items())[:500]:  # encoding a piece reproduces the training segmentation
        assert tok.encode(word) == seq


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_bpe_round_trip_is_exact_even_for_unseen_characters(text):
    tok = BPETokenizer.train("plain english text, nothing else " * 20, vocab_size=300)
    assert tok.decode(tok.encode(text)) == text


def test_pieces_cover_every_character():
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    assert "".join(PIECES.findall(every)) == every


def test_bpe_round_trip_on_a_whole_corpus_and_compression():
    text = clean_text(pydoc_text())
    tok = BPETokenizer.train(text[:100_000], vocab_size=1024)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(text.encode("utf-8")) / len(ids) > 2.5  # bytes per token: merges compress
    assert max(ids) < tok.vocab_size


def test_bpe_trains_on_100_kb_in_a_few_seconds():
    text = clean_text(pydoc_text())[:100_000]
    start = time.perf_counter()
    tok = BPETokenizer.train(text, vocab_size=2048)
    assert time.perf_counter() - start < 5.0
    assert len(tok.merges) == 2048 - 256


def test_bpe_decodes_broken_utf8_with_replacement_characters():
    tok = BPETokenizer()
    euro = list("€".encode("utf-8"))
    assert tok.decode(euro) == "€"
    assert tok.decode(euro[:2]) == "\ufffd"
    assert tok.token_str(euro[0]) == "\\xe2"


def test_bpe_specials_come_last_and_decode_to_their_names():
    tok = BPETokenizer.train("aaab aaab", vocab_size=260, specials=["<mask>", "<eos>"])
    assert tok.vocab_size == 260
    assert tok.specials == {"<mask>": 258, "<eos>": 259}
    assert tok.decode([ord("h"), ord("i"), 258, 259]) == "hi<mask><eos>"
    assert tok.encode("<mask>") == tok.encode("<") + tok.encode("mask") + tok.encode(">")  # text is never special
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.train("abc", vocab_size=257, specials=["<a>", "<b>"])


def test_bpe_refuses_bad_merges_and_steps():
    with pytest.raises(ValueError, match="merge 0"):
        BPETokenizer([(256, 1)])
    tok = BPETokenizer.train("aaabdaaabac", vocab_size=300)
    with pytest.raises(ValueError, match="0..3"):
        tok.segment("aaab", 4)


# --- saving ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda text: CharTokenizer.train(text, specials=["<mask>"]),
    lambda text: CharTokenizer.train(text, specials=["<mask>", UNK], unknown="replace"),
    lambda text: BPETokenizer.train(text, vocab_size=400, specials=["<mask>"]),
])
def test_save_and_load_give_the_same_tokenizer(tmp_path, make):
    text = "The quick brown fox jumps over the lazy dog. " * 30
    tok = make(text)
    tok.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path / "tokenizer.json")
    assert type(again) is type(tok) and again.to_dict() == tok.to_dict()
    assert again.specials == tok.specials and again.vocab_size == tok.vocab_size
    assert again.encode(text) == tok.encode(text)
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]


def test_from_dict_refuses_other_things():
    with pytest.raises(ValueError, match="'char' or 'bpe'"):
        tokenizer_from_dict({"type": "wordpiece"})
