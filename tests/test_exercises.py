"""Every exercise of every chapter accepts its solution and rejects its typical mistake."""

import importlib
import pkgutil

import pytest

import fmcourse.exercises as exercises
from fmcourse.exercises import Exercise, chapter_exercises

ALL = [
    exercise
    for info in pkgutil.iter_modules(exercises.__path__)
    for exercise in chapter_exercises(importlib.import_module(f"fmcourse.exercises.{info.name}"))
]


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.title)
def test_solution_passes_and_mistake_fails(exercise, capsys):
    assert exercise.check(exercise.solution), capsys.readouterr().out
    assert not exercise.check(exercise.mistake)
    assert "hint:" in capsys.readouterr().out


def test_a_placeholder_or_crashing_answer_gets_feedback_not_a_traceback(capsys):
    exercise = Exercise("square", lambda f: None if f(3) == 9 else "f(3) should be 9", "x * x", lambda x: x * x, lambda x: 2 * x)
    assert not exercise.check(...)
    assert "no answer yet" in capsys.readouterr().out
    def unwritten(x):
        ...  # your code here

    assert not exercise.check(unwritten)
    assert "returned None" in capsys.readouterr().out
    assert not exercise.check(lambda x: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out
    assert exercise.check(exercise.solution) and not exercise.check(exercise.mistake)


def test_show_solutions_reports_a_broken_exercise(capsys):
    good = Exercise("double", lambda f: None if f(2) == 4 else "f(2) should be 4", "2 * x", lambda x: 2 * x, lambda x: x)
    broken = Exercise("broken", lambda f: None, "", lambda x: x, lambda x: x)  # accepts its own mistake
    from fmcourse.exercises import show_solutions

    assert show_solutions(good)
    assert not show_solutions(good, broken)
    assert "— double —" in capsys.readouterr().out
