"""Real or scrambled? A text task that needs to know how English is spelled.

    texts, labels = real_or_scrambled(text, count=3500, seed=0)    # every second passage scrambled

Passages of 32 characters of the prose lines of a text; in half of them the characters of every word
are shuffled. A scrambled passage has exactly the characters and the spaces of the original, so
counting letters or word lengths cannot tell the two apart; knowing which letters follow which can.
Chapter 06 fine-tunes the pretrained GPT on it; ``bench/finetune_comparisons.py`` measures it.
"""

from __future__ import annotations

import random


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
