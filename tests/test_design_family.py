"""The declared family over looks (harness.design.family): Holm's step-down at each look with the
spending function's boundaries, NaN p-values, verdicts, stopping, and the simulated design."""

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from harness.design.family import decide, simulate
from harness.design.power import Effect
from harness.design.sequential import nominal_alphas, spent

LOOKS = [8, 16, 24, 32, 40]
ALPHA = 0.05
OBF = "obrien_fleming"


def one_look(p_values, estimates=None):
    estimates = estimates or {name: 0.1 for name in p_values}
    return decide([p_values], [1.0], ALPHA, OBF, [estimates])


def test_one_look_is_holm():
    rng = np.random.default_rng(5)
    for _ in range(6):  # multipletests runs gc.collect on every call: slow beside TensorFlow
        p = rng.uniform(0, 0.06, size=4)
        names = [f"h{i}" for i in range(4)]
        decision = one_look(dict(zip(names, p)))
        holm = multipletests(p, alpha=ALPHA, method="holm")[0]
        assert [decision.hypotheses[name].look == 1 for name in names] == list(holm)


def test_nan_p_keeps_its_share_of_alpha():
    # without the NaN, m = 2: 0.02 ≤ 0.05 / 2 and then 0.03 ≤ 0.05 are rejected
    assert all(h.look == 1 for h in one_look({"a": 0.02, "b": 0.03}).hypotheses.values())
    # with it, m = 3: 0.02 > 0.05 / 3, nothing is rejected
    decision = one_look({"a": 0.02, "b": 0.03, "c": math.nan})
    assert all(h.verdict == "undecided" and h.look is None for h in decision.hypotheses.values())
    assert decision.hypotheses["a"].threshold == pytest.approx(ALPHA / 3)
    assert decision.stop and decision.reason == "maximum seeds reached (look 1 of 1)"
    # a NaN never rejects, even when every other hypothesis is rejected
    decision = one_look({"a": 0.001, "b": 0.002, "c": math.nan})
    assert [h.look for h in decision.hypotheses.values()] == [1, 1, None]
    assert decision.hypotheses["c"].threshold == pytest.approx(ALPHA)


def test_rejected_with_negative_estimate_is_contradicted():
    decision = one_look({"a": 0.001, "b": 0.002}, {"a": 0.2, "b": -0.3})
    assert decision.hypotheses["a"].verdict == "supported"
    assert decision.hypotheses["b"].verdict == "contradicted"
    assert decision.hypotheses["b"].estimate == -0.3


def test_step_down_over_looks():
    fractions = [0.5, 1.0]
    first = {m: nominal_alphas(fractions, ALPHA / m, OBF) for m in (1, 2, 3)}
    # look 1: a passes its α/3 boundary, b then misses its α/2 one
    look_1 = {"a": first[3][0] / 2, "b": first[2][0] * 2, "c": 0.3}
    decision = decide([look_1], fractions, ALPHA, OBF, [{"a": 0.4, "b": 0.3, "c": 0.1}])
    assert [decision.hypotheses[n].look for n in "abc"] == [1, None, None]
    assert decision.hypotheses["a"].threshold == pytest.approx(first[3][0])
    assert decision.hypotheses["b"].threshold == pytest.approx(first[2][0])
    assert not decision.stop and decision.reason == "continuing: 2 of 3 tests undecided"
    assert decision.alpha_spent == pytest.approx(spent(fractions, ALPHA, OBF)[:1])
    # look 2: a stays rejected whatever its p; b passes α/2, then c the whole α
    look_2 = {"a": 0.9, "b": first[2][1] * 0.99, "c": first[1][1] * 0.99}
    estimates = [{"a": 0.4, "b": 0.3, "c": 0.1}, {"a": 0.0, "b": 0.3, "c": -0.1}]
    decision = decide([look_1, look_2], fractions, ALPHA, OBF, estimates)
    assert [decision.hypotheses[n].look for n in "abc"] == [1, 2, 2]
    assert decision.hypotheses["a"].p_value == look_1["a"]
    assert decision.hypotheses["c"].verdict == "contradicted"
    assert decision.stop and decision.reason == "every declared test decided at look 2 of 2"
    assert [state.rejected for state in decision.looks] == [("a",), ("b", "c")]
    assert decision.looks[1].open_before == ("b", "c")
    assert decision.alpha_spent == pytest.approx(spent(fractions, ALPHA, OBF))
    # c just above its α/2 boundary (b not rejected first) stays open at the last look
    look_2 = {"a": 0.9, "b": 0.5, "c": first[1][1] * 0.99}
    decision = decide([look_1, look_2], fractions, ALPHA, OBF, estimates)
    assert decision.hypotheses["c"].look is None
    assert decision.hypotheses["c"].threshold == pytest.approx(first[2][1])
    assert decision.reason == "maximum seeds reached (look 2 of 2)"


def test_every_decided_early_stops_early():
    fractions = [0.2, 0.4, 0.6, 0.8, 1.0]
    decision = decide([{"a": 1e-6, "b": 1e-7}], fractions, ALPHA, OBF, [{"a": 1.0, "b": 2.0}])
    assert decision.stop and decision.reason == "every declared test decided at look 1 of 5"


def test_mismatched_looks_are_refused():
    with pytest.raises(ValueError, match="look 2 has hypotheses"):
        decide([{"a": 0.1}, {"b": 0.1}], [0.5, 1], ALPHA, OBF, [{"a": 0}, {"b": 0}])
    with pytest.raises(ValueError, match="plans 1 to 1"):
        decide([{"a": 0.1}, {"a": 0.1}], [1], ALPHA, OBF, [{"a": 0}, {"a": 0}])


@pytest.mark.parametrize("test", ["fisher", "mcnemar"])
def test_familywise_error_under_no_effect(test):
    null = {name: Effect(baseline_success=0.7, langevin_success=0.7) for name in "abc"}
    result = simulate(null, "success", test, LOOKS, ALPHA, OBF, n_sim=2000, seed=1)
    standard_error = math.sqrt(ALPHA * (1 - ALPHA) / result.studies)
    assert result.familywise_error <= ALPHA + 3 * standard_error
    assert result.familywise_error >= max(result.rejection_rate.values())
    assert result.mean_seeds == 40  # nothing is decided early under no effect


@pytest.mark.parametrize("test", ["fisher", "mcnemar"])
def test_depth_40_effect_stops_early_with_power(test):
    effect = {name: Effect(baseline_success=0.625, langevin_success=1.0) for name in "abc"}
    result = simulate(effect, "success", test, LOOKS, ALPHA, OBF, n_sim=1000, seed=2)
    print(f"{test}: power {result.rejection_rate}, mean seeds per arm {result.mean_seeds}")
    assert result.mean_seeds < 40
    assert min(result.rejection_rate.values()) > 0.95
    assert result.familywise_error == 0  # no hypothesis is a true null


def test_simulate_accuracy_trained_mixes_null_and_effect():
    effects = {
        "gain": Effect(baseline_success=0.8, langevin_success=0.8, accuracy_gain=0.01),
        "none": Effect(baseline_success=0.6, langevin_success=0.9),
    }
    result = simulate(effects, "accuracy_trained", "sign_flip", [10, 20], ALPHA, "pocock",
                      n_sim=300, seed=3)  # fmt: skip
    assert result.rejection_rate["gain"] > 0.8
    assert result.familywise_error == result.rejection_rate["none"] < 0.1
