"""Number phrases and their translations: a parallel corpus whose every answer is known.

    to_english(305)    # 'three hundred and five'
    to_chinese(305)    # '三百零五'
    to_chinese(110)    # '一百一十' (but 10 -> '十', 15 -> '十五')
    split = split_numbers(n_train=2000, n_test=300, high=10_000, seed=0)   # disjoint sets of numbers
    pairs = number_pairs(split.train, target="chinese")                    # [(english, chinese), ...]
    vocab = number_vocab()                                                 # words in, characters out

English (British style): ``"and"`` after ``hundred`` when something follows ("three hundred and five")
and before a last group below one hundred ("two thousand and five"); tens and units with a space
("twenty one"); ``"one hundred"``, ``"one thousand"``. Chinese numerals (digits 一 .. 九, units 十 百 千,
groups of four digits with 万):

- a run of zeros inside the number is read as one 零, trailing zeros are silent: 305 三百零五,
  1005 一千零五, 1050 一千零五十, 3000 三千;
- a leading 一十 is read 十 (10 十, 15 十五, 100000 十万), but not inside a number (110 一百一十);
- below 万 a group of fewer than four digits after a nonzero 万 group starts with 零 (10500 一万零五百).

二 is used throughout (not 两). Numbers from 0 to 99,999,999.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fmcourse.data.pairs import PairVocab

LIMIT = 100_000_000
ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
CHINESE_DIGITS = "零一二三四五六七八九"
TARGETS = ("chinese", "digits")


def _check(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < LIMIT:
        raise ValueError(f"expected an int from 0 to {LIMIT - 1:,}, got {n!r}")
    return n


def _english_below_100(n: int) -> str:
    return ONES[n] if n < 20 else TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])


def _english_below_1000(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    if hundreds == 0:
        return _english_below_100(rest)
    return ONES[hundreds] + " hundred" + ("" if rest == 0 else " and " + _english_below_100(rest))


def to_english(n: int) -> str:
    """``n`` in English words: 305 -> ``"three hundred and five"``, 2005 -> ``"two thousand and five"``."""
    _check(n)
    if n == 0:
        return "zero"
    millions, thousands, units = n // 1_000_000, n // 1000 % 1000, n % 1000
    parts = []
    if millions:
        parts.append(_english_below_1000(millions) + " million")
    if thousands:
        parts.append(_english_below_1000(thousands) + " thousand")
    if units:
        parts.append(("and " if parts and units < 100 else "") + _english_below_1000(units))
    return " ".join(parts)


def _chinese_group(n: int, leading: bool) -> str:
    """A group 1..9999 in Chinese; ``leading``: the first group of the number (a leading 一十 reads 十)."""
    out, zero_pending, started = [], False, False
    for digit, unit in zip((n // 1000, n // 100 % 10, n // 10 % 10, n % 10), ("千", "百", "十", "")):
        if digit == 0:
            zero_pending = zero_pending or started
            continue
        if zero_pending:
            out.append("零")
            zero_pending = False
        if digit == 1 and unit == "十" and leading and not started:
            out.append("十")
        else:
            out.append(CHINESE_DIGITS[digit] + unit)
        started = True
    return "".join(out)


def to_chinese(n: int) -> str:
    """``n`` in Chinese numerals: 305 -> ``"三百零五"``, 10 -> ``"十"``, 110 -> ``"一百一十"``."""
    _check(n)
    if n == 0:
        return "零"
    high, low = divmod(n, 10_000)
    if high == 0:
        return _chinese_group(low, leading=True)
    out = _chinese_group(high, leading=True) + "万"
    if low:
        out += ("零" if low < 1000 else "") + _chinese_group(low, leading=False)
    return out


def to_digits(n: int) -> str:
    """``n`` in Arabic digits: 305 -> ``"305"``."""
    return str(_check(n))


@dataclass
class NumberSplit:
    """Disjoint lists of numbers: no number of ``test`` (or ``val``) occurs in ``train``."""

    train: list[int]
    val: list[int]
    test: list[int]


def split_numbers(n_train: int, n_test: int, *, n_val: int = 0, low: int = 0, high: int = 1000,
                  seed: int = 0) -> NumberSplit:
    """Draw ``n_train + n_val + n_test`` different numbers from ``[low, high)`` (seeded) and deal them
    out: the held-out numbers never occur in training."""
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if not 0 <= low < high <= LIMIT:
        raise ValueError(f"need 0 <= low < high <= {LIMIT:,}, got low={low}, high={high}")
    total = n_train + n_val + n_test
    if total > high - low:
        raise ValueError(f"{total} different numbers asked for, but [{low}, {high}) holds only {high - low}")
    drawn = random.Random(seed).sample(range(low, high), total)
    return NumberSplit(drawn[:n_train], drawn[n_train:n_train + n_val], drawn[n_train + n_val:])


def number_pairs(numbers, target: str = "chinese") -> list[tuple[str, str]]:
    """``[(to_english(n), to_chinese(n) or to_digits(n)) for n in numbers]``."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    convert = to_chinese if target == "chinese" else to_digits
    return [(to_english(n), convert(n)) for n in numbers]


def number_vocab() -> PairVocab:
    """Every English number word (source, split on spaces) and every Chinese numeral character and
    digit (target, split into characters), after ``<pad>``, ``<bos>``, ``<eos>``."""
    words = ONES + TENS[2:] + ["hundred", "thousand", "million", "and"]
    return PairVocab(words + list(CHINESE_DIGITS + "十百千万") + list("0123456789"), source="words", target="chars")
