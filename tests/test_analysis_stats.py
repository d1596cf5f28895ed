"""Exact values of the analysis' statistics (issue 12, item 4) and their invariants (item 7).

Each fixed input is checked against scipy / statsmodels / numpy computed here, independently of
the code under test, so that z instead of t, df = n instead of n − 1, ddof = 0, a percentile
instead of a BCa bootstrap, or swapped regression arguments fail a test. The property tests
(hypothesis, few examples) check that intervals contain their estimate and that bounded
quantities get bounded intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from harness.analysis.aggregate import describe
from harness.analysis.budget import BAND_SEED, tuning_curve
from harness.analysis.depth import slope_fit
from harness.analysis.intervals import MIN_N_BOOTSTRAP, bca_interval, wilson_interval
from harness.analysis.paired import gain_stats, holm

ACCURACIES = np.array([0.61, 0.72, 0.55, 0.80, 0.67])
GAINS = np.array([0.03, -0.01, 0.05, 0.02, 0.04, 0.00, 0.06, 0.01, 0.03])
# gain of seed s at depth d (4 seeds, 3 depths), slopes 0.010, 0.004, 0.007, 0.012 plus wiggles
SLOPE_POINTS = pd.DataFrame(
    [
        (seed, depth, 0.02 + slope * depth + wiggle)
        for seed, slope in enumerate((0.010, 0.004, 0.007, 0.012))
        for depth, wiggle in ((3, 0.003), (20, -0.004), (40, 0.002 * seed))
    ],
    columns=["seed", "depth", "gain"],
)
PROPERTY = settings(max_examples=25, deadline=None)


def _t_interval(values):
    values = np.asarray(values, dtype=float)
    return scipy.stats.t.interval(
        0.95, len(values) - 1, loc=values.mean(), scale=scipy.stats.sem(values)
    )


def test_describe_gives_mean_sample_std_and_t_interval():
    stats = describe(pd.DataFrame({"g": 0, "test_accuracy": ACCURACIES}), ["g"], "test_accuracy")
    (row,) = stats.itertuples()
    assert row.n == 5 and row.mean == pytest.approx(ACCURACIES.mean())
    assert row.std == pytest.approx(np.std(ACCURACIES, ddof=1))
    assert row.median == pytest.approx(np.median(ACCURACIES))
    assert (row.ci_low, row.ci_high) == pytest.approx(_t_interval(ACCURACIES))


def test_an_accuracy_interval_is_clipped_to_one():
    values = np.array([0.98, 0.99, 1.0, 0.6])
    (row,) = describe(pd.DataFrame({"g": 0, "test_accuracy": values}), ["g"], "test_accuracy")[
        ["ci_low", "ci_high"]
    ].itertuples(index=False)
    low, high = _t_interval(values)
    assert high > 1 and row.ci_high == 1.0 and row.ci_low == pytest.approx(low)


def test_gain_statistics_equal_scipy():
    stats = gain_stats(GAINS, "test_accuracy")
    assert stats["mean_gain"] == pytest.approx(GAINS.mean())
    assert stats["std_gain"] == pytest.approx(np.std(GAINS, ddof=1))
    assert (stats["ci_low"], stats["ci_high"]) == pytest.approx(_t_interval(GAINS))
    boot = scipy.stats.bootstrap(
        (np.sort(GAINS),), np.mean, method="BCa", n_resamples=9999, rng=np.random.default_rng(0)
    ).confidence_interval
    assert (stats["boot_low"], stats["boot_high"]) == pytest.approx((boot.low, boot.high))
    assert stats["p_wilcoxon"] == pytest.approx(scipy.stats.wilcoxon(GAINS).pvalue)
    assert stats["p_ttest"] == pytest.approx(scipy.stats.ttest_1samp(GAINS, 0.0).pvalue)
    assert (stats["n_wins"], stats["n_ties"], stats["n_losses"]) == (7, 1, 1)


def test_holm_corrects_within_one_comparison_across_depths():
    gains = pd.DataFrame(
        {
            "dataset": "mnist",
            "model": "dense",
            "pair": ["adam"] * 3 + ["rmsprop"] * 2,
            "arm": ["L-Adam"] * 3 + ["L-RMSprop"] * 2,
            "p_wilcoxon": [0.01, 0.04, 0.03, 0.02, np.nan],
        }
    )
    adjusted = holm(gains, "p_wilcoxon")
    expected = multipletests([0.01, 0.04, 0.03], method="holm")[1]
    np.testing.assert_allclose(adjusted[:3], expected)
    assert adjusted[3] == pytest.approx(0.04) and np.isnan(adjusted[4])  # NaN counts in m = 2


def test_depth_slope_is_the_mean_of_per_seed_slopes_with_a_t_interval():
    slopes = np.array(
        [np.polyfit(own["depth"], own["gain"], 1)[0] for _, own in SLOPE_POINTS.groupby("seed")]
    )
    intercepts = [
        np.polyfit(own["depth"], own["gain"], 1)[1] for _, own in SLOPE_POINTS.groupby("seed")
    ]
    fit = slope_fit(SLOPE_POINTS)
    assert fit["n_seeds"] == 4 and fit["slope"] == pytest.approx(slopes.mean())
    assert (fit["slope_ci_low"], fit["slope_ci_high"]) == pytest.approx(_t_interval(slopes))
    assert fit["slope_p"] == pytest.approx(scipy.stats.ttest_1samp(slopes, 0.0).pvalue)
    assert fit["intercept"] == pytest.approx(np.mean(intercepts))


def test_depth_slope_leaves_out_seeds_that_ran_only_some_depths():
    """Two studies pooled: seeds 0-3 at depths 3, 20, 40, seeds 4-7 at depth 40 and 50 only, where
    the gain rises steeply; their 40-50 lines must not enter the 3-40 mean slope."""
    deep_only = pd.DataFrame(
        [(seed, depth, 0.5 * (depth - 40)) for seed in range(4, 8) for depth in (40, 50)],
        columns=["seed", "depth", "gain"],
    )
    pooled = slope_fit(pd.concat([SLOPE_POINTS, deep_only], ignore_index=True))
    assert pooled["n_seeds"] == 0 and np.isnan(pooled["slope"])  # no seed has all four depths
    shallow_seeds_at_50 = pd.DataFrame(
        [(seed, 50, 0.02 + 0.01 * 50) for seed in range(4)], columns=["seed", "depth", "gain"]
    )
    with_50 = pd.concat([SLOPE_POINTS, shallow_seeds_at_50, deep_only], ignore_index=True)
    fit = slope_fit(with_50)
    alone = slope_fit(pd.concat([SLOPE_POINTS, shallow_seeds_at_50], ignore_index=True))
    assert fit["n_seeds"] == 4 and fit["slope"] == pytest.approx(alone["slope"])


def test_wilson_interval_equals_statsmodels():
    assert wilson_interval(3, 10) == pytest.approx(
        proportion_confint(3, 10, alpha=0.05, method="wilson")
    )
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_tuning_curve_band_is_simulated_from_a_fixed_seed():
    from opda.nonparametric import EmpiricalDistribution

    scores = np.array([0.3, 0.5, 0.6, 0.62, 0.1])
    lower_cdf, _, upper_cdf = EmpiricalDistribution.confidence_bands(
        scores, 0.95, a=0.0, b=1.0, method="ld_equal_tailed",
        generator=np.random.default_rng(BAND_SEED), n_jobs=1,
    )  # fmt: skip
    ns = np.arange(1, len(scores) + 1)
    curve = tuning_curve(scores)
    np.testing.assert_allclose(curve["band_low"], upper_cdf.average_tuning_curve(ns))
    np.testing.assert_allclose(curve["band_high"], lower_cdf.average_tuning_curve(ns))


@PROPERTY
@given(st.lists(st.floats(0, 1), min_size=3, max_size=12))
def test_accuracy_intervals_contain_the_mean_and_stay_in_the_unit_interval(values):
    (row,) = describe(pd.DataFrame({"g": 0, "test_accuracy": values}), ["g"], "test_accuracy")[
        ["mean", "ci_low", "ci_high"]
    ].itertuples(index=False)
    tolerance = 1e-12
    assert 0 <= row.ci_low <= row.mean + tolerance and row.mean - tolerance <= row.ci_high <= 1


@PROPERTY
@given(st.lists(st.floats(-1, 1), min_size=3, max_size=12))
def test_gain_intervals_contain_the_mean_and_stay_within_plus_minus_one(gains):
    gains = np.array(gains)
    stats = gain_stats(gains, "test_accuracy")
    tolerance = 1e-12
    assert -1 <= stats["ci_low"] <= stats["mean_gain"] + tolerance
    assert stats["mean_gain"] - tolerance <= stats["ci_high"] <= 1
    if len(gains) >= MIN_N_BOOTSTRAP:
        assert gains.min() - tolerance <= stats["boot_low"] <= stats["boot_high"]
        assert stats["boot_high"] <= gains.max() + tolerance


@PROPERTY
@given(st.lists(st.floats(0, 1), min_size=MIN_N_BOOTSTRAP, max_size=12))
def test_bca_interval_of_accuracies_stays_in_their_range(values):
    low, high, _ = bca_interval(values)
    assert min(values) - 1e-12 <= low <= high <= max(values) + 1e-12


def test_nearly_constant_values_get_a_finite_interval():
    """BCa is undefined here (scipy gives NaN): the percentile interval stands in."""
    values = [0.0] * 7 + [2.788498200899441e-272]  # found by the property test above
    low, high, method = bca_interval(values)
    assert method == "percentile" and 0.0 <= low <= high <= values[-1]


@PROPERTY
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_contains_the_rate(counts):
    successes, n = counts
    low, high = wilson_interval(successes, n)
    assert 0 <= low <= successes / n + 1e-12 and successes / n - 1e-12 <= high <= 1


@settings(max_examples=10, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=8))
def test_tuning_curve_band_holds_the_curve_inside_the_unit_interval(scores):
    curve = tuning_curve(np.array(scores))
    tolerance = 1e-9
    assert (curve["band_low"] <= curve["expected_best"] + tolerance).all()
    assert (curve["expected_best"] <= curve["band_high"] + tolerance).all()
    assert curve["band_low"].min() >= -tolerance and curve["band_high"].max() <= 1 + tolerance
