"""Exercises with automatic feedback.

Each chapter's exercises live in a module of this package (``fmcourse.exercises.losses`` for
chapter 02, ...). An ``Exercise`` knows how to check an answer (a value or a function), gives a hint
when the answer is wrong, shows its solution on request, and carries a typical wrong answer so the
test suite can prove that the check passes on the solution and fails on the mistake.

In a notebook::

    from fmcourse.exercises.losses import stable_softmax
    stable_softmax.check(my_softmax)        # ✓ or ✗ with what is wrong and a hint
    stable_softmax.show_solution()          # the solution's source code
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class _ReturnedNone(Exception):
    pass


def _returning(function: Callable) -> Callable:
    """``function``, raising _ReturnedNone where it returns None (an exercise not yet written)."""

    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        if result is None:
            raise _ReturnedNone
        return result

    return wrapper


@dataclass(frozen=True)
class Exercise:
    title: str
    checker: Callable[[Any], str | None]  # returns what is wrong with an answer, or None when right
    hint: str
    solution: Any  # a correct answer: a value or a function
    mistake: Any  # a typical wrong answer, which the checker must reject

    def problem(self, answer: Any) -> str | None:
        """What is wrong with ``answer`` (None when it is right); an answer that raises is wrong."""
        if answer is None or answer is Ellipsis:
            return "no answer yet: replace the placeholder with your answer"
        try:
            return self.checker(_returning(answer) if inspect.isfunction(answer) else answer)
        except _ReturnedNone:
            return "your function returned None: replace the `...` with your code, and `return` the result"
        except Exception as error:  # a student's code may fail in any way; report it, don't crash
            return f"your answer raised {type(error).__name__}: {error}"

    def check(self, answer: Any) -> bool:
        """Print feedback on ``answer`` and return whether it is right."""
        problem = self.problem(answer)
        if problem is None:
            print(f"✓ {self.title}: correct")
            return True
        print(f"✗ {self.title}: {problem}\n  hint: {self.hint}")
        return False

    def show_solution(self) -> None:
        """Print the solution: its source code for a function, its value otherwise."""
        if callable(self.solution):
            print(inspect.getsource(self.solution))
        else:
            print(repr(self.solution))


def chapter_exercises(module) -> list[Exercise]:
    """Every ``Exercise`` defined at the top level of a chapter's module."""
    return [value for value in vars(module).values() if isinstance(value, Exercise)]


def show_solutions(*exercises: Exercise) -> bool:
    """For each exercise: its solution, checked, and a typical mistake, checked (to show the feedback).

    Returns True when every solution passes and every mistake is caught, so a notebook can assert it.
    """
    all_good = True
    for exercise in exercises:
        print(f"— {exercise.title} —")
        exercise.show_solution()
        solved = exercise.check(exercise.solution)
        print("a typical mistake:")
        caught = not exercise.check(exercise.mistake)
        print()
        all_good = all_good and solved and caught
    return all_good
