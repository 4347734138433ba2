"""Scaling laws: power-law fits recover known laws, compute and memory accounting, the shipped sweep."""

import json
import math

import pytest
import torch

from fmcourse import shipped
from fmcourse.models import GPTConfig
from fmcourse.models.cost import forward_flops
from fmcourse.scaling import (SIZES, STEPS, JointLaw, PowerLaw, bootstrap, fit_joint_law, fit_power_law, frontier,
                              measured_training_flops, non_embedding_parameters, training_flops, training_memory)


@pytest.mark.parametrize("alpha", [0.2, 0.35, 0.7])
def test_power_law_fit_recovers_the_exponent_of_noisy_synthetic_data(alpha):
    g = torch.Generator().manual_seed(0)
    N = torch.logspace(3, 6, 10, dtype=torch.float64)
    truth = PowerLaw(E=1.3, A=2.0 * 1e3**alpha, alpha=alpha)  # the reducible part falls from 2 nats
    loss = truth(N) * (1 + 0.002 * torch.randn(10, generator=g, dtype=torch.float64))
    law = fit_power_law(N, loss)
    assert abs(law.alpha - alpha) < 0.1 * alpha + 0.02
    assert abs(law.E - 1.3) < 0.1
    fits = bootstrap(N, loss, samples=40)
    alphas = sorted(f.alpha for f in fits)
    assert alphas[2] < alpha < alphas[-3]  # the bootstrap's 90% range covers the truth


def test_power_law_fit_is_exact_on_noiseless_data():
    N = torch.logspace(2, 5, 6, dtype=torch.float64)
    law = fit_power_law(N, 0.5 + 3.0 * N**-0.5)
    assert law.E == pytest.approx(0.5, abs=1e-3) and law.alpha == pytest.approx(0.5, abs=1e-3)


def test_joint_law_fit_recovers_both_exponents_and_its_optimum_is_the_numerical_one():
    N, D = torch.meshgrid(torch.logspace(3, 5.5, 5, dtype=torch.float64),
                          torch.logspace(5, 7, 4, dtype=torch.float64), indexing="ij")
    truth = JointLaw(E=1.1, A=20.0, alpha=0.4, B=300.0, beta=0.3)
    law = fit_joint_law(N.flatten(), D.flatten(), truth(N, D).flatten())
    assert law.alpha == pytest.approx(0.4, abs=0.02) and law.beta == pytest.approx(0.3, abs=0.02)
    assert law.optimal_N_exponent == pytest.approx(0.3 / 0.7, abs=0.02)
    C = 1e13
    n_opt, d_opt = truth.compute_optimal(C)
    assert 6 * n_opt * d_opt == pytest.approx(C)
    grid = torch.logspace(2, 8, 20001, dtype=torch.float64)
    best = grid[truth(grid, C / (6 * grid)).argmin()]
    assert math.log(best / n_opt) == pytest.approx(0, abs=1e-3)


def test_six_n_d_against_the_layer_by_layer_count():
    """3 x forward FLOPs = 6 N D + the attention scores (12 L T d per token) + the output head (6 d V per
    token), up to the biases and LayerNorms; so 6ND is within 20% for the shipped GPT (context 64 below
    width 96) and undercounts small models whose context and vocabulary are large next to their width."""
    for (L, d), within in (((3, 96), 0.2), ((4, 128), 0.2), ((1, 16), None)):
        config = GPTConfig(vocab_size=104, context_length=64, n_layer=L, n_head=4, d_model=d)
        T = config.context_length
        counted = measured_training_flops(config, batch_size=1, length=T)
        six_nd = training_flops(non_embedding_parameters(config), T)
        assert counted == 3 * sum(forward_flops(config, T).values())
        assert counted == pytest.approx(6 * 12 * L * d * d * T + 12 * L * T * d * T + 6 * d * 104 * T)
        ratio = counted / six_nd
        if within is not None:
            assert abs(ratio - 1) < within
        else:
            assert ratio > 1.5


def test_training_memory_is_16_bytes_a_parameter_and_zero_divides_it():
    full = training_memory(1e9)
    assert sum(full.values()) == 16e9
    assert training_memory(1e9, world=8, stage=1)["optimizer state"] == 12e9 / 8
    assert sum(training_memory(1e9, world=8, stage=3).values()) == 2e9
    assert training_memory(1e9, world=8, stage=2)["weights"] == 2e9
    with pytest.raises(ValueError, match="stage"):
        training_memory(1e9, stage=4)


def test_fits_refuse_too_few_or_non_positive_points():
    with pytest.raises(ValueError, match="at least 3"):
        fit_power_law([1, 2], [3, 2])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2, 3], [3, 0, 1])


def test_frontier_is_cheapest_first_and_strictly_improving():
    rows = [{"C": 1, "val_loss": 3.0}, {"C": 2, "val_loss": 3.5}, {"C": 3, "val_loss": 2.0}, {"C": 4, "val_loss": 2.5}]
    assert [r["C"] for r in frontier(rows)] == [1, 3]


def test_the_shipped_sweep_covers_every_size_and_length_and_falls_with_both():
    data = json.loads(shipped.path("scaling_sweep.json").read_text())
    runs = data["runs"]
    assert {(r["n_layer"], r["d_model"], r["steps"]) for r in runs} == {(*s, n) for s in SIZES for n in STEPS}
    assert math.log10(max(r["N"] for r in runs) / min(r["N"] for r in runs)) >= 1.5
    longest = sorted((r for r in runs if r["steps"] == max(STEPS)), key=lambda r: r["N"])
    assert longest[-1]["val_loss"] < longest[0]["val_loss"]
    for size in SIZES:
        losses = [r["val_loss"] for r in sorted(runs, key=lambda r: r["steps"]) if (r["n_layer"], r["d_model"]) == size]
        assert losses[-1] < losses[0]
    assert data["info"]["wall_seconds"] > 0
