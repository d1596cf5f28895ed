"""The confidence intervals of the analysis, each with the smallest n it is computed for.

Below its minimum n an interval is NaN and the tables say "too few seeds" instead.
- `t_interval`: mean ± t_{(1+c)/2, n-1} · s / √n, s the sample standard deviation (ddof = 1);
  n ≥ MIN_N_T. Clipped to `bounds` (an accuracy's mean lies in [0, 1], a gain in accuracy in
  [−1, 1]), since the t interval itself knows no bounds.
- `bca_interval`: the bias-corrected and accelerated bootstrap interval of a statistic
  (scipy.stats.bootstrap, method "BCa", 9999 resamples, fixed seed, values sorted first so the
  result does not depend on the order runs were loaded in); n ≥ MIN_N_BOOTSTRAP (with
  fewer values a bootstrap sees too few distinct resamples: a percentile interval on 3 seeds covers
  about 75 %). Resampled values stay in their own range, so a bounded statistic's interval does too.
  All values equal: the interval is that value. BCa is undefined when nearly every resample equals
  the estimate (scipy returns NaN); the percentile interval of the same resamples stands in, and
  the method returned with the interval says so (BCA, PERCENTILE, ALL_EQUAL; "" below the
  minimum n), so that a table can mark it.
- `wilson_interval`: the Wilson score interval of a proportion k / n
  (statsmodels proportion_confint, method "wilson"); inside [0, 1] by construction; n ≥ 1.
MIN_N_WILCOXON: the exact two-sided Wilcoxon signed-rank test cannot give p < 0.05 below 6 pairs
(its smallest p at n = 5 is 2 / 2^5 = 0.0625); a p-value is still reported from MIN_N_T on.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.stats

CONFIDENCE = 0.95
MIN_N_T = 3
MIN_N_BOOTSTRAP = 8
MIN_N_WILCOXON = 6
BOOTSTRAP_RESAMPLES = 9999
BCA, PERCENTILE, ALL_EQUAL = "BCa", "percentile", "all equal"  # what `bca_interval` computed
UNBOUNDED = (-np.inf, np.inf)


def t_halfwidth(std, n, confidence: float = CONFIDENCE):
    """Half-width of the t interval of a mean: t_{(1+c)/2, n-1} · std / √n (NaN where n < MIN_N_T)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        halfwidth = (
            scipy.stats.t.ppf((1 + confidence) / 2, n - 1)
            * np.asarray(std, dtype=float)
            / np.sqrt(n)
        )
    return np.where(n >= MIN_N_T, halfwidth, np.nan)


def t_interval(values, confidence: float = CONFIDENCE, bounds=UNBOUNDED) -> tuple[float, float]:
    """(low, high) of the t interval of the mean of `values`, clipped to `bounds`."""
    values = np.asarray(values, dtype=float)
    if len(values) < MIN_N_T:
        return np.nan, np.nan
    mean = values.mean()
    halfwidth = float(t_halfwidth(values.std(ddof=1), len(values), confidence))
    return clip(mean - halfwidth, bounds), clip(mean + halfwidth, bounds)


def clip(value, bounds=UNBOUNDED):
    """`value` moved into [bounds[0], bounds[1]] (NaN stays NaN)."""
    return np.clip(value, *bounds)


def bca_interval(
    values, statistic=np.mean, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float, str]:
    """(low, high, method) of the BCa bootstrap interval of `statistic` over `values`: method BCA,
    or PERCENTILE where BCa is undefined (ALL_EQUAL for equal values, "" below the minimum n)."""
    values = np.sort(np.asarray(values, dtype=float))  # resampling must not depend on load order
    if len(values) < MIN_N_BOOTSTRAP:
        return np.nan, np.nan, ""
    if np.ptp(values) == 0:
        return float(statistic(values)), float(statistic(values)), ALL_EQUAL
    for method in (BCA, PERCENTILE):
        with warnings.catch_warnings():  # scipy warns when a resample is degenerate
            warnings.simplefilter("ignore")
            ci = scipy.stats.bootstrap(
                (values,),
                statistic,
                confidence_level=confidence,
                n_resamples=BOOTSTRAP_RESAMPLES,
                method=method,
                rng=np.random.default_rng(seed),
            ).confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            break
    return float(ci.low), float(ci.high), method


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(low, high) of the Wilson score interval of successes / n (NaN when n = 0)."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return np.nan, np.nan
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return float(low), float(high)
