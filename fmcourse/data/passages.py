"""Real or scrambled? A text task that needs to know how English is spelled.

    texts, labels = real_or_scrambled(text, count=3500, seed=0)    # every second passage scrambled

Passages of 32 characters of the prose lines of a text; in half of them the characters of every word
are shuffled. A scrambled passage has exactly the characters and the spaces of the original, so
counting letters or word lengths cannot tell the two apart; knowing which letters follow which can.
Chapter 06 fine-tunes the pretrained GPT on it; ``bench/finetune_comparisons.py`` measures it.

    pairs = scrambled_pairs(text, count=300, seed=0)               # (real, scrambled): chapter 01, zero-shot
    (train, train_y), (val, val_y), (test, test_y) = topic_passages(["try", "import"], (16, 10, 25))

``topic_passages`` poses another task on the same documentation: which section a passage comes from
(chapters 01 and 13).
"""

from __future__ import annotations

import random

from fmcourse.data.corpora import clean_text


def prose_passages(text: str, length: int) -> list[str]:
    """Consecutive passages of ``length`` characters of the text's prose lines (lines longer than 20
    characters that start with a letter and are at least 90% letters and spaces), each starting at
    the beginning of a word."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    lines = [line.strip() for line in text.split("\n")]
    prose = " ".join(line for line in lines if len(line) > 20 and line[0].isalpha()
                     and sum(c.isalpha() or c == " " for c in line) >= 0.9 * len(line))
    passages, start = [], 0
    while start + length <= len(prose):
        passages.append(prose[start:start + length])
        start = prose.find(" ", start + length) + 1
        if start == 0:
            break
    return passages


def scramble(passage: str, rng: random.Random) -> str:
    """Shuffle the characters of every word (the runs between spaces): the same characters, the same spaces."""
    return " ".join("".join(rng.sample(word, len(word))) for word in passage.split(" "))


def real_or_scrambled(text: str, count: int, seed: int, length: int = 32) -> tuple[list[str], list[int]]:
    """``count`` (at most all) passages of ``text`` in a seeded random order, every second one
    scrambled: the passages and their labels (1 = scrambled)."""
    rng = random.Random(seed)
    passages = prose_passages(text, length)
    rng.shuffle(passages)
    labels = [i % 2 for i in range(min(count, len(passages)))]
    return [scramble(p, rng) if label else p for p, label in zip(passages, labels)], labels


def scrambled_pairs(text: str, count: int, seed: int, length: int = 32) -> list[tuple[str, str]]:
    """``count`` (at most all) passages of ``text`` in a seeded random order, each with its scrambled
    version: ``(real, scrambled)`` pairs; a passage that no shuffle changes (words of one letter) is skipped."""
    rng = random.Random(seed)
    passages = prose_passages(text, length)
    rng.shuffle(passages)
    pairs = []
    for passage in passages:
        if len(pairs) == count:
            break
        if any(len(set(word)) > 1 for word in passage.split(" ")):
            shuffled = scramble(passage, rng)
            while shuffled == passage:
                shuffled = scramble(passage, rng)
            pairs.append((passage, shuffled))
    return pairs


def topic_passages(sections: list[str], sizes: tuple[int, ...], length: int = 64,
                   seed: int = 0) -> list[tuple[list[str], list[int]]]:
    """Which section of Python's documentation is a passage from? A text-classification task.

    ``sections`` names topics of ``pydoc_data.topics`` (the classes, in order); from each, ``sum(sizes)``
    prose passages of ``length`` characters are drawn at random (seeded) and cut into consecutive
    parts of ``sizes`` passages per section (e.g. ``(32, 16, 30)`` for training, validation, test).
    Returns one ``(texts, labels)`` per part, the labels being the sections' indices.
    """
    from pydoc_data.topics import topics

    if not sections or len(set(sections)) != len(sections):
        raise ValueError(f"sections must be distinct topic names, got {sections!r}")
    if not sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"sizes must be positive ints (passages per section in each part), got {sizes!r}")
    rng = random.Random(seed)
    parts = [([], []) for _ in sizes]
    for label, name in enumerate(sections):
        if name not in topics:
            raise ValueError(f"no topic {name!r} in pydoc_data.topics; some are: {', '.join(sorted(topics)[:8])}, ...")
        passages = prose_passages(clean_text(topics[name]), length)
        if len(passages) < sum(sizes):
            raise ValueError(f"topic {name!r} has {len(passages)} passages of {length} characters, fewer than "
                             f"the {sum(sizes)} asked for")
        drawn, start = rng.sample(passages, sum(sizes)), 0
        for (texts, labels), n in zip(parts, sizes):
            texts += drawn[start:start + n]
            labels += [label] * n
            start += n
    return parts
