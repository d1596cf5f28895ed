"""Learning curves over epochs and time to a target (DeepOBS' speed, AlgoPerf's time-to-target).

Only finished trials are used (a diverged or failed run has no curve to average; the summary
counts it). `learning_curves`: per (dataset, model, depth, arm, epoch), the
n, mean, std, median and t interval across seeds of a per-epoch metric (as in `aggregate`).
`trials_to_target`: per trial, the first epoch e with metric_e ≥ target (≤ where lower is better,
`metrics.DIRECTION`) and the seconds until then, Σ_{k ≤ e} epoch_time_s_k; NaN when never reached.
`time_to_target`: per arm, n, n_reached, and the median and mean epochs and seconds to target of
the trials that reached it.
"""

from __future__ import annotations

import pandas as pd

from harness.analysis.aggregate import describe, order_arms
from harness.analysis.intervals import CONFIDENCE
from harness.analysis.load import ARM_KEYS
from harness.analysis.metrics import direction
from harness.study.run_schema import STATUS_FINISHED

CURVE_METRIC = "val_accuracy"
CURVE_KEYS = [*ARM_KEYS, "pair", "variant"]


def learning_curves(
    epochs: pd.DataFrame, metric: str = CURVE_METRIC, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """Mean ± t interval of `metric` across seeds, per arm and epoch."""
    finished = epochs[epochs["status"] == STATUS_FINISHED]
    return describe(finished, [*CURVE_KEYS, "epoch"], metric, confidence).reset_index()


def trials_to_target(
    epochs: pd.DataFrame, target: float, metric: str = CURVE_METRIC
) -> pd.DataFrame:
    """Per finished trial: epochs_to_target and seconds_to_target (NaN when never reached)."""
    finished = epochs[epochs["status"] == STATUS_FINISHED].sort_values(["run_id", "epoch"])
    finished = finished.assign(seconds=finished.groupby("run_id")["epoch_time_s"].cumsum())
    reached = direction(metric) * (finished[metric] - target) >= 0
    first_hit = finished[reached].groupby("run_id")[["epoch", "seconds"]].first()
    per_trial = finished.groupby("run_id")[[*CURVE_KEYS, "seed"]].first()
    return per_trial.join(
        first_hit.rename(columns={"epoch": "epochs_to_target", "seconds": "seconds_to_target"})
    ).reset_index()


def time_to_target(epochs: pd.DataFrame, target: float, metric: str = CURVE_METRIC) -> pd.DataFrame:
    """Per arm: n, n_reached, epochs_median, epochs_mean, seconds_median, seconds_mean."""
    per_trial = trials_to_target(epochs, target, metric)
    groups = per_trial.groupby(CURVE_KEYS)
    summary = groups.agg(
        n=("run_id", "size"),
        n_reached=("epochs_to_target", "count"),
        epochs_median=("epochs_to_target", "median"),
        epochs_mean=("epochs_to_target", "mean"),
        seconds_median=("seconds_to_target", "median"),
        seconds_mean=("seconds_to_target", "mean"),
    )
    return order_arms(summary.reset_index()).assign(target=target, metric=metric)
