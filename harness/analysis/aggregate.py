"""Per-arm statistics over seeds: each (dataset, model, depth, arm) summarised.

A trial's value is its outcome (`metrics.outcome`): a diverged or failed trial counts at chance
accuracy for an accuracy metric and is left out of any other metric; n_finished, n_diverged and
n_failed say how many there were. For the values x of the n counted seeds: mean, std (ddof = 1),
median, and the 95 % Student-t interval of the mean (`intervals.t_interval`: n ≥ 3; an accuracy's
interval is clipped to [0, 1]).
"""

from __future__ import annotations

import pandas as pd

from harness.analysis.intervals import CONFIDENCE, UNBOUNDED, clip, t_halfwidth
from harness.analysis.load import ARM_KEYS, BEST_VAL_ACCURACY
from harness.analysis.metrics import is_accuracy, outcome
from harness.study.run_schema import STATUSES, VARIANTS

ARM_INFO = ["optimizer", "pair", "variant", "sigma", "layer_fraction", "shared_config"]
UNIT = (0.0, 1.0)


def describe(
    frame: pd.DataFrame, keys: list[str], column: str, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """n (non-NaN values), mean, std, median, ci_low, ci_high of `column` per group of `keys`;
    the interval is clipped to [0, 1] when `column` is an accuracy."""
    stats = frame.groupby(keys)[column].agg(n="count", mean="mean", std="std", median="median")
    halfwidth = t_halfwidth(stats["std"], stats["n"], confidence)
    bounds = UNIT if is_accuracy(column) else UNBOUNDED
    return stats.assign(
        ci_low=clip(stats["mean"] - halfwidth, bounds),
        ci_high=clip(stats["mean"] + halfwidth, bounds),
    )


def summarize(trials: pd.DataFrame, metric: str, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per arm: n_trials, n_finished/n_diverged/n_failed, then `{metric}_{stat}` and
    `best_val_accuracy_{stat}` for stat in n, mean, std, median, ci_low, ci_high (outcomes)."""
    groups = trials.groupby(ARM_KEYS)
    info = groups[ARM_INFO].first().assign(n_trials=groups.size())
    counts = (
        trials.groupby(ARM_KEYS)["status"]
        .value_counts()
        .unstack(fill_value=0)
        .reindex(columns=list(STATUSES), fill_value=0)
        .add_prefix("n_")
    )
    summary = info.join(counts)
    for column in dict.fromkeys([metric, BEST_VAL_ACCURACY]):
        values = trials.assign(**{column: outcome(trials, column)})
        stats = describe(values, ARM_KEYS, column, confidence).add_prefix(f"{column}_")
        summary = summary.join(stats)
        summary[f"{column}_n"] = summary[f"{column}_n"].fillna(0).astype(int)
    return order_arms(summary.reset_index())


def order_arms(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort by dataset, model, depth, pair, then baseline before its Langevin twins."""
    rank = frame["variant"].map({v: i for i, v in enumerate(VARIANTS)})
    by = ["dataset", "model", "depth", "pair", "_rank", "arm"]
    return frame.assign(_rank=rank).sort_values(by).drop(columns="_rank").reset_index(drop=True)
