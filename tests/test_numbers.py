"""Number phrases: English words and Chinese numerals checked against independent converters written
here by other rules (full positional form then rewriting; parsing back to an int); the split, the
vocabulary, and the text-to-text tasks."""

import re

import pytest
import torch

from fmcourse.data.batches import IGNORE_INDEX
from fmcourse.data.numbers import (
    number_pairs,
    number_vocab,
    split_numbers,
    to_chinese,
    to_digits,
    to_english,
)
from fmcourse.data.pairs import PairVocab
from fmcourse.data.text_tasks import COUNT_WORDS, TASKS, text_task_split

DIGITS = "零一二三四五六七八九"


def chinese_by_rewriting(n: int) -> str:
    """Write every digit with its unit (1010 -> 一千零百一十零), then apply the reading rules as
    rewrites: a zero loses its unit, runs of 零 merge, trailing 零 go, a leading 一十 reads 十."""
    if n == 0:
        return "零"

    def group_text(group: int) -> str:
        text = str(group).zfill(4)
        written = "".join(DIGITS[int(d)] + u for d, u in zip(text, ("千", "百", "十", "")))
        written = re.sub("零[千百十]", "零", written)
        written = re.sub("零+", "零", written)
        return written

    high, low = divmod(n, 10_000)
    text = (group_text(high) + "万" if high else "") + group_text(low)
    text = re.sub("零+万", "万", text)           # zeros before 万 are silent (10000 一万)
    text = re.sub("零+", "零", text)
    text = text.lstrip("零").rstrip("零")
    return re.sub("^一十", "十", text)


def parse_chinese(text: str) -> int:
    """Chinese numerals back to an int: digits times units, summed within and across the 万 group."""
    units = {"十": 10, "百": 100, "千": 1000}
    total = section = digit = 0
    for ch in text:
        if ch in DIGITS:
            digit = DIGITS.index(ch)
        elif ch in units:
            section += (digit or 1) * units[ch]  # a bare 十 is 一十
            digit = 0
        elif ch == "万":
            total += (section + digit) * 10_000
            section = digit = 0
        else:
            raise ValueError(ch)
    return total + section + digit


