"""The declared tests (harness.design.tests) against brute force, scipy/statsmodels and published
values, and `evaluate` on tiny hand-computed cases."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
import scipy.stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep

from harness.design import tests as design_tests
from harness.design.tests import (
    ALL_EQUAL,
    BCA,
    ENDPOINT_TESTS,
    EXACT_FLIP_MAX_N,
    NEWCOMBE,
    PERCENTILE,
    TOO_FEW,
    bootstrap_interval,
    boschloo_p,
    evaluate,
    fisher_p,
    mcnemar_p,
    newcombe_interval,
    on_flip_grid,
    sign_flip_p,
)


def brute_force_flip_p(values) -> float:
    """Fraction of all sign vectors with |Σ s_i v_i| ≥ |Σ v_i|, in exact rational arithmetic."""
    values = [Fraction(v) for v in values]
    observed = abs(sum(values))
    hits = sum(
        abs(sum(s * v for s, v in zip(signs, values))) >= observed
        for signs in itertools.product((1, -1), repeat=len(values))
    )
    return hits / 2 ** len(values)


def test_sign_flip_all_positive_is_two_of_two_to_the_n():
    assert sign_flip_p([1.0] * 8) == 2 / 256
    assert sign_flip_p([0.003] * 10) == 2 / 1024


@pytest.mark.parametrize("seed", range(5))
def test_sign_flip_equals_brute_force_enumeration(seed):
    rng = np.random.default_rng(seed)
    units = rng.integers(-5, 6, size=7)  # small integers: many exact ties between sign vectors
    assert sign_flip_p(units / 100) == pytest.approx(brute_force_flip_p(units), abs=1e-15)


def test_sign_flip_float_noise_does_not_break_ties():
    # every true difference is ±0.1009, but the float subtractions differ in their last bits
    high = np.array([0.9909, 0.2009, 0.5109, 0.8809, 0.3309, 0.7209])
    low = np.array([0.89, 0.1, 0.41, 0.78, 0.23, 0.62])
    signs = np.array([1, -1, 1, 1, -1, 1])
    differences = np.where(signs > 0, high, low) - np.where(signs > 0, low, high)
    exact = brute_force_flip_p(signs * 1009)
    naive = np.mean([
        abs(np.dot(flip, differences)) >= abs(differences.sum())
        for flip in itertools.product((1, -1), repeat=6)
    ])  # fmt: skip
    assert exact == 0.6875
    assert naive != exact  # the case bites: plain float comparison gets it wrong
    assert sign_flip_p(differences) == exact


def test_sign_flip_decimal_ties():
    # 0.1 + 0.2 and 0.3 are equal sums in exact arithmetic, not in floats
    values = [0.1, 0.2, 0.3, 0.6]
    assert sign_flip_p(values) == brute_force_flip_p(["0.1", "0.2", "0.3", "0.6"])


def _enumerated_flip_p(grid) -> float:
    """Every one of the 2^n sign vectors of integer differences, summed and counted."""
    sums = np.zeros(1, dtype=np.int64)
    for value in grid:
        sums = np.concatenate((sums + value, sums - value))
    return float(np.mean(np.abs(sums) >= abs(grid.sum())))


@pytest.mark.parametrize("n", [1, 2, 3, 8, 15, 16, 21, 22])
def test_sign_flip_met_in_the_middle_equals_full_enumeration(n):
    """Odd and even n, n = 1, ties (small integers) and real-valued differences past 20 seeds."""
    rng = np.random.default_rng(n)
    for differences in (rng.integers(-4, 5, size=n) / 1000, rng.normal(0.004, 0.01, size=n)):
        assert sign_flip_p(differences) == _enumerated_flip_p(on_flip_grid(differences))


def test_sign_flip_is_exact_at_48_seeds_below_any_random_flip_floor():
    assert EXACT_FLIP_MAX_N >= 48
    assert sign_flip_p([0.01] * 48) == 2 / 2**48  # 1 / (1 + 100 000) from random flips
    one_against = [0.01] * 47 + [-0.01]  # |Σ| ≥ 46: at most one of 48 units against, each way
    assert sign_flip_p(one_against) == 2 * (1 + 48) / 2**48


def test_sign_flip_random_flips_past_the_exact_limit_agree_with_enumeration(monkeypatch):
    """Past EXACT_FLIP_MAX_N the p comes from seeded random flips (checked here with the limit
    lowered to 20, so that 21 values can still be enumerated)."""
    monkeypatch.setattr(design_tests, "EXACT_FLIP_MAX_N", 20)
    rng = np.random.default_rng(3)
    differences = rng.normal(0.004, 0.01, size=21)
    exact = _enumerated_flip_p(on_flip_grid(differences))
    p_value = sign_flip_p(differences)
    standard_error = np.sqrt(exact * (1 - exact) / 100_000)
    assert 0.01 < exact < 0.5
    assert p_value != exact and abs(p_value - exact) < 4 * standard_error
    assert sign_flip_p(differences) == p_value  # seeded


def test_sign_flip_all_zero_is_one():
    assert sign_flip_p([0.0] * 5) == 1.0


def test_fisher_lady_tasting_tea():
    # Fisher (1935): 3 of 4 cups right each way, two-sided p = 34 / 70
    assert fisher_p(3, 4, 1, 4) == pytest.approx(34 / 70)


def test_boschloo_published_example_and_orientation():
    # scipy's documented example: 74 of 117 vs 31 of 63, one-sided "greater" p = 0.0355;
    # two-sided = 2 × the smaller one-sided p. Arms must be the table's columns.
    assert boschloo_p(74, 117, 31, 63) == pytest.approx(2 * 0.0355, abs=2e-4)
    assert boschloo_p(31, 63, 74, 117) == pytest.approx(boschloo_p(74, 117, 31, 63), rel=1e-6)


@pytest.mark.parametrize("l_only, b_only", [(0, 0), (3, 0), (5, 1), (2, 7), (10, 10), (12, 3)])
def test_mcnemar_equals_binomial_and_statsmodels(l_only, b_only):
    binomial = scipy.stats.binomtest(l_only, l_only + b_only, 0.5).pvalue if l_only + b_only else 1
    with_concordant = mcnemar([[4, l_only], [b_only, 9]], exact=True).pvalue
    assert mcnemar_p(l_only, b_only) == pytest.approx(binomial)
    assert mcnemar_p(l_only, b_only) == pytest.approx(with_concordant)


def test_newcombe_published_value_and_statsmodels():
    # Newcombe (1998), Table II: 56/70 − 48/80, method 10: 0.0524 to 0.3339
    low, high = newcombe_interval(56, 70, 48, 80)
    assert (low, high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    direct = confint_proportions_2indep(8, 8, 5, 8, method="newcomb", compare="diff", alpha=0.1)
    assert newcombe_interval(8, 8, 5, 8, confidence=0.9) == pytest.approx(direct)
    assert np.isnan(newcombe_interval(0, 0, 3, 5)).all()


def test_evaluate_success_hand_computed():
    langevin, baseline = [1, 1, 1, 1], [0, 1, 0, 0]
    accuracy = [0.5] * 4
    fisher = evaluate("success", "fisher", langevin, baseline, accuracy, accuracy)
    assert fisher.estimate == 0.75 and fisher.n == 4 and fisher.interval == NEWCOMBE
    assert fisher.p_value == pytest.approx(8 / 56)  # tables 4:1 and 1:4 of C(8,5) = 56, 4 each
    assert (fisher.low, fisher.high) == pytest.approx(newcombe_interval(4, 4, 1, 4))
    mc = evaluate("success", "mcnemar", langevin, baseline, accuracy, accuracy)
    assert mc.p_value == pytest.approx(2 / 8)  # 3 Langevin-only pairs, none baseline-only
    boschloo = evaluate("success", "boschloo", langevin, baseline, accuracy, accuracy)
    assert boschloo.p_value == pytest.approx(boschloo_p(4, 4, 1, 4))
    assert boschloo.p_value < fisher.p_value  # Boschloo is uniformly more powerful


def test_evaluate_accuracy_hand_computed():
    langevin_accuracy = np.array([0.99, 0.98, 0.96, 0.1135])
    baseline_accuracy = np.array([0.97, 0.97, 0.97, 0.1135])
    success = [True, True, True, False]
    result = evaluate("accuracy", "sign_flip", success, success, langevin_accuracy,
                      baseline_accuracy)  # fmt: skip
    # differences 0.02, 0.01, -0.01, 0: flips of ±2 ±1 ±1 with |sum| ≥ 2: 6 of 8
    assert result.estimate == pytest.approx(0.02 / 4)
    assert result.p_value == 0.75 and result.n == 4
    assert np.isnan(result.low) and result.interval == TOO_FEW
    trained = evaluate("accuracy_trained", "sign_flip", [True, True, True, False],
                       [True, True, False, False], langevin_accuracy, baseline_accuracy)  # fmt: skip
    assert trained.n == 2 and trained.estimate == pytest.approx(0.015)
    assert trained.p_value == 0.5  # ±2 ±1: |sum| ≥ 3 for 2 of 4 flips


def test_evaluate_accuracy_trained_without_trained_pairs_is_nan():
    result = evaluate("accuracy_trained", "sign_flip", [1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9])
    assert result.n == 0 and np.isnan(result.estimate) and np.isnan(result.p_value)


def test_evaluate_accuracy_refuses_nan():
    with pytest.raises(ValueError, match="NaN"):
        evaluate("accuracy", "sign_flip", [1, 1], [1, 1], [0.9, np.nan], [0.9, 0.9])


def test_bootstrap_interval_kinds():
    rng = np.random.default_rng(0)
    values = rng.normal(0.01, 0.005, size=12)
    low, high, name = bootstrap_interval(values)
    assert name == BCA and low < values.mean() < high
    assert bootstrap_interval(values[::-1]) == (low, high, name)  # seed order does not matter
    assert bootstrap_interval(np.full(9, 0.2)) == (0.2, 0.2, ALL_EQUAL)
    last_bit = np.full(12, 0.5)  # every resample's mean rounds to one side: BCa's z0 is infinite
    last_bit[0] = np.nextafter(0.5, 1)
    assert bootstrap_interval(last_bit)[2] == PERCENTILE
    assert bootstrap_interval(values[:7])[2] == TOO_FEW


def test_endpoint_tests_are_the_declared_pairs():
    assert ENDPOINT_TESTS == {
        "success": ("fisher", "boschloo", "mcnemar"),
        "accuracy": ("sign_flip",),
        "accuracy_trained": ("sign_flip",),
    }


@pytest.mark.parametrize(
    "endpoint, test, named",
    [("loss", "fisher", "'loss'"), ("success", "sign_flip", "'sign_flip'"),
     ("accuracy", "wilcoxon", "'wilcoxon'")],
)  # fmt: skip
def test_bad_endpoint_or_test_is_one_line_naming_it(endpoint, test, named):
    with pytest.raises(ValueError) as error:
        evaluate(endpoint, test, [1], [1], [0.9], [0.9])
    message = str(error.value)
    assert "\n" not in message and named in message and "allowed:" in message


def test_misaligned_arrays_are_refused():
    with pytest.raises(ValueError, match="one length"):
        evaluate("success", "fisher", [1, 1], [1], [0.9, 0.9], [0.9, 0.9])
