"""Mutants of harness.design that the fast tier let through, each now caught here.

Every expected value is worked by hand from the definitions in the modules' docstrings, or
computed independently (brute force, scipy), never copied from the code under test.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats

from harness.design.family import UNDECIDED, decide, simulate
from harness.design.power import Effect, Outcomes, simulated_estimates
from harness.design.tests import NEWCOMBE, TOO_FEW, evaluate


def test_a_success_comparison_on_no_seeds_is_all_nan_with_n_zero():
    # no seed: no rate, no test, no interval; mutants returned None for p or dropped a field
    result = evaluate("success", "fisher", [], [], [], [])
    assert result.n == 0
    assert result.interval == NEWCOMBE
    for value in (result.estimate, result.p_value, result.low, result.high):
        assert isinstance(value, float) and math.isnan(value)


def test_accuracy_trained_with_no_seed_where_both_arms_trained_is_all_nan():
    # seed 0: only Langevin trained, seed 1: only the baseline; no pair left to compare
    result = evaluate("accuracy_trained", "sign_flip", [True, False], [False, True],
                      [0.9, 0.1], [0.1, 0.8])
    assert result.n == 0
    assert result.interval == TOO_FEW
    for value in (result.estimate, result.p_value, result.low, result.high):
        assert isinstance(value, float) and math.isnan(value)


def test_an_open_hypothesis_keeps_the_p_value_and_estimate_of_the_last_look():
    # two of three looks taken, never rejected (p = 0.5 is above every threshold below α = 0.05)
    decision = decide([{"h": 0.5}, {"h": 0.6}], [1 / 3, 2 / 3, 1.0], 0.05, "obrien_fleming",
                      [{"h": 0.1}, {"h": 0.3}])
    held = decision.hypotheses["h"]
    assert (held.look, held.verdict) == (None, UNDECIDED)
    assert (held.p_value, held.estimate) == (0.6, 0.3)


def test_estimates_given_for_fewer_looks_than_p_values_are_refused_in_one_line():
    with pytest.raises(ValueError) as refused:
        decide([{"h": 0.5}, {"h": 0.6}], [0.5, 1.0], 0.05, "pocock", [{"h": 0.1}])
    assert str(refused.value) == (
        "estimates_by_look must give one {hypothesis: estimate} per look taken")


def test_simulated_accuracy_endpoint_counts_the_seeds_where_one_arm_failed():
    # "accuracy" compares every seed: Langevin always trains (0.97), the baseline only with
    # probability 0.2 (else 0.1135), so k ~ Bin(12, 0.8) seeds carry a difference near +0.86 and
    # the rest near 0. With k ≥ 6 of them, only the sign vectors keeping those k positive reach
    # the observed |Σ d_i|: p ≤ 2 / 2^k ≤ 1/32 < α. One look, one hypothesis: the threshold is α.
    # (Over the seeds where both trained, there is no gain: the rate would be near 0.)
    effect = Effect(baseline_success=0.2, langevin_success=1.0)
    result = simulate({"h": effect}, "accuracy", "sign_flip", [12], 0.05, n_sim=300, seed=3)
    at_least = scipy.stats.binom.sf(5, 12, 0.8)
    assert result.rejection_rate["h"] >= at_least - 4 * math.sqrt(at_least * (1 - at_least) / 300)


def test_simulated_accuracy_trained_estimate_is_nan_without_a_warning_where_none_trained_both():
    # study 0: seed 0 both trained (+0.2), seed 1 only Langevin; study 1: never both trained
    outcomes = Outcomes(
        langevin_success=np.array([[True, True], [True, False]]),
        baseline_success=np.array([[True, False], [False, True]]),
        langevin_accuracy=np.array([[0.9, 0.8], [0.9, 0.1]]),
        baseline_accuracy=np.array([[0.7, 0.1], [0.1, 0.9]]),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0 / 0 must not warn: "no seed" is an expected case
        estimates = simulated_estimates("accuracy_trained", outcomes)
    assert estimates[0] == pytest.approx(0.2)
    assert math.isnan(estimates[1])
