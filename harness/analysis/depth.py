"""The paper's claim, quantified: does the Langevin gain grow with depth, and from which depth is it
reliably positive?

The seed is the unit: the gains of one seed at several depths share its initial weights and data
order and are not independent. Per comparison (dataset, model, pair, Langevin arm) and per seed s
with paired gains at every depth of the comparison (two or more), a least-squares line
(scipy.stats.linregress)
    gain_{s,d} = a_s + b_s · d;
then over the m seeds: slope = mean_s b_s with its t interval mean ± t_{(1+c)/2, m-1} · sd(b) / √m
(m ≥ 3, `intervals.t_interval`), the two-sided one-sample t-test p-value of b = 0, and
intercept = mean_s a_s. This is the summary-statistics form of a random-slope model: its interval
covers the mean slope also when seeds differ in their slope (pooled OLS over all points does not).
A seed that ran only some of the depths (studies of other depths pooled, one with more seeds) is
left out: its line would describe a part of the depth range, and the mean would mix slopes over
different ranges; `n_seeds` counts the seeds used.
Gains are the paired outcomes of `paired` (a diverged or failed run counts at chance accuracy).
`onset_depth` is the smallest depth d such that the gain's CI lower bound (from `paired`) is > 0 at
d and at every larger depth studied; NaN when the deepest depth's bound is not above 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from harness.analysis.intervals import CONFIDENCE, MIN_N_T, t_interval

TREND_KEYS = ["dataset", "model", "pair", "arm"]
FIT_COLUMNS = ["slope", "slope_ci_low", "slope_ci_high", "slope_p", "intercept"]
TREND_COLUMNS = [*TREND_KEYS, "depths", "n_seeds", *FIT_COLUMNS, "onset_depth"]


def onset_depth(gains: pd.DataFrame) -> float:
    """Smallest depth from which `ci_low` > 0 holds at that depth and all deeper ones."""
    ordered = gains.sort_values("depth")
    above = (ordered["ci_low"] > 0).to_numpy()  # NaN (too few seeds) is not above
    if not above[-1]:
        return np.nan
    below = ordered["depth"].to_numpy()[~above]
    depths = ordered["depth"].to_numpy()
    return float(depths[depths > below.max()].min() if below.size else depths.min())


def seed_lines(points: pd.DataFrame) -> pd.DataFrame:
    """Per seed with gains at every depth of `points` (two or more): `slope` and `intercept` of its
    gain vs depth."""
    depths = points["depth"].nunique()
    lines = []
    for seed, own in points.groupby("seed", sort=True):
        if depths >= 2 and own["depth"].nunique() == depths:
            fit = scipy.stats.linregress(own["depth"], own["gain"])
            lines.append({"seed": seed, "slope": fit.slope, "intercept": fit.intercept})
    return pd.DataFrame(lines, columns=["seed", "slope", "intercept"])


def slope_fit(points: pd.DataFrame, confidence: float = CONFIDENCE) -> dict[str, float]:
    """FIT_COLUMNS and n_seeds from the (seed, depth, gain) `points` of one comparison."""
    lines = seed_lines(points)
    fit = {"n_seeds": len(lines), **dict.fromkeys(FIT_COLUMNS, np.nan)}
    if len(lines) < MIN_N_T:
        return fit
    slopes = lines["slope"].to_numpy(dtype=float)
    low, high = t_interval(slopes, confidence)
    fit.update(
        slope=slopes.mean(),
        slope_ci_low=low,
        slope_ci_high=high,
        slope_p=scipy.stats.ttest_1samp(slopes, 0.0).pvalue,
        intercept=lines["intercept"].mean(),
    )
    return fit


def depth_trend(
    per_seed: pd.DataFrame, gains: pd.DataFrame, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """One row per comparison: depths, n_seeds, slope, slope_ci_low, slope_ci_high, slope_p,
    intercept, onset_depth. `per_seed` and `gains` come from `paired.pair_seeds` / `summarize_gains`."""
    seeds_of = dict(list(per_seed.groupby(TREND_KEYS)))
    rows = []
    for keys, summary in gains.groupby(TREND_KEYS, sort=True):
        points = seeds_of[keys][["seed", "depth", "gain"]].dropna().astype(float)
        rows.append(
            {
                **dict(zip(TREND_KEYS, keys, strict=True)),
                "depths": ", ".join(str(d) for d in sorted(summary["depth"])),
                **slope_fit(points, confidence),
                "onset_depth": onset_depth(summary),
            }
        )
    return pd.DataFrame(rows, columns=TREND_COLUMNS)
