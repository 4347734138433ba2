"""Exercises with automatic feedback.

Each chapter's exercises live in a module of this package (``fmcourse.exercises.losses`` for
chapter 02, ...). An ``Exercise`` checks an answer (a value, a function, or for an experiment a
prediction and a measurement), names the likely mistake when the answer is wrong, and carries a
typical wrong answer together with the message that mistake must produce, so the test suite can
prove that each check passes the solution and catches the mistake for the right reason.

In a notebook::

    from fmcourse.exercises import losses as exercises
    exercises.linear_layer_gradients.check(my_gradients)   # prints ✓, or what is wrong and a hint
    show_solutions(exercises.linear_layer_gradients)        # a button that reveals the solutions

A value answer may be a Python number, a NumPy number, a one-element array or a 0-d (or
one-element) tensor, and a hand-rounded answer (three significant figures) counts as right; a
tensor answer may be a tensor, a NumPy array or (for a single number) a Python or NumPy number.
A check runs the student's code under a time limit (``TIME_LIMIT`` seconds): an endless loop is
stopped with a message instead of hanging the notebook.
"""

from __future__ import annotations

import inspect
import math
import signal
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fmcourse import env

#: Relative tolerance of a value answer: 3 significant figures are within 0.5% of the exact value.
ROUNDED = 6e-3


#: Seconds a check may run the student's code before it is stopped.
TIME_LIMIT = 30.0

NO_ANSWER = "no answer yet: replace the placeholder `...` with your answer"
RETURNED_NONE = "your function returned None: replace the `...` with your code, and `return` the result"


class WrongAnswer(Exception):
    """Raised inside a checker to stop with a message about the answer."""


class _ReturnedNone(Exception):
    pass


class _TimedOut(BaseException):  # not an Exception: a student's `except Exception` does not swallow it
    pass


def _timed_out_message(seconds: float) -> str:
    return (f"your code ran for more than {seconds:g} s and was stopped: is there a loop that never ends "
            f"(a `while` whose condition stays true)?")


@contextmanager
def _alarm(seconds: float):
    """Raise ``_TimedOut`` in the block after ``seconds`` (a SIGALRM timer; main thread on Unix only)."""

    def ring(signum, frame):
        raise _TimedOut

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_with_time_limit(function: Callable, *args, seconds: float = TIME_LIMIT):
    """``function(*args)``, stopped with ``TimeoutError`` after ``seconds``.

    In the main thread on Unix (a notebook's cells run there) a timer signal interrupts the code
    itself. Elsewhere the call runs in a daemon thread that is abandoned when time is up (Python
    cannot stop a thread; it no longer blocks the notebook).
    """
    alarm_free = hasattr(signal, "SIGALRM") and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    if alarm_free and threading.current_thread() is threading.main_thread():
        try:
            with _alarm(seconds):
                return function(*args)
        except _TimedOut:
            raise TimeoutError(_timed_out_message(seconds)) from None
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(_timed_out_message(seconds))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _returning(function: Callable) -> Callable:
    """``function``, raising _ReturnedNone where it returns None (an exercise not yet written)."""

    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        if result is None:
            raise _ReturnedNone
        return result

    return wrapper


def as_number(answer: Any, name: str = "your answer") -> float:
    """``answer`` as a float: a Python or NumPy number, a one-element NumPy array or torch tensor.

    Raises ``WrongAnswer`` (with what to do) for anything else: a bool, a string, a longer tensor.
    """
    if isinstance(answer, (bool, np.bool_)) or answer is None:
        raise WrongAnswer(f"{name} should be a number, got {answer!r}")
    if isinstance(answer, torch.Tensor):
        if answer.numel() != 1:
            raise WrongAnswer(f"{name} should be one number, got a tensor of shape {tuple(answer.shape)}")
        if answer.dtype == torch.bool:
            raise WrongAnswer(f"{name} should be a number, got a bool tensor")
        return float(answer.detach().cpu().item())
    if isinstance(answer, np.ndarray):
        if answer.size != 1:
            raise WrongAnswer(f"{name} should be one number, got an array of shape {answer.shape}")
        return float(answer.reshape(()))
    if isinstance(answer, (int, float, np.integer, np.floating)):
        return float(answer)
    raise WrongAnswer(f"{name} should be a number, got {type(answer).__name__}")


def close(a: float, b: float, rel: float = ROUNDED, abs_tol: float = 1e-9) -> bool:
    """Whether ``a`` equals ``b`` up to hand-rounding (relative ``rel``, absolute ``abs_tol``)."""
    return math.isfinite(a) and math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def verdict(prediction: str, truth: str) -> str:
    """How an experiment's prediction fared: the opening of its feedback."""
    return "your prediction was right" if prediction == truth else "your prediction was wrong"


