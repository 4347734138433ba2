"""The real-or-scrambled passages: prose lines only, whole words, scrambling keeps characters and spaces."""

import random

import pytest

from fmcourse.data.passages import prose_passages, real_or_scrambled, scramble

TEXT = ("The quick brown fox jumps over the lazy dog and keeps running far away\n"
        "x = [1, 2, 3]  # code is not prose at all, it has too many symbols ((((\n"
        "short line\n"
        "Another line of plain English prose that is long enough to be kept here\n")


def test_prose_passages_keep_prose_lines_and_start_at_words():
    passages = prose_passages(TEXT, 16)
    assert passages and all(len(p) == 16 for p in passages)
    assert passages[0] == "The quick brown "
    prose = " ".join(line for line in TEXT.split("\n") if line[:1].isalpha() and len(line) > 20 and "=" not in line)
    for p in passages:
        assert p in prose and (prose.index(p) == 0 or prose[prose.index(p) - 1] == " ")
    assert not any("[" in p or "short line" in p for p in passages)
    with pytest.raises(ValueError, match="length"):
        prose_passages(TEXT, 0)


def test_scramble_keeps_the_characters_of_every_word():
    passage = "keeps running far away"
    shuffled = scramble(passage, random.Random(0))
    assert shuffled != passage
    assert [sorted(w) for w in shuffled.split(" ")] == [sorted(w) for w in passage.split(" ")]


def test_real_or_scrambled_is_balanced_seeded_and_scrambles_every_second_passage():
    texts, labels = real_or_scrambled(TEXT, 10, seed=0, length=12)
    assert labels == [i % 2 for i in range(len(texts))] and len(texts) == len(prose_passages(TEXT, 12))
    assert (texts, labels) == real_or_scrambled(TEXT, 10, seed=0, length=12), "seeded"
    real = set(prose_passages(TEXT, 12))
    assert all(t in real for t, label in zip(texts, labels) if label == 0)


def test_scrambled_pairs_differ_and_keep_the_characters():
    from fmcourse.data.passages import scrambled_pairs

    text = "The quick brown fox jumps over the lazy dog and runs far away into the woods. " * 20
    pairs = scrambled_pairs(text, count=10, seed=0, length=16)
    assert len(pairs) == 10 and pairs == scrambled_pairs(text, count=10, seed=0, length=16)
    for real, shuffled in pairs:
        assert real != shuffled and sorted(real) == sorted(shuffled) and len(real) == 16


def test_topic_passages_split_each_section_without_overlap():
    from fmcourse.data.passages import topic_passages

    parts = topic_passages(["try", "import"], (5, 3, 4), seed=1)
    assert [len(texts) for texts, _ in parts] == [10, 6, 8]
    assert [labels.count(0) for _, labels in parts] == [5, 3, 4]
    everything = [t for texts, _ in parts for t in texts]
    assert len(set(everything)) == len(everything) and all(len(t) == 64 for t in everything)
    with pytest.raises(ValueError, match="no topic"):
        topic_passages(["no-such-topic"], (1,))
    with pytest.raises(ValueError, match="fewer than"):
        topic_passages(["try"], (10_000,))
