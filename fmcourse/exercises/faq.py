"""Chapter 13 exercises: a GPT's exact parameter count, GPT-3's training time on a cluster, the
compute-optimal split of a budget between parameters and tokens, and an experiment on what the 6N
rule leaves out."""

from __future__ import annotations

import math

from fmcourse.exercises import Exercise, WrongAnswer, number_problem, verdict
from fmcourse.models import GPTConfig, forward_flops, parameter_counts

# --- 1. a GPT's exact parameter count (a formula) ----------------------------------------------------


def _check_parameters(fn) -> str | None:
    for n_layer, d_model, vocab_size, context_length in ((96, 12288, 50257, 2048), (3, 96, 104, 64), (2, 16, 7, 8),
                                                         (12, 768, 50257, 1024)):
        config = GPTConfig(vocab_size=vocab_size, context_length=context_length, n_layer=n_layer, n_head=1,
                           d_model=d_model)
        expected = sum(parameter_counts(config).values())
        d, L = d_model, n_layer
        problem = number_problem(
            f"for n_layer={L}, d_model={d}, vocab_size={vocab_size}, context_length={context_length} your count",
            fn(n_layer, d_model, vocab_size, context_length), expected, rel=1e-6, abs_tol=0.5,
            known=[(12 * L * d * d, "that is the approximation 12 L d²: the exact count adds the embeddings, the "
                                    "biases and the LayerNorms"),
                   (expected - vocab_size * d, "the output head is tied to the token embedding, but the embedding "
                                               "itself (V d) counts once"),
                   (expected + vocab_size * d, "the head is tied to the token embedding: count V d once, not twice")])
        if problem:
            return problem
    return None


def gpt_parameters_solution(n_layer, d_model, vocab_size, context_length):
    d, L = d_model, n_layer
    attention = 4 * d * d + 4 * d            # q, k, v and output projections with biases
    mlp = (d * 4 * d + 4 * d) + (4 * d * d + d)  # d -> 4d -> d with biases
    norms = 2 * 2 * d                         # two LayerNorms per block, a scale and a shift each
    return vocab_size * d + context_length * d + L * (attention + mlp + norms) + 2 * d   # + the final LayerNorm


gpt_parameters = Exercise(
    title="a GPT's exact parameter count",
    checker=_check_parameters,
    hint="per block: attention 4d² + 4d, MLP 8d² + 5d, two LayerNorms 4d; then the token embedding V d (the head "
         "shares it), the learned positions C d and the final LayerNorm 2d",
    solution=gpt_parameters_solution,
    mistake=lambda n_layer, d_model, vocab_size, context_length: 12 * n_layer * d_model ** 2,
    mistake_message="the approximation 12 L d²",
    kind="formula",
)


# --- 2. GPT-3's training time on a cluster (a value) -------------------------------------------------

GPUS, PER_GPU, N_GPT3, D_GPT3 = 1024, 140e12, 175e9, 300e9


def _check_days(answer) -> str | None:
    days = 6 * N_GPT3 * D_GPT3 / (GPUS * PER_GPU) / 86400
    return number_problem("your number of days", answer, days,
                          known=[(days * GPUS, "that is on one GPU: the 1,024 GPUs share the work"),
                                 (days * 86400, "that is in seconds: divide by 86,400 for days"),
                                 (days * 8 / 6, "that counts 8ND (with recomputation); the question asks for 6ND")])


gpt3_days = Exercise(
    title="GPT-3's training time on 1,024 GPUs",
    checker=_check_days,
    hint="time = 6 N D / (GPUs × FLOP/s per GPU), in seconds; a day has 86,400 seconds",
    solution=6 * N_GPT3 * D_GPT3 / (GPUS * PER_GPU) / 86400,
    mistake=6 * N_GPT3 * D_GPT3 / PER_GPU / 86400,
    mistake_message="on one GPU",
    kind="value",
)


