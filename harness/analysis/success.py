"""Did a run train at all? Success rates, and accuracy given success, on a study's final runs.

A deep net either trains or sits near chance, so a mean accuracy mixes two questions. Here they are
asked apart, per arm (dataset, model, depth, arm):
- success: test accuracy > threshold (default: chance accuracy of the dataset + 10 points; a
  diverged or failed run is a failure); rate k / n with its Wilson interval (`intervals`), and
  between each Langevin arm and its baseline twin (`twin_tests`): the difference of rates
  k_L / n_L − k_B / n_B with Newcombe's hybrid score interval, Fisher's exact test (two-sided,
  scipy.stats.fisher_exact) on the 2×2 table [[k_L, n_L − k_L], [k_B, n_B − k_B]], and, on the
  seeds both twins ran (one seed: the same initial weights and batches), the exact McNemar test
  of the discordant seeds, b where only the Langevin twin trained and c where only its baseline
  did: p = min(1, 2 · P(Bin(b + c, 1/2) ≤ min(b, c))) (`harness.design.tests`, which holds both
  formulas);
- accuracy given success: the mean test accuracy of the successful runs with its BCa bootstrap
  interval (k ≥ MIN_N_BOOTSTRAP, else "too few seeds"; it stays inside [0, 1]; `acc_method` says
  "percentile" where BCa is undefined and the percentile interval stands in).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from harness.analysis.aggregate import order_arms
from harness.analysis.intervals import CONFIDENCE, bca_interval, wilson_interval
from harness.analysis.load import ARM_KEYS
from harness.analysis.metrics import chance_of, outcome
from harness.analysis.paired import COMPARISON_KEYS, PAIR_KEYS, require_one_run_per_seed
from harness.design.tests import mcnemar_p, newcombe_interval
from harness.study.run_schema import VARIANT_BASELINE

SUCCESS_METRIC = "test_accuracy"
DEFAULT_MARGIN = 0.10  # above chance accuracy
SUCCESS_COLUMNS = [
    *ARM_KEYS, "pair", "shared_config", "variant", "threshold", "n", "n_success", "success_rate",
    "success_low", "success_high", "acc_given_success", "acc_low", "acc_high", "acc_method",
]  # fmt: skip
TWIN_COLUMNS = [
    *PAIR_KEYS, "arm", "baseline_arm", "n_success", "n", "baseline_n_success", "baseline_n",
    "rate_difference", "diff_low", "diff_high", "p_fisher", "n_seed_pairs", "langevin_only",
    "baseline_only", "p_mcnemar",
]  # fmt: skip
DISCORDANT = ["n_seed_pairs", "langevin_only", "baseline_only"]


def thresholds(trials: pd.DataFrame, threshold: float | None = None) -> pd.Series:
    """Each trial's success threshold: `threshold` when given, else chance + DEFAULT_MARGIN."""
    if threshold is not None:
        return pd.Series(float(threshold), index=trials.index)
    return chance_of(trials) + DEFAULT_MARGIN


def successes(trials: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """The `trials` with an outcome, with their `accuracy` (the outcome), `threshold` and
    `success` (accuracy > threshold); two runs of one arm with one seed are a one-line
    HarnessError (`paired.require_one_run_per_seed`)."""
    require_one_run_per_seed(trials, ARM_KEYS)
    accuracy = outcome(trials, SUCCESS_METRIC)
    frame = trials.assign(accuracy=accuracy, threshold=thresholds(trials, threshold)).dropna(
        subset=["accuracy"]
    )
    return frame.assign(success=frame["accuracy"] > frame["threshold"])


def success_rates(
    trials: pd.DataFrame, threshold: float | None = None, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """SUCCESS_COLUMNS, one row per arm of `successes` (runs without an outcome yet left out)."""
    frame = successes(trials, threshold)
    rows = []
    for keys, arm in frame.groupby(ARM_KEYS, sort=True):
        k, n = int(arm["success"].sum()), len(arm)
        good = arm.loc[arm["success"], "accuracy"].to_numpy(dtype=float)
        acc_low, acc_high, acc_method = bca_interval(good, np.mean, confidence)
        rows.append(
            {
                **dict(zip(ARM_KEYS, keys, strict=True)),
                **arm[["pair", "shared_config", "variant", "threshold"]].iloc[0].to_dict(),
                "n": n,
                "n_success": k,
                "success_rate": k / n,
                **dict(
                    zip(
                        ["success_low", "success_high"],
                        wilson_interval(k, n, confidence),
                        strict=True,
                    )
                ),
                "acc_given_success": good.mean() if k else np.nan,
                "acc_low": acc_low,
                "acc_high": acc_high,
                "acc_method": acc_method,
            }
        )
    return order_arms(pd.DataFrame(rows, columns=SUCCESS_COLUMNS))


def twin_tests(
    rates: pd.DataFrame, runs: pd.DataFrame, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """TWIN_COLUMNS: each Langevin arm of `rates` (`success_rates`) against its baseline twin
    (same PAIR_KEYS), the McNemar test on the seed pairs of `runs` (`successes`)."""
    baseline = rates[rates["variant"] == VARIANT_BASELINE]
    langevin = rates[rates["variant"] != VARIANT_BASELINE]
    twins = langevin.merge(baseline, on=PAIR_KEYS, suffixes=("", "_base"))
    twins = twins.merge(_discordant(runs), on=COMPARISON_KEYS, how="left").fillna(
        dict.fromkeys(DISCORDANT, 0)
    )
    rows = []
    for row in twins.itertuples():
        table = [
            [row.n_success, row.n - row.n_success],
            [row.n_success_base, row.n_base - row.n_success_base],
        ]
        low, high = newcombe_interval(
            row.n_success, row.n, row.n_success_base, row.n_base, confidence
        )
        rows.append(
            {
                **{key: getattr(row, key) for key in PAIR_KEYS},
                "arm": row.arm,
                "baseline_arm": row.arm_base,
                "n_success": row.n_success,
                "n": row.n,
                "baseline_n_success": row.n_success_base,
                "baseline_n": row.n_base,
                "rate_difference": row.success_rate - row.success_rate_base,
                "diff_low": low,
                "diff_high": high,
                "p_fisher": scipy.stats.fisher_exact(table).pvalue,
                **{column: int(getattr(row, column)) for column in DISCORDANT},
                "p_mcnemar": mcnemar_p(row.langevin_only, row.baseline_only),
            }
        )
    return pd.DataFrame(rows, columns=TWIN_COLUMNS)


def _discordant(runs: pd.DataFrame) -> pd.DataFrame:
    """Per comparison (COMPARISON_KEYS): DISCORDANT over the seeds both twins ran."""
    is_baseline = runs["variant"] == VARIANT_BASELINE
    pairs = runs[~is_baseline].merge(
        runs[is_baseline], on=[*PAIR_KEYS, "seed"], suffixes=("", "_base")
    )
    pairs = pairs.assign(
        langevin_only=pairs["success"] & ~pairs["success_base"],
        baseline_only=~pairs["success"] & pairs["success_base"],
    )
    return (
        pairs.groupby(COMPARISON_KEYS)
        .agg(
            n_seed_pairs=("seed", "size"),
            langevin_only=("langevin_only", "sum"),
            baseline_only=("baseline_only", "sum"),
        )
        .reset_index()
    )
