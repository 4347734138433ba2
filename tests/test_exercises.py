"""Every exercise of every chapter accepts its solution, rejects its typical mistake with the message
meant for that mistake, and accepts a right value answer in any numeric form."""

import importlib
import math
import pkgutil

import numpy as np
import pytest
import torch

import fmcourse.exercises as exercises
from fmcourse.exercises import Exercise, as_number, chapter_exercises, number_problem, show_solutions, tensor_problem

MODULES = [importlib.import_module(f"fmcourse.exercises.{info.name}") for info in pkgutil.iter_modules(exercises.__path__)]
ALL = [exercise for module in MODULES for exercise in chapter_exercises(module)]


def test_every_chapter_has_exercises_of_each_kind_it_needs():
    for module in MODULES:
        kinds = [exercise.kind for exercise in chapter_exercises(module)]
        assert len(kinds) >= 4, module.__name__
        assert "experiment" in kinds, f"{module.__name__}: no exercise asks for an experiment"
        assert "formula" in kinds or "value" in kinds, f"{module.__name__}: no exercise asks for a formula or value"


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.title)
def test_solution_passes_and_mistake_fails_with_its_targeted_message(exercise, capsys):
    assert exercise.problem(*exercise.solution_answer()) is None
    assert exercise.passes(*exercise.solution_answer())
    problem = exercise.problem(*exercise.mistake_answer())
    assert problem is not None, "the typical mistake passes"
    assert exercise.mistake_message in problem, problem
    assert exercise.verify() is None
    # check prints and returns nothing, so an exercise cell echoes no True/False
    assert exercise.check(*exercise.mistake_answer()) is None
    out = capsys.readouterr().out
    assert out.startswith("✗") and exercise.mistake_message in out and "hint:" in out
    assert exercise.check(*exercise.solution_answer()) is None
    assert capsys.readouterr().out.startswith("✓")


def _number_forms(value: float):
    rounded = float(f"{value:.3g}")  # as a student copies it by hand
    return [value, np.float64(value), np.float32(value), np.array(value), torch.tensor(value),
            torch.tensor([value]), torch.tensor(value, dtype=torch.float64), rounded]


VALUED = [e for e in ALL if e.kind in ("value", "experiment")]


@pytest.mark.parametrize("exercise", VALUED, ids=lambda e: e.title)
def test_a_right_value_passes_as_float_tensor_numpy_or_rounded(exercise):
    *first, value = exercise.solution_answer()
    assert isinstance(value, float)
    for form in _number_forms(value):
        assert exercise.passes(*first, form), f"{form!r} ({type(form).__name__}) was rejected"
    assert not exercise.passes(*first, value * 1.05)
    assert not exercise.passes(*first, True)


@pytest.mark.parametrize("exercise", [e for e in ALL if e.kind not in ("value", "experiment")], ids=lambda e: e.title)
def test_a_function_returning_a_number_may_return_any_numeric_form(exercise):
    solution = exercise.solution_answer()[0]
    for wrap in (float, np.float64, np.float32, torch.tensor, lambda v: torch.tensor(v, dtype=torch.float64)):
        def answer(*args, wrap=wrap):
            result = solution(*args)
            return wrap(result) if isinstance(result, (int, float)) and not isinstance(result, bool) else result

        assert exercise.passes(answer), exercise.problem(answer)


def test_experiments_say_whether_the_prediction_was_right(capsys):
    for exercise in (e for e in ALL if e.kind == "experiment"):
        prediction, measured = exercise.solution_answer()
        exercise.check(prediction, measured)
        assert "your prediction was right" in capsys.readouterr().out
        wrong = exercise.mistake_answer()[0]
        assert wrong != prediction
        exercise.check(wrong, measured)
        assert "your prediction was wrong" in capsys.readouterr().out
        assert "should be" in exercise.problem("maybe", measured)


def test_as_number_accepts_numbers_and_rejects_the_rest():
    for form in (2, 2.0, np.int64(2), np.float32(2), np.array([2.0]), torch.tensor(2), torch.tensor([[2.0]])):
        assert as_number(form) == 2.0
    for bad in (True, "2", [2.0], torch.ones(2), np.ones(3), None):
        with pytest.raises(exercises.WrongAnswer):
            as_number(bad)


def test_feedback_names_sign_factor_and_axis():
    assert "sign is flipped" in number_problem("x", -1.5, 1.5)
    assert "2 times too large" in number_problem("x", 3.0, 1.5)
    assert "10 times too small" in number_problem("x", 0.15, 1.5)
    assert number_problem("x", 1.50, 1.5034) is None  # rounded to three significant figures
    assert "that is it" in number_problem("x", 7.0, 1.5, known=[(7.0, "that is it")])
    expected = torch.arange(6.0).view(2, 3) + 1
    assert "sign flipped" in tensor_problem("g", -expected, expected)
    assert "axes are swapped" in tensor_problem("g", expected.T, expected)
    assert "4 times too large: mean" in tensor_problem("g", 4 * expected, expected, factor_means="mean")
    assert tensor_problem("g", expected.numpy(), expected) is None


def test_a_placeholder_or_crashing_answer_gets_feedback_not_a_traceback(capsys):
    exercise = Exercise("square", lambda f: None if f(3) == 9 else "f(3) should be 9", "x * x", lambda x: x * x,
                        lambda x: 2 * x, "should be 9")
    assert not exercise.passes(...)
    assert "no answer yet" in exercise.problem(...)
    assert "hint" not in exercise.feedback(...), "running an untouched exercise cell reveals no hint"

    def unwritten(x):
        ...  # your code here

    assert "returned None" in exercise.problem(unwritten)
    assert "ZeroDivisionError" in exercise.problem(lambda x: 1 / 0)
    assert exercise.verify() is None
    with pytest.raises(TypeError):
        exercise.problem(1, 2)


def test_show_solutions_verifies_and_reveals_nothing_headless(capsys, monkeypatch):
    monkeypatch.setenv("FMCOURSE_HEADLESS", "1")
    good = Exercise("double", lambda f: None if f(2) == 4 else "f(2) should be 4", "2 * x", lambda x: 2 * x,
                    lambda x: x, "should be 4")
    accepts_its_mistake = Exercise("broken", lambda f: None, "", lambda x: x, lambda x: x, "")
    wrong_message = Exercise("vague", lambda f: None if f(2) == 4 else "no", "", lambda x: 2 * x, lambda x: x, "f(2)")
    assert show_solutions(good)
    out = capsys.readouterr().out
    assert "2 * x" not in out and "return" not in out, "a solution was revealed"
    assert not show_solutions(good, accepts_its_mistake)
    assert not show_solutions(wrong_message)
    assert "does not say" in capsys.readouterr().out


def test_show_solutions_in_jupyter_puts_them_behind_a_button(monkeypatch):
    pytest.importorskip("ipywidgets")
    import IPython.display

    from fmcourse import env

    shown = []
    monkeypatch.setenv("FMCOURSE_HEADLESS", "0")
    monkeypatch.setattr(env, "in_jupyter", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda widget: shown.append(widget))
    module = importlib.import_module("fmcourse.exercises.losses")
    assert show_solutions(module.lowest_smoothed_loss)
    (box,) = shown
    button, output = box.children
    assert button.description == "show the solutions" and output.outputs == ()
    button.click()
    assert button.disabled
    assert math.isfinite(module.lowest_smoothed_loss.solution)