def number_problem(name: str, answer: Any, expected: float, *, known: Sequence[tuple[float, str]] = (),
                   rel: float = ROUNDED, abs_tol: float = 1e-9) -> str | None:
    """What is wrong with a value ``answer`` that should equal ``expected`` (None when right).

    ``known`` lists (value, message) pairs of typical wrong answers and what each means; otherwise
    the feedback names a flipped sign or a simple factor where it sees one.
    """
    value = as_number(answer, name)
    if not math.isfinite(value):
        return f"{name} is {value}, not a finite number"
    if close(value, expected, rel, abs_tol):
        return None
    for wrong, message in known:
        if close(value, wrong, rel, abs_tol):
            return f"{name} is {value:.4g}: {message}"
    return f"{name} is {value:.4g}, not right" + _diagnose(value, expected)


def _diagnose(value: float, expected: float) -> str:
    """A phrase naming a flipped sign or a simple factor between ``value`` and ``expected``, or ''."""
    if expected != 0 and close(value, -expected):
        return " (the sign is flipped)"
    if expected != 0 and value != 0:
        ratio = value / expected
        for factor in (2, 3, 4, 8, 10, math.e, 1 / math.log(10), math.log(10), 1 / math.log(2), math.log(2)):
            if close(ratio, factor, 1e-3) and factor > 1:
                return f" (it is {factor:.3g} times too large: a factor is missing or extra)"
            if close(ratio, 1 / factor, 1e-3) and factor > 1:
                return f" (it is {factor:.3g} times too small: a factor is missing or extra)"
        if close(ratio, round(ratio), 1e-4) and round(ratio) > 1:
            return f" (it is {round(ratio)} times too large: a division is missing)"
        if close(1 / ratio, round(1 / ratio), 1e-4) and round(1 / ratio) > 1:
            return f" (it is {round(1 / ratio)} times too small: a division too many)"
    return ""


def tensor_problem(name: str, answer: Any, expected: torch.Tensor, *, atol: float = 1e-6, rtol: float = 1e-4,
                   factor_means: str = "") -> str | None:
    """What is wrong with a tensor ``answer`` that should equal ``expected`` (None when right).

    Names the likely mistake: a wrong type or shape (a transposed result: swapped axes), nan or inf,
    a flipped sign, a constant factor (``factor_means`` says where such a factor comes from).
    """
    if isinstance(answer, (np.ndarray, np.generic)) and not isinstance(answer, np.bool_):
        answer = torch.from_numpy(np.asarray(answer))
    elif isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = torch.tensor(float(answer))
    if not isinstance(answer, torch.Tensor):
        return f"{name} should be a tensor, got {type(answer).__name__}"
    if answer.shape != expected.shape:
        if answer.dim() == 2 and answer.shape == expected.T.shape:
            return (f"{name} has shape {tuple(answer.shape)}, the transpose of the expected "
                    f"{tuple(expected.shape)}: two axes are swapped")
        return f"{name} has shape {tuple(answer.shape)}, expected {tuple(expected.shape)}"
    got = answer.detach().double().cpu()
    want = expected.double()
    if not torch.isfinite(got).all():
        return f"{name} contains nan or inf"
    if torch.allclose(got, want, rtol=rtol, atol=atol):
        return None
    if torch.allclose(got, -want, rtol=rtol, atol=atol):
        return f"{name} has the sign flipped"
    if got.dim() == 2 and got.shape[0] == got.shape[1] and torch.allclose(got, want.T, rtol=rtol, atol=atol):
        return f"{name} is the transpose of the right answer: two axes are swapped"
    nonzero = want.abs() > 1e-12
    if nonzero.any():
        ratios = got[nonzero] / want[nonzero]
        ratio = ratios.median().item()
        if torch.allclose(ratios, torch.full_like(ratios, ratio), rtol=1e-4) and abs(ratio - 1) > 1e-3:
            size = f"{ratio:.3g} times too large" if abs(ratio) > 1 else f"{1 / ratio:.3g} times too small"
            return f"{name} is {size}" + (f": {factor_means}" if factor_means else ": a constant factor is off")
    return f"{name} differs from the right values by up to {(got - want).abs().max().item():.3g}"


