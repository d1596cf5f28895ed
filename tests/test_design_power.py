"""Power of the declared tests (harness.design.power): published values, p-value tables against
scipy/statsmodels call by call, exact power against a brute-force simulation, and the Monte-Carlo
sign-flip power against the exact sign-flip."""

import numpy as np
import pytest
import scipy.stats
from statsmodels.stats.contingency_tables import mcnemar

from harness.design.power import (
    BOSCHLOO_MAX_N,
    Effect,
    draw_outcomes,
    p_value_table,
    power,
    seeds_needed,
    sign_flip_p_values,
    simulated_p_values,
)
from harness.design.tests import boschloo_p, sign_flip_p

DEPTH_40 = Effect(baseline_success=0.625, langevin_success=1.0)


@pytest.mark.parametrize("n, expected", [(8, 0.137), (16, 0.777), (17, 0.825), (20, 0.921)])
def test_fisher_power_published_values(n, expected):
    # decision-design.md: Fisher two-sided α = 0.05, success 100 % vs 62.5 %
    assert power("success", "fisher", n, DEPTH_40, 0.05) == pytest.approx(expected, abs=1e-3)


def test_seeds_needed_depth_40_effect():
    assert seeds_needed("success", "fisher", DEPTH_40, 0.05) == 17
    assert seeds_needed("success", "fisher", DEPTH_40, 0.05 / 3) == 23  # Holm's first step of 3


def test_seeds_needed_is_where_power_stays_above_target():
    # Fisher's power at 100 % vs 72.5 % first reaches 0.8 at 24, dips to 0.72 at 25, stays from 28
    effect = Effect(baseline_success=0.725, langevin_success=1.0)
    powers = {n: power("success", "fisher", n, effect, 0.05) for n in range(23, 29)}
    assert powers[23] < 0.8 <= powers[24] and powers[25] < 0.8
    assert seeds_needed("success", "fisher", effect, 0.05) == 28
    assert seeds_needed("success", "fisher", Effect(0.7, 0.75), 0.05, n_max=20) is None


@pytest.mark.parametrize("n", [*range(1, 13), 25])
def test_fisher_table_equals_scipy(n):
    table = p_value_table("fisher", n)
    for x in range(n + 1):
        for y in range(n + 1):
            direct = scipy.stats.fisher_exact([[x, n - x], [y, n - y]]).pvalue
            assert table[x, y] == pytest.approx(direct, rel=1e-9)


def test_mcnemar_table_equals_statsmodels():
    n = 15
    table = p_value_table("mcnemar", n)
    for a in range(n + 1):
        for b in range(n + 1 - a):
            assert table[a, b] == pytest.approx(mcnemar([[1, a], [b, 2]], exact=True).pvalue)
    assert np.isnan(table[n, 1])


def test_boschloo_table_equals_scipy_and_is_capped():
    n = 6
    table = p_value_table("boschloo", n)
    for x in range(n + 1):
        for y in range(n + 1):
            assert table[x, y] == pytest.approx(boschloo_p(x, n, y, n), rel=1e-6)
    with pytest.raises(ValueError, match=f"up to {BOSCHLOO_MAX_N}") as error:
        power("success", "boschloo", BOSCHLOO_MAX_N + 1, DEPTH_40, 0.05)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("test", ["fisher", "mcnemar"])
def test_exact_power_equals_brute_force_simulation(test):
    n, draws, alpha = 10, 20_000, 0.05
    effect = Effect(baseline_success=0.45, langevin_success=0.9)
    rng = np.random.default_rng(12)
    success_l = rng.random((draws, n)) < effect.langevin_success
    success_b = rng.random((draws, n)) < effect.baseline_success
    if test == "fisher":
        counts = np.stack([success_l.sum(1), success_b.sum(1)], axis=1)
        p_of = {(x, y): scipy.stats.fisher_exact([[x, n - x], [y, n - y]]).pvalue
                for x, y in set(map(tuple, counts))}  # fmt: skip
    else:
        counts = np.stack([(success_l & ~success_b).sum(1), (~success_l & success_b).sum(1)], 1)
        p_of = {(a, b): mcnemar([[0, a], [b, 0]], exact=True).pvalue
                for a, b in set(map(tuple, counts))}  # fmt: skip
    simulated = np.mean([p_of[tuple(c)] <= alpha for c in counts])
    exact = power("success", test, n, effect, alpha)
    assert 0.2 < exact < 0.9
    assert abs(simulated - exact) < 3 * np.sqrt(exact * (1 - exact) / draws)