def parse_english(text: str) -> int:
    small = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                        "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
    small |= {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
    total = current = 0
    for word in text.split():
        if word in small:
            current += small[word]
        elif word == "hundred":
            current *= 100
        elif word in ("thousand", "million"):
            total += current * (1000 if word == "thousand" else 1_000_000)
            current = 0
        elif word != "and":
            raise ValueError(word)
    return total + current


KNOWN = {
    0: ("zero", "零"), 5: ("five", "五"), 10: ("ten", "十"), 15: ("fifteen", "十五"), 20: ("twenty", "二十"),
    21: ("twenty one", "二十一"), 100: ("one hundred", "一百"), 105: ("one hundred and five", "一百零五"),
    110: ("one hundred and ten", "一百一十"), 305: ("three hundred and five", "三百零五"),
    1005: ("one thousand and five", "一千零五"), 1010: ("one thousand and ten", "一千零一十"),
    1050: ("one thousand and fifty", "一千零五十"), 3000: ("three thousand", "三千"),
    10000: ("ten thousand", "一万"), 10500: ("ten thousand five hundred", "一万零五百"),
    100000: ("one hundred thousand", "十万"), 100010: ("one hundred thousand and ten", "十万零一十"),
    110000: ("one hundred and ten thousand", "十一万"), 20010000: ("twenty million ten thousand", "二千零一万"),
}


def test_known_readings():
    for n, (english, chinese) in KNOWN.items():
        assert to_english(n) == english, n
        assert to_chinese(n) == chinese, n
        assert to_digits(n) == str(n)


def test_round_trips_through_independent_converters():
    numbers = list(range(0, 20_000)) + list(range(0, 100_000_000, 9_973)) + [99_999_999, 10_000_001, 1_000_000]
    for n in numbers:
        chinese, english = to_chinese(n), to_english(n)
        assert chinese == chinese_by_rewriting(n), n
        assert parse_chinese(chinese) == n, n
        assert parse_english(english) == n, n
        assert "零零" not in chinese and (n == 0 or not chinese.endswith("零"))


def test_the_split_holds_out_numbers_never_seen_in_training():
    split = split_numbers(600, 200, n_val=100, high=1000, seed=3)
    assert (len(split.train), len(split.val), len(split.test)) == (600, 100, 200)
    assert len(set(split.train) | set(split.val) | set(split.test)) == 900
    assert split == split_numbers(600, 200, n_val=100, high=1000, seed=3)
    assert split != split_numbers(600, 200, n_val=100, high=1000, seed=4)
    train_sources = {s for s, _ in number_pairs(split.train)}
    assert not train_sources & {s for s, _ in number_pairs(split.test)}
    assert number_pairs([305], target="digits") == [("three hundred and five", "305")]
    with pytest.raises(ValueError, match="1001 different numbers asked for, but \\[0, 1000\\) holds only 1000"):
        split_numbers(1000, 1, high=1000)
    with pytest.raises(ValueError, match="target must be one of"):
        number_pairs([1], target="french")
    for bad in (-1, 100_000_000, 2.5, True):
        with pytest.raises(ValueError, match="expected an int from 0 to 99,999,999"):
            to_chinese(bad)


def test_the_vocabulary_encodes_batches_and_refuses_unknown_words():
    vocab = number_vocab()
    pairs = number_pairs([305, 10, 110000])
    source, is_token = vocab.source_batch([s for s, _ in pairs])
    assert source.shape == (3, 5) and is_token.sum(1).tolist() == [4, 1, 5]
    target_in, target_out = vocab.target_batch([t for _, t in pairs])
    assert target_in.shape == target_out.shape == (3, 5)
    assert target_in[:, 0].eq(vocab.bos_id).all()
    ids = [vocab.encode_target(t) for _, t in pairs]
    P, B, E, X = vocab.pad_id, vocab.bos_id, vocab.eos_id, IGNORE_INDEX
    assert target_in.tolist() == [[B] + ids[0], [B] + ids[1] + [P] * 3, [B] + ids[2] + [P]]
    assert target_out.tolist() == [ids[0] + [E], ids[1] + [E] + [X] * 3, ids[2] + [E, X]]
    assert [vocab.decode_target(row) for row in target_out.clamp(min=0)] == ["三百零五", "十", "十一万"]
    for n in range(0, 100_000, 7):  # every reading fits the vocabulary
        vocab.encode_source(to_english(n)), vocab.encode_target(to_chinese(n)), vocab.encode_target(to_digits(n))
    with pytest.raises(ValueError, match=r"source 'three hundrd and five' has tokens outside the vocabulary: \['hundrd'\]"):
        vocab.encode_source("three hundrd and five")
    with pytest.raises(ValueError, match="target"):
        vocab.encode_target("三百零五X")
    built = PairVocab.build([("ab", "cd")], source="chars", target="chars")
    assert built.encode_source("ba") == [4, 3] and built.vocab_size == 7


def test_text_tasks_have_right_answers_and_held_out_inputs():
    train, test = text_task_split(300, 50, seed=0)
    assert len(train) == 900 and len(test) == 150
    assert {e.task for e in test} == set(TASKS)
    assert not {e.input for e in train} & {e.input for e in test}
    assert (train, test) == text_task_split(300, 50, seed=0)
    for e in train + test:
        assert e.input.startswith(e.task + ":")
        if e.task == "count":
            words = e.input.removeprefix("count: ").split()
            assert e.target == str(len(words)) and set(words) <= set(COUNT_WORDS)
        elif e.task == "translate":
            english = e.input.removeprefix("translate: ")
            assert e.target == chinese_by_rewriting(parse_english(english))
        else:
            question, context = e.input.removeprefix("question: ").split(" context: ")
            person = re.search(r"(?:does|pet does) (\w+) (?:live|have)", question).group(1)
            fact = next(f for f in context.split(". ") if f.startswith(person + " "))
            assert fact.rstrip(".").split()[-1] == e.target
            assert ("live" in question) == ("lives in" in fact)
    small_train, small_test = text_task_split({"count": 5, "translate": 7}, 2, tasks=("count", "translate"), seed=1)
    assert sorted(e.task for e in small_train) == ["count"] * 5 + ["translate"] * 7 and len(small_test) == 4
    with pytest.raises(ValueError, match="n_train must give a count for each of the tasks"):
        text_task_split({"count": 5}, 2, tasks=("count", "translate"))
    with pytest.raises(ValueError, match="tasks must be a non-empty selection"):
        text_task_split(1, 1, tasks=("summarize",))
    with pytest.raises(ValueError, match="2000 different 'translate' examples asked for, but only 1000 exist"):
        text_task_split(1900, 100, tasks=("translate",))