@dataclass(frozen=True)
class Exercise:
    """One exercise: a check, a hint, a solution, and a typical mistake with the message it must get.

    ``checker(answer)`` returns what is wrong with an answer, or None when it is right; it may raise
    ``WrongAnswer``. ``kind`` says what is asked: ``"code"``, ``"formula"`` (a function that
    computes a derived formula), ``"value"`` (a number) or ``"experiment"``. An exercise with
    ``parts > 1`` takes that many answers: ``check(prediction, measurement)``.
    """

    title: str
    checker: Callable[..., str | None]
    hint: str
    solution: Any  # a correct answer; a tuple of the parts when parts > 1; or a callable making it (lazy)
    mistake: Any  # a typical wrong answer, same form
    mistake_message: str  # words the checker's message for the mistake must contain
    kind: str = "code"
    parts: int = 1
    lazy: bool = False  # solution and mistake are zero-argument functions that build the answer
    note: Callable[..., str | None] | None = None  # an extra remark on a right answer (a prediction's fate)
    time_limit: float = TIME_LIMIT  # seconds the check may run the student's code

    def __post_init__(self):
        if self.kind not in ("code", "formula", "value", "experiment"):
            raise ValueError(f"kind must be code, formula, value or experiment, got {self.kind!r}")

    def _answers(self, answer: tuple) -> tuple:
        if len(answer) != self.parts:
            raise TypeError(f"{self.title}: give {self.parts} answer(s) to check, got {len(answer)}")
        return answer

    def problem(self, *answer: Any) -> str | None:
        """What is wrong with the answer (None when it is right); an answer that raises is wrong."""
        answer = self._answers(answer)
        if any(part is None or part is Ellipsis for part in answer):
            return NO_ANSWER
        try:
            wrapped = [_returning(part) if inspect.isfunction(part) else part for part in answer]
            return run_with_time_limit(self.checker, *wrapped, seconds=self.time_limit)
        except TimeoutError as stopped:
            return str(stopped)
        except WrongAnswer as wrong:
            return str(wrong)
        except _ReturnedNone:
            return RETURNED_NONE
        except Exception as error:  # a student's code may fail in any way; report it, don't crash
            return f"your answer raised {type(error).__name__}: {error}"

    def passes(self, *answer: Any) -> bool:
        """Whether the answer is right, silently (for programs and tests)."""
        return self.problem(*answer) is None

    def feedback(self, *answer: Any) -> str:
        """The text ``check`` prints: ✓ (and a remark), or ✗, what is wrong, and the hint."""
        problem = self.problem(*answer)
        if problem is None:
            remark = self.note(*answer) if self.note is not None else None
            return f"✓ {self.title}: correct" + (f"\n  {remark}" if remark else "")
        if problem in (NO_ANSWER, RETURNED_NONE):  # nothing tried yet: keep the hint for a real attempt
            return f"… {self.title}: {problem}"
        return f"✗ {self.title}: {problem}\n  hint: {self.hint}"

    def check(self, *answer: Any) -> None:
        """Print feedback on the answer; returns nothing (use ``passes`` in a program)."""
        print(self.feedback(*answer))

    def solution_answer(self) -> tuple:
        """The solution as a tuple of parts (built now when the exercise is lazy)."""
        value = self.solution() if self.lazy else self.solution
        return tuple(value) if self.parts > 1 else (value,)

    def mistake_answer(self) -> tuple:
        """The typical mistake as a tuple of parts."""
        value = self.mistake() if self.lazy else self.mistake
        return tuple(value) if self.parts > 1 else (value,)

    def solution_text(self) -> str:
        """The solution as text: a function's source code, a value's repr, an experiment's parts."""
        if self.lazy:
            source = inspect.getsource(self.solution)
            return source + "\n# gives: " + ", ".join(_short(part) for part in self.solution_answer())
        if callable(self.solution):
            return inspect.getsource(self.solution)
        return _short(self.solution)

    def show_solution(self) -> None:
        """Print the solution (ask for it only after trying)."""
        print(self.solution_text())

    def verify(self) -> str | None:
        """None when the solution passes and the mistake fails with its targeted message; else why not."""
        solved = self.problem(*self.solution_answer())
        if solved is not None:
            return f"{self.title}: the solution fails: {solved}"
        caught = self.problem(*self.mistake_answer())
        if caught is None:
            return f"{self.title}: the typical mistake passes"
        if self.mistake_message not in caught:
            return f"{self.title}: the mistake's message {caught!r} does not say {self.mistake_message!r}"
        return None


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return f"{value.item():.6g}"
    return repr(value)


def chapter_exercises(module) -> list[Exercise]:
    """Every ``Exercise`` defined at the top level of a chapter's module."""
    return [value for value in vars(module).values() if isinstance(value, Exercise)]


def _solutions_text(exercises: Sequence[Exercise]) -> str:
    blocks = []
    for exercise in exercises:
        mistake = exercise.problem(*exercise.mistake_answer())
        blocks.append(f"— {exercise.title} —\n{exercise.solution_text().rstrip()}\n"
                      f"a typical mistake gets: {mistake}\n")
    return "\n".join(blocks)


def show_solutions(*exercises: Exercise) -> bool:
    """Verify every exercise, then offer its solutions behind a button; returns whether all verify.

    Each solution must pass and each typical mistake must fail with its targeted message (so a
    notebook can ``assert show_solutions(...)``). Nothing is revealed until the student clicks
    "show the solutions" in Jupyter; run headless (``FMCOURSE_HEADLESS=1``) or outside Jupyter it
    reveals nothing and says how to ask (``exercise.show_solution()``).
    """
    problems = [p for p in (exercise.verify() for exercise in exercises) if p is not None]
    for problem in problems:
        print(f"broken exercise: {problem}")
    if env.in_jupyter() and not env.headless():
        import ipywidgets
        from IPython.display import display

        button = ipywidgets.Button(description="show the solutions", button_style="warning",
                                   layout=ipywidgets.Layout(width="auto"))
        output = ipywidgets.Output()

        def reveal(_):
            button.disabled = True
            with output:
                print(_solutions_text(exercises))

        button.on_click(reveal)
        display(ipywidgets.VBox([button, output]))
    else:
        print(f"{len(exercises)} solutions checked and hidden; to see one, run exercises.<name>.show_solution()")
    return not problems