@pytest.mark.parametrize("test", ["fisher", "mcnemar"])
def test_exact_power_under_no_effect_is_at_most_alpha(test):
    null = Effect(baseline_success=0.7, langevin_success=0.7)
    for n in range(4, 41, 6):
        assert power("success", test, n, null, 0.05) <= 0.05


def test_success_power_fast_up_to_100_seeds():
    effect = Effect(baseline_success=0.8, langevin_success=0.9)
    assert 0.3 < power("success", "fisher", 100, effect, 0.05) < 0.5
    assert seeds_needed("success", "mcnemar", effect, 0.05, n_max=100) is None


def test_simulated_sign_flip_p_is_the_declared_test():
    effect = Effect(baseline_success=0.7, langevin_success=0.9, accuracy_gain=0.002)
    outcomes = draw_outcomes(effect, 40, 9)
    simulated = simulated_p_values("accuracy", "sign_flip", outcomes)
    differences = outcomes.langevin_accuracy - outcomes.baseline_accuracy
    assert simulated == pytest.approx([sign_flip_p(row) for row in differences])
    trained = simulated_p_values("accuracy_trained", "sign_flip", outcomes)
    both = outcomes.langevin_success & outcomes.baseline_success
    assert trained == pytest.approx([sign_flip_p(d[k]) for d, k in zip(differences, both)])


@pytest.mark.parametrize("endpoint", ["accuracy", "accuracy_trained"])
def test_random_flips_power_agrees_with_exact_on_a_small_case(endpoint):
    effect = Effect(baseline_success=0.8, langevin_success=0.9, accuracy_gain=0.003)
    outcomes = draw_outcomes(effect, 2000, 12)
    differences = outcomes.langevin_accuracy - outcomes.baseline_accuracy
    if endpoint == "accuracy_trained":
        differences = np.where(outcomes.langevin_success & outcomes.baseline_success, differences, 0)
    exact = np.mean(sign_flip_p_values(differences, exact=True) <= 0.05)
    flips = np.mean(sign_flip_p_values(differences, exact=False) <= 0.05)
    assert 0.1 < exact < 0.9
    assert abs(flips - exact) < 0.02  # same studies: only the 999 flips' resolution differs


def test_sign_flip_power_under_no_effect_is_about_alpha():
    null = Effect(baseline_success=0.7, langevin_success=0.7)
    size = power("accuracy", "sign_flip", 16, null, 0.05)
    assert abs(size - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 2000)
    gain = Effect(baseline_success=1.0, langevin_success=1.0, accuracy_gain=0.005)
    assert power("accuracy_trained", "sign_flip", 8, gain, 0.05) > 0.3
    # paired differences N(0.005, 2 · 0.005²): the normal-theory answer is ((1.96 + 0.84) / 0.707)²
    # = 15.7 seeds; the t / permutation penalty adds one or two
    assert 16 <= seeds_needed("accuracy_trained", "sign_flip", gain, 0.05, n_max=30) <= 19


def test_draws_of_fewer_seeds_are_a_prefix():
    longer = draw_outcomes(DEPTH_40, 50, 9, key=(3,))
    shorter = draw_outcomes(DEPTH_40, 50, 5, key=(3,))
    assert np.array_equal(shorter.baseline_success, longer.baseline_success[:, :5])
    assert np.array_equal(shorter.langevin_accuracy, longer.langevin_accuracy[:, :5])
    assert longer.langevin_success.all()
    assert set(np.unique(longer.baseline_accuracy[~longer.baseline_success])) == {0.1135}


def test_effect_validation_and_null():
    with pytest.raises(ValueError, match="langevin_success"):
        Effect(baseline_success=0.5, langevin_success=1.2)
    assert Effect(0.7, 0.7).is_null("success") and Effect(0.7, 0.7).is_null("accuracy")
    assert not Effect(0.6, 0.7).is_null("accuracy") and Effect(0.6, 0.7).is_null("accuracy_trained")
    assert not Effect(0.7, 0.7, accuracy_gain=0.01).is_null("accuracy_trained")


@pytest.mark.parametrize("test", ["fisher", "mcnemar"])
@pytest.mark.parametrize("rates", [(0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (0.3, 0.9)])
def test_power_at_edge_rates_is_a_probability(test, rates):
    value = power("success", test, 7, Effect(*rates), 0.05)
    assert 0 <= value <= 1
    if rates[0] == rates[1]:
        assert value == 0  # identical certain outcomes never reject
    if set(rates) == {0.0, 1.0}:
        assert value == 1  # 7 of 7 against 0 of 7: p = 2 / C(14, 7) for Fisher, 2 / 2^7 McNemar
