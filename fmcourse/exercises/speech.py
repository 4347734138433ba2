"""Chapter 09 exercises: the CTC collapse, a character error rate by hand, one Griffin-Lim iteration,
and an experiment on the momentum of fast Griffin-Lim."""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from fmcourse.audio import griffin_lim, istft, stft, stft_magnitude
from fmcourse.exercises import Exercise, WrongAnswer, number_problem, tensor_problem, verdict

# --- 1. the CTC collapse (code) ------------------------------------------------------------------------------


def _reference_collapse(labels, blank):
    out, previous = [], None
    for label in labels:
        if label != previous and label != blank:
            out.append(label)
        previous = label
    return out


def _blanks_first(labels, blank):
    """The typical mistake: drop the blanks, then merge repeats (a blank no longer separates a double letter)."""
    kept = [label for label in labels if label != blank]
    return [label for i, label in enumerate(kept) if i == 0 or label != kept[i - 1]]


def _check_collapse(fn) -> str | None:
    g = torch.Generator().manual_seed(0)
    cases = [([1, 1, 0, 1, 2, 2], 0), ([0, 0, 0], 0), ([3, 3, 3], 0), ([5, 0, 5, 5, 0, 0, 6], 0), ([1, 2, 1], 2), ([], 0)]
    cases += [(torch.randint(0, 4, (20,), generator=g).tolist(), 0) for _ in range(5)]
    for labels, blank in cases:
        answer = fn(list(labels), blank)
        want = _reference_collapse(labels, blank)
        if isinstance(answer, torch.Tensor):
            answer = answer.tolist()
        if not isinstance(answer, (list, tuple)):
            raise WrongAnswer(f"for {labels} your function returned a {type(answer).__name__}; return a list of labels")
        if list(answer) == want:
            continue
        if list(answer) == _blanks_first(labels, blank):
            return (f"for {labels} (blank {blank}) you return {list(answer)}, not {want}: merge repeats before "
                    "dropping blanks, so that a blank between two equal labels keeps both (the 'll' of 'hello')")
        return f"for {labels} (blank {blank}) you return {list(answer)}; the collapse is {want}"
    return None


ctc_collapse = Exercise(
    title="the CTC collapse",
    checker=_check_collapse,
    hint="walk through the labels remembering the previous one; append a label when it differs from the "
         "previous one and is not the blank",
    solution=_reference_collapse,
    mistake=_blanks_first,
    mistake_message="merge repeats before dropping blanks",
)

# --- 2. a character error rate by hand (value) ----------------------------------------------------------------

CER_HYPOTHESIS, CER_REFERENCE = "sevn tree", "seven three"


def _check_cer(answer) -> str | None:
    return number_problem("your CER", answer, 2 / len(CER_REFERENCE), known=[
        (2 / len(CER_HYPOTHESIS), "you divided by the hypothesis's length; divide by the reference's"),
        (2 / 10, "count every character of the reference, the space included"),
        (1 / 2, "that is the word error rate (both words are wrong); count character edits"),
    ])


cer_by_hand = Exercise(
    title="a character error rate by hand",
    checker=_check_cer,
    hint="find the fewest insertions, deletions and substitutions that turn the hypothesis into the reference, "
         "then divide by the number of characters of the reference (the space counts)",
    solution=2 / len(CER_REFERENCE),
    mistake=2 / len(CER_HYPOTHESIS),
    mistake_message="divide by the reference's",
    kind="value",
)

# --- 3. one Griffin-Lim iteration (code) -----------------------------------------------------------------------

GL_FFT, GL_HOP = 64, 16


def _signal() -> torch.Tensor:
    t = torch.arange(800) / 8000
    return torch.sin(2 * math.pi * (400 * t + 2000 * t**2)) * torch.hann_window(800)


def _reference_step(magnitude, phase, n_fft, hop):
    rebuilt = stft(istft(magnitude * phase, n_fft, hop), n_fft, hop)
    return rebuilt / rebuilt.abs().clamp_min(1e-8)


