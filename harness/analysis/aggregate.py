"""Per-arm statistics over seeds: each (dataset, model, depth, arm) summarised.

Only finished trials enter the statistics; failed and diverged ones are counted in their own
columns (n_failed, n_diverged) and never averaged in. For a value x over the n finished seeds:
mean, std (ddof = 1), median, and the 95 % Student-t interval of the mean,
    mean ± t_{(1+c)/2, n-1} · std / √n,
which is undefined (NaN) for n < 2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from harness.analysis.load import ARM_KEYS, BEST_VAL_ACCURACY
from harness.study.run_schema import STATUS_FINISHED, STATUSES, VARIANTS

CONFIDENCE = 0.95
ARM_INFO = ["optimizer", "pair", "variant", "sigma", "layer_fraction"]


def t_halfwidth(std, n, confidence: float = CONFIDENCE):
    """Half-width of the t interval of a mean: t_{(1+c)/2, n-1} · std / √n (NaN where n < 2)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (
            scipy.stats.t.ppf((1 + confidence) / 2, n - 1)
            * np.asarray(std, dtype=float)
            / np.sqrt(n)
        )


def describe(
    frame: pd.DataFrame, keys: list[str], column: str, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """n (non-NaN values), mean, std, median, ci_low, ci_high of `column` per group of `keys`."""
    stats = frame.groupby(keys)[column].agg(n="count", mean="mean", std="std", median="median")
    halfwidth = t_halfwidth(stats["std"], stats["n"], confidence)
    return stats.assign(ci_low=stats["mean"] - halfwidth, ci_high=stats["mean"] + halfwidth)


def summarize(trials: pd.DataFrame, metric: str, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per arm: n_trials, n_finished/n_diverged/n_failed, then `{metric}_{stat}` and
    `best_val_accuracy_{stat}` for stat in n, mean, std, median, ci_low, ci_high (finished trials)."""
    groups = trials.groupby(ARM_KEYS)
    info = groups[ARM_INFO].first().assign(n_trials=groups.size())
    counts = (
        trials.groupby(ARM_KEYS)["status"]
        .value_counts()
        .unstack(fill_value=0)
        .reindex(columns=list(STATUSES), fill_value=0)
        .add_prefix("n_")
    )
    finished = trials[trials["status"] == STATUS_FINISHED]
    summary = info.join(counts)
    for column in dict.fromkeys([metric, BEST_VAL_ACCURACY]):
        stats = describe(finished, ARM_KEYS, column, confidence).add_prefix(f"{column}_")
        summary = summary.join(stats)
        summary[f"{column}_n"] = summary[f"{column}_n"].fillna(0).astype(int)
    return order_arms(summary.reset_index())


def order_arms(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort by dataset, model, depth, pair, then baseline before its Langevin twins."""
    rank = frame["variant"].map({v: i for i, v in enumerate(VARIANTS)})
    by = ["dataset", "model", "depth", "pair", "_rank", "arm"]
    return frame.assign(_rank=rank).sort_values(by).drop(columns="_rank").reset_index(drop=True)
