"""Several text-to-text tasks, each marked by a prefix (the T5 idea), with known answers.

    train, test = text_task_split(n_train=1500, n_test=200, seed=0)   # per task; no test input in train
    train[0]   # TextExample(task='count', input='count: cat dog cat', target='3')

- ``question:`` a question about a generated context of facts, answered by a word of the context:
  ``"question: where does mia live? context: leo has a fox. mia lives in oslo. ana lives in rome."``
  -> ``"oslo"`` (people, where they live, which pet they have; every person appears once);
- ``translate:`` an English number word phrase into Chinese numerals (``fmcourse.data.numbers``):
  ``"translate: forty two"`` -> ``"四十二"``;
- ``count:`` how many words follow the prefix: ``"count: cat dog cat"`` -> ``"3"``.

The inputs and targets are lowercase ASCII (plus Chinese numerals in the targets of ``translate:``),
so a character vocabulary covers them: ``PairVocab.build(pairs, source="chars", target="chars")``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fmcourse.data.numbers import to_chinese, to_english

TASKS = ("question", "translate", "count")
PEOPLE = ("ana", "ben", "cai", "dev", "eva", "fay", "gus", "ivy", "jon", "kim", "leo", "mia")
CITIES = ("oslo", "rome", "lima", "kyiv", "doha", "bern", "riga", "baku")
PETS = ("cat", "dog", "fox", "owl", "yak", "emu", "eel", "ant")
COUNT_WORDS = ("red", "blue", "cat", "dog", "sun", "tree")


@dataclass(frozen=True)
class TextExample:
    """One example: its ``task``, the prefixed ``input`` and the ``target`` text."""

    task: str
    input: str
    target: str


def _question(rng: random.Random, n_facts: int) -> tuple[str, str]:
    people = rng.sample(PEOPLE, n_facts)
    facts, answers = [], {}
    for person in people:
        if rng.random() < 0.5:
            city = rng.choice(CITIES)
            facts.append(f"{person} lives in {city}.")
            answers[person] = (f"where does {person} live?", city)
        else:
            pet = rng.choice(PETS)
            facts.append(f"{person} has a {pet}.")
            answers[person] = (f"what pet does {person} have?", pet)
    question, answer = answers[rng.choice(people)]
    return f"question: {question} context: {' '.join(facts)}", answer


def _translate(rng: random.Random, high: int) -> tuple[str, str]:
    n = rng.randrange(high)
    return f"translate: {to_english(n)}", to_chinese(n)


def _count(rng: random.Random, max_count: int) -> tuple[str, str]:
    k = rng.randint(1, max_count)
    return "count: " + " ".join(rng.choice(COUNT_WORDS) for _ in range(k)), str(k)


def make_example(task: str, rng: random.Random, *, n_facts: int = 3, translate_high: int = 1000,
                 max_count: int = 9) -> TextExample:
    """One random example of ``task`` drawn with ``rng``."""
    if task == "question":
        return TextExample(task, *_question(rng, n_facts))
    if task == "translate":
        return TextExample(task, *_translate(rng, translate_high))
    if task == "count":
        return TextExample(task, *_count(rng, max_count))
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def text_task_split(n_train: int | dict[str, int], n_test: int | dict[str, int], *, tasks=TASKS, seed: int = 0, n_facts: int = 3,
                    translate_high: int = 1000, max_count: int = 9) -> tuple[list[TextExample], list[TextExample]]:
    """``n_train`` training and ``n_test`` held-out examples per task (seeded, shuffled together);
    either may be a dict from task to count, ``{"question": 2000, "translate": 600, "count": 600}``.

    Every example has a different input, and no held-out input occurs in training. Options:
    ``n_facts`` facts per context (at most 12), ``translate_high`` (numbers 0 .. translate_high - 1),
    ``max_count`` (1 .. max_count words to count).
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks or isinstance(tasks, str):
        raise ValueError(f"tasks must be a non-empty selection of {TASKS}, got {tasks!r}")
    counts = {}
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        per_task = value if isinstance(value, dict) else {task: value for task in tasks}
        if set(per_task) != set(tasks):
            raise ValueError(f"{name} must give a count for each of the tasks {tuple(tasks)}, got {value!r}")
        for task, count in per_task.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"{name} must be a non-negative int (or a dict of them), got {value!r}")
        counts[name] = per_task
    if not 1 <= n_facts <= len(PEOPLE):
        raise ValueError(f"n_facts must be from 1 to {len(PEOPLE)}, got {n_facts!r}")
    capacity = {"translate": translate_high, "count": sum(len(COUNT_WORDS) ** k for k in range(1, max_count + 1))}
    rng = random.Random(seed)
    train, test = [], []
    for task in tasks:
        n_train_task, n_test_task = counts["n_train"][task], counts["n_test"][task]
        wanted = n_train_task + n_test_task
        if wanted > capacity.get(task, 10 ** 9):
            raise ValueError(f"{wanted} different {task!r} examples asked for, but only {capacity[task]} exist "
                             f"with these options")
        seen: dict[str, TextExample] = {}
        tries = 0
        while len(seen) < wanted:
            example = make_example(task, rng, n_facts=n_facts, translate_high=translate_high, max_count=max_count)
            seen.setdefault(example.input, example)
            tries += 1
            if tries > 100 * wanted + 10_000:
                raise ValueError(f"could not draw {wanted} different {task!r} examples; ask for fewer")
        examples = list(seen.values())
        train += examples[:n_train_task]
        test += examples[n_train_task:]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test