def _unnormalised_step(magnitude, phase, n_fft, hop):
    return stft(istft(magnitude * phase, n_fft, hop), n_fft, hop)


def _check_step(fn) -> str | None:
    magnitude = stft_magnitude(_signal(), GL_FFT, GL_HOP)
    g = torch.Generator().manual_seed(0)
    phase = torch.polar(torch.ones_like(magnitude), torch.rand(magnitude.shape, generator=g) * 2 * math.pi)
    answer = fn(magnitude.clone(), phase.clone(), GL_FFT, GL_HOP)
    if not isinstance(answer, torch.Tensor) or not answer.is_complex() or answer.shape != magnitude.shape:
        got = f"{answer.dtype} {tuple(answer.shape)}" if isinstance(answer, torch.Tensor) else type(answer).__name__
        raise WrongAnswer(f"return the new phase as a complex tensor of shape {tuple(magnitude.shape)}, got {got}")
    if not torch.allclose(answer.abs(), torch.ones(()), atol=1e-3):
        return ("your phase does not have unit magnitude everywhere: divide the rebuilt STFT by its absolute value, "
                "so that only its phase is kept")
    want = _reference_step(magnitude, phase, GL_FFT, GL_HOP)
    return tensor_problem("your new phase (real and imaginary parts)", torch.view_as_real(answer),
                          torch.view_as_real(want), atol=1e-4)


griffin_lim_step = Exercise(
    title="one Griffin-Lim iteration",
    checker=_check_step,
    hint="make a waveform from magnitude * phase with fmcourse.audio.istft, take its fmcourse.audio.stft, and "
         "keep only its phase: divide it by its absolute value",
    solution=_reference_step,
    mistake=_unnormalised_step,
    mistake_message="unit magnitude",
)

# --- 4. an experiment: does momentum help Griffin-Lim? --------------------------------------------------------

MOMENTUM_ITERATIONS = 16


@lru_cache(maxsize=4)
def spectral_convergence(momentum: float, n_iter: int = MOMENTUM_ITERATIONS) -> float:
    """``||S - |STFT(y)||| / ||S||`` after ``n_iter`` Griffin-Lim iterations on the exercise's signal."""
    x = _signal()
    magnitude = stft_magnitude(x, GL_FFT, GL_HOP)
    y = griffin_lim(magnitude, GL_FFT, GL_HOP, n_iter=n_iter, momentum=momentum, length=len(x))
    return float((stft_magnitude(y, GL_FFT, GL_HOP) - magnitude).norm() / magnitude.norm())


def _check_momentum(prediction, measured) -> str | None:
    if prediction not in ("lower", "higher"):
        raise WrongAnswer(f'the prediction should be "lower" or "higher", got {prediction!r}')
    return number_problem("your measured error at momentum 0.99", measured, spectral_convergence(0.99),
                          known=[(spectral_convergence(0.0), "that is the error at momentum 0; set momentum = 0.99 "
                                                             "and run the cell again")])


def _momentum_note(prediction, measured) -> str:
    plain, fast = spectral_convergence(0.0), spectral_convergence(0.99)
    truth = "lower" if fast < plain else "higher"
    return (f"{verdict(prediction, truth)}: after {MOMENTUM_ITERATIONS} iterations the error is {plain:.3f} without "
            f"momentum and {fast:.3f} with 0.99. The momentum extrapolates each phase update along the last one, "
            "as in accelerated gradient descent")


griffin_lim_momentum = Exercise(
    title="experiment: does momentum help Griffin-Lim?",
    checker=_check_momentum,
    hint="in the cell, set momentum = 0.99 and copy the error it prints",
    solution=lambda: ("lower" if spectral_convergence(0.99) < spectral_convergence(0.0) else "higher",
                      spectral_convergence(0.99)),
    mistake=lambda: ("higher" if spectral_convergence(0.99) < spectral_convergence(0.0) else "lower",
                     spectral_convergence(0.0)),
    kind="experiment",
    parts=2,
    lazy=True,
    note=_momentum_note,
    mistake_message="the error at momentum 0",
)
