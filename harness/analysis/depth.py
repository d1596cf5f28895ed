"""The paper's claim, quantified: does the Langevin gain grow with depth, and from which depth is it
reliably positive?

Per comparison (dataset, model, pair, Langevin arm), over all its paired seeds at all depths:
    gain_s = intercept + slope · depth_s + ε   (ordinary least squares, scipy.stats.linregress),
with the slope's interval slope ± t_{(1+c)/2, m-2} · stderr (m paired seeds; needs m ≥ 3 and two
depths) and the two-sided p-value of slope = 0.
`onset_depth` is the smallest depth d such that the gain's CI lower bound (from `paired`) is > 0 at
d and at every larger depth studied; NaN when the deepest depth's bound is not above 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from harness.analysis.aggregate import CONFIDENCE

TREND_KEYS = ["dataset", "model", "pair", "arm"]
FIT_COLUMNS = ["slope", "slope_ci_low", "slope_ci_high", "slope_p", "intercept"]
TREND_COLUMNS = [*TREND_KEYS, "depths", "n_pairs", *FIT_COLUMNS, "onset_depth"]


def onset_depth(gains: pd.DataFrame) -> float:
    """Smallest depth from which `ci_low` > 0 holds at that depth and all deeper ones."""
    ordered = gains.sort_values("depth")
    above = (ordered["ci_low"] > 0).to_numpy()  # NaN (too few seeds) is not above
    if not above[-1]:
        return np.nan
    below = ordered["depth"].to_numpy()[~above]
    depths = ordered["depth"].to_numpy()
    return float(depths[depths > below.max()].min() if below.size else depths.min())


def depth_trend(
    per_seed: pd.DataFrame, gains: pd.DataFrame, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """One row per comparison: depths, n_pairs, slope, slope_ci_low, slope_ci_high, slope_p,
    intercept, onset_depth. `per_seed` and `gains` come from `paired.pair_seeds` / `summarize_gains`."""
    seeds_of = dict(list(per_seed.groupby(TREND_KEYS)))
    rows = []
    for keys, summary in gains.groupby(TREND_KEYS, sort=True):
        points = seeds_of[keys][["depth", "gain"]].dropna().astype(float)
        row = {
            **dict(zip(TREND_KEYS, keys, strict=True)),
            "depths": ", ".join(str(d) for d in sorted(summary["depth"])),
            "n_pairs": len(points),
            **dict.fromkeys(FIT_COLUMNS, np.nan),
            "onset_depth": onset_depth(summary),
        }
        if len(points) >= 3 and points["depth"].nunique() >= 2:
            fit = scipy.stats.linregress(points["depth"], points["gain"])
            halfwidth = scipy.stats.t.ppf((1 + confidence) / 2, len(points) - 2) * fit.stderr
            row.update(
                slope=fit.slope,
                slope_ci_low=fit.slope - halfwidth,
                slope_ci_high=fit.slope + halfwidth,
                slope_p=fit.pvalue,
                intercept=fit.intercept,
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=TREND_COLUMNS)
