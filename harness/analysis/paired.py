"""Paired Langevin − baseline differences, seed by seed.

A Langevin arm and its baseline (same dataset, model, depth and pair) run with the same seed share
initial weights and data order, so they are compared per seed:
    gain_s = sign · (langevin_s − baseline_s),   sign = −1 for a loss metric, +1 otherwise,
so that gain > 0 always means "Langevin did better". Only seeds whose trials finished with a value
on both sides are paired; the others are listed in `unpaired`. Over the n paired seeds:
mean gain, std (ddof = 1), the t interval mean ± t_{(1+c)/2, n-1} · std / √n, the percentile
bootstrap interval of the mean (9999 resamples, fixed seed), the Wilcoxon signed-rank p-value and
the paired t-test p-value (one-sample t-test of the gains against 0), and the win rate (fraction of
seeds with gain > 0). Below MIN_PAIRS paired seeds no interval or test is computed; `note` says so.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.stats

from harness.analysis.aggregate import CONFIDENCE, t_halfwidth
from harness.study.run_schema import BASE_DISPLAY, STATUS_FINISHED, VARIANT_BASELINE

MIN_PAIRS = 3
PAIR_KEYS = ["dataset", "model", "depth", "pair"]
COMPARISON_KEYS = [*PAIR_KEYS, "arm"]
GAIN_STATS = [
    "mean_gain",
    "std_gain",
    "win_rate",
    "ci_low",
    "ci_high",
    "boot_low",
    "boot_high",
    "p_wilcoxon",
    "p_ttest",
]
GAIN_COLUMNS = [*COMPARISON_KEYS, "baseline_arm", "n_pairs", *GAIN_STATS, "unpaired", "note"]


def gain_sign(metric: str) -> float:
    """+1 where higher is better (accuracy), −1 for a loss."""
    return -1.0 if "loss" in metric else 1.0


def pair_seeds(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (dataset, model, depth, pair, Langevin arm, seed) over the seeds run on either
    side: `baseline` and `langevin` values (NaN where that side did not finish with a value) and
    `gain` (NaN unless both did)."""
    value = trials[metric].where(trials["status"] == STATUS_FINISHED)
    frame = trials.assign(value=value)
    is_baseline = frame["variant"] == VARIANT_BASELINE
    langevin = frame.loc[~is_baseline, [*COMPARISON_KEYS, "seed", "value"]].rename(
        columns={"value": "langevin"}
    )
    baseline = frame.loc[is_baseline, [*PAIR_KEYS, "seed", "value"]].rename(
        columns={"value": "baseline"}
    )
    # Every Langevin arm meets every seed its baseline ran, so baseline-only seeds show up too.
    arms = langevin[COMPARISON_KEYS].drop_duplicates()
    per_seed = langevin.merge(
        arms.merge(baseline, on=PAIR_KEYS), on=[*COMPARISON_KEYS, "seed"], how="outer"
    )
    per_seed["gain"] = gain_sign(metric) * (per_seed["langevin"] - per_seed["baseline"])
    return per_seed.sort_values([*COMPARISON_KEYS, "seed"], ignore_index=True)


def gain_stats(gains: np.ndarray, confidence: float = CONFIDENCE) -> dict[str, float]:
    """mean_gain, std_gain, win_rate, ci_low/ci_high (t), boot_low/boot_high, p_wilcoxon, p_ttest."""
    n = len(gains)
    stats = dict.fromkeys(GAIN_STATS, np.nan)
    if n:
        stats.update(mean_gain=gains.mean(), win_rate=(gains > 0).mean())
    if n < MIN_PAIRS:
        return stats
    std = gains.std(ddof=1)
    halfwidth = t_halfwidth(std, n, confidence)
    boot = scipy.stats.bootstrap(
        (gains,),
        np.mean,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    with warnings.catch_warnings():  # constant gains: the tests' variance is 0, p-values degenerate
        warnings.simplefilter("ignore", RuntimeWarning)
        p_wilcoxon = scipy.stats.wilcoxon(gains).pvalue
        p_ttest = scipy.stats.ttest_1samp(gains, 0.0).pvalue
    stats.update(
        std_gain=std,
        ci_low=stats["mean_gain"] - halfwidth,
        ci_high=stats["mean_gain"] + halfwidth,
        boot_low=boot.low,
        boot_high=boot.high,
        p_wilcoxon=p_wilcoxon,
        p_ttest=p_ttest,
    )
    return stats


def summarize_gains(per_seed: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per comparison (dataset, model, depth, pair, Langevin arm): `baseline_arm`, n_pairs,
    the gain statistics, `unpaired` (which seeds lack a partner) and `note`."""
    rows = []
    for keys, group in per_seed.groupby(COMPARISON_KEYS, sort=True):
        row = dict(zip(COMPARISON_KEYS, keys, strict=True))
        baseline_arm = BASE_DISPLAY.get(row["pair"], row["pair"])
        gains = group["gain"].dropna().to_numpy()
        rows.append(
            {
                **row,
                "baseline_arm": baseline_arm,
                "n_pairs": len(gains),
                **gain_stats(gains, confidence),
                "unpaired": _unpaired(group, baseline_arm, row["arm"]),
                "note": _note(len(gains)),
            }
        )
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


def _unpaired(group: pd.DataFrame, baseline_arm: str, arm: str) -> str:
    sides = {
        f"{baseline_arm} only": group["baseline"].notna() & group["langevin"].isna(),
        f"{arm} only": group["langevin"].notna() & group["baseline"].isna(),
        "neither finished": group["langevin"].isna() & group["baseline"].isna(),
    }
    return "; ".join(
        f"{side}: seeds {', '.join(map(str, group.loc[mask, 'seed']))}"
        for side, mask in sides.items()
        if mask.any()
    )


def _note(n_pairs: int) -> str:
    if n_pairs == 0:
        return "no seed finished on both sides"
    if n_pairs < MIN_PAIRS:
        return f"too few seeds (n={n_pairs} < {MIN_PAIRS}): no CI, no test"
    return ""