# --- 3. the compute-optimal split of a budget (code) -------------------------------------------------


def _check_optimal(fn) -> str | None:
    for budget in (1e18, 5.76e23, 3.8e25):
        got = fn(budget)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise WrongAnswer(f"return a pair (N, D), got {got!r}")
        n, d = (float(x) for x in got)
        n_right = math.sqrt(budget / 120)
        problem = number_problem(f"for C = {budget:.3g} your N", n, n_right,
                                 known=[(math.sqrt(budget / 6), "that ignores the 20 tokens per parameter: with D = 20 N, "
                                                                "C = 6 N · 20 N = 120 N²"),
                                        (math.sqrt(budget / 20), "C = 6ND with D = 20N gives C = 120 N²")])
        if problem:
            return problem
        problem = number_problem(f"for C = {budget:.3g} your D", d, 20 * n_right)
        if problem:
            return problem
    return None


def compute_optimal_solution(budget):
    n = math.sqrt(budget / 120)     # C = 6 N D and D = 20 N give C = 120 N²
    return n, 20 * n


compute_optimal = Exercise(
    title="the compute-optimal split of a budget",
    checker=_check_optimal,
    hint="put D = 20 N into C = 6 N D: C = 120 N², so N = sqrt(C / 120) and D = 20 N",
    solution=compute_optimal_solution,
    mistake=lambda budget: (math.sqrt(budget / 6), 20 * math.sqrt(budget / 6)),
    mistake_message="ignores the 20 tokens per parameter",
)


# --- 4. an experiment: what the 6N rule leaves out ---------------------------------------------------

LONG_CONTEXT = 8192


def rule_gap(context_length: int) -> float:
    """How much the exact training FLOPs per token of GPT-3 175B exceed 6N, as a fraction, for sequences
    of ``context_length`` tokens (attention's scores grow with the context; 6N does not)."""
    config = GPTConfig(vocab_size=50257, context_length=context_length, n_layer=96, n_head=96, d_model=12288)
    n = sum(parameter_counts(config).values()) - context_length * config.d_model   # positions: not FLOPs
    exact = 3 * sum(forward_flops(config, context_length).values()) / context_length
    return exact / (6 * n) - 1


def _check_gap(prediction, measured) -> str | None:
    if prediction not in ("larger", "smaller"):
        raise WrongAnswer(f'the prediction should be "larger" or "smaller", got {prediction!r}')
    return number_problem(f"your gap at a context of {LONG_CONTEXT}", measured, rule_gap(LONG_CONTEXT),
                          known=[(rule_gap(2048), "that is the gap at 2,048 tokens; set the context in the cell "
                                                  f"to {LONG_CONTEXT} and run it again"),
                                 (100 * rule_gap(LONG_CONTEXT), "give the gap as a fraction (0.1 for 10%), not in percent")])


def _gap_note(prediction, measured) -> str:
    truth = "larger" if rule_gap(LONG_CONTEXT) > rule_gap(2048) else "smaller"
    return (f"{verdict(prediction, truth)}: {rule_gap(2048):.1%} at 2,048 tokens, {rule_gap(LONG_CONTEXT):.1%} at "
            f"{LONG_CONTEXT:,}. Attention's scores cost 4 L T² d per sequence, 4 L T d per token: they grow with the "
            f"context T while 6N does not, so for long contexts (or small d) the rule undercounts")


rule_gap_experiment = Exercise(
    title="experiment: what the 6N rule leaves out",
    checker=_check_gap,
    hint=f"in the cell, set context = {LONG_CONTEXT} and copy the gap it prints (a fraction)",
    solution=lambda: ("larger", rule_gap(LONG_CONTEXT)),
    mistake=lambda: ("smaller", rule_gap(2048)),
    mistake_message="the gap at 2,048 tokens",
    kind="experiment",
    parts=2,
    lazy=True,
    note=_gap_note,
)
