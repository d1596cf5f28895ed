"""Paired Langevin − baseline differences, seed by seed.

A Langevin arm and its baseline (same dataset, model, depth, pair and shared_config, see
`load`) run with the same seed share initial weights and data order, so they are compared per
seed on their outcomes (`metrics.outcome`: a diverged or failed run counts at chance accuracy):
    gain_s = round(direction(metric) · (langevin_s − baseline_s), GAIN_DECIMALS),
so that gain > 0 always means "Langevin did better" (`metrics.DIRECTION`). Rounding to 1e-9
makes equal differences equal: +1009 and −1009 of 10 000 test images, computed from accuracies
whose last bits differ, tie in Wilcoxon's ranks, and a difference of a few ulps is a tie, not a
win. A pair is one (comparison, seed): two runs of one Langevin arm with one seed, or two baseline
runs (of one arm or of two) that would both pair with a Langevin arm at one seed, are refused
with a one-line HarnessError (`require_one_run_per_seed`) rather than cross-joined. Seeds without
a value on both sides are listed in `unpaired`; n_failed_baseline / n_failed_langevin count the
paired seeds whose run diverged or failed on that side. Over the n paired seeds:
mean gain, std (ddof = 1), wins / ties / losses (gain > 0, = 0, < 0), the t interval (n ≥ 3;
clipped to [−1, 1] for an accuracy), the BCa bootstrap interval of the mean (n ≥ 8; `boot_method`
says "percentile" where BCa is undefined and the percentile interval stands in), the Wilcoxon
signed-rank p-value (n ≥ 3) with its Holm correction (`holm`), and the paired t-test p-value
(one-sample t-test of the gains against 0). The Wilcoxon call is explicit, so that its p does not move with scipy's defaults:
    scipy.stats.wilcoxon(gains, zero_method="wilcox", method=PermutationMethod(9999, rng=0)),
zero gains dropped (Wilcoxon's own rule; `n_nonzero` counts the gains it ranks and `note` says
how many it dropped; all gains zero: p = 1), ties given their average rank, and the p-value from
the sign-flip distribution of the signed-rank statistic (scipy's PermutationMethod, 9999
resamples from a fixed seed: every one of the 2^n sign patterns, so exact, for n ≤ 13).
`note` also says which statistics too few seeds left out (see `intervals` for each minimum n).

The Holm family here is one Langevin arm over the depths of one analyze call (FAMILY_KEYS): m is
the number of its comparisons, those without a p-value (too few seeds) included, so a missing p
never makes the others' correction milder. It is a secondary correction: a study's declared
family of confirmatory comparisons is corrected elsewhere.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.stats

from harness.analysis.intervals import (
    CONFIDENCE,
    MIN_N_BOOTSTRAP,
    MIN_N_T,
    UNBOUNDED,
    bca_interval,
    t_interval,
)
from harness.analysis.metrics import direction, is_accuracy, outcome
from harness.errors import HarnessError
from harness.study.run_schema import STATUS_DIVERGED, STATUS_FAILED, VARIANT_BASELINE

PAIR_KEYS = ["dataset", "model", "depth", "pair", "shared_config"]
COMPARISON_KEYS = [*PAIR_KEYS, "arm"]
# Comparisons whose p-values are Holm-corrected together: one Langevin arm over the depths of one
# analyze call (a secondary family).
FAMILY_KEYS = ["dataset", "model", "pair", "arm"]
HOLM_FAMILY = "p Holm: secondary, family: one Langevin arm over the depths of this analysis"
GAIN_STATS = [
    "n_nonzero",
    "mean_gain",
    "std_gain",
    "n_wins",
    "n_ties",
    "n_losses",
    "ci_low",
    "ci_high",
    "boot_low",
    "boot_high",
    "boot_method",
    "p_wilcoxon",
    "p_ttest",
]
GAIN_COLUMNS = [
    *COMPARISON_KEYS,
    "baseline_arm",
    "n_pairs",
    "n_failed_baseline",
    "n_failed_langevin",
    *GAIN_STATS,
    "p_wilcoxon_holm",
    "unpaired",
    "note",
]
GAIN_BOUNDS = (-1.0, 1.0)
WILCOXON_RESAMPLES = 9999  # ≥ 2^13: the sign-flip distribution is enumerated up to n = 13
GAIN_DECIMALS = 9  # far below any real difference (one test image in 10^6 is 1e-6)
NO_BASELINE = "no baseline"  # a Langevin arm whose setting no baseline ran


def require_one_run_per_seed(trials: pd.DataFrame, keys: list[str]) -> None:
    """A one-line HarnessError naming the arm(s), the seed and the runs (trial key and run id) when
    two `trials` share `keys` and a seed: they would count twice, or pair with one partner."""
    by = [*keys, "seed"]
    twice = trials[trials.duplicated(by, keep=False)].sort_values([*by, "arm"])
    if twice.empty:
        return
    first = twice.iloc[0]
    same = twice[(twice[by] == first[by]).all(axis=1)]
    arms = ", ".join(repr(arm) for arm in dict.fromkeys(same["arm"]))
    runs = ", ".join(f"{key} (run {run})" for key, run in zip(same["trial_key"], same["run_id"]))
    raise HarnessError(
        f"{arms} at {first['dataset']}/{first['model']} depth {first['depth']}: {len(same)} runs "
        f"with seed {first['seed']} ({runs}); a seed runs once per arm and pairs once: drop the "
        "duplicate run, or keep its configs apart (fewer --per-arm names)"
    )


def pair_seeds(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (comparison, seed) over the seeds run on either side: `baseline` and `langevin`
    outcomes (NaN where that side has none), whether each side `*_failed` (diverged or failed),
    `baseline_arm`, and `gain` (rounded to GAIN_DECIMALS; NaN unless both sides have a value)."""
    failed = trials["status"].isin([STATUS_DIVERGED, STATUS_FAILED])
    frame = trials.assign(value=outcome(trials, metric), failed=failed)
    is_baseline = frame["variant"] == VARIANT_BASELINE
    require_one_run_per_seed(frame[~is_baseline], COMPARISON_KEYS)
    require_one_run_per_seed(frame[is_baseline], PAIR_KEYS)
    langevin = frame.loc[~is_baseline, [*COMPARISON_KEYS, "seed", "value", "failed"]].rename(
        columns={"value": "langevin", "failed": "langevin_failed"}
    )
    baseline = frame.loc[is_baseline, [*PAIR_KEYS, "seed", "arm", "value", "failed"]].rename(
        columns={"arm": "baseline_arm", "value": "baseline", "failed": "baseline_failed"}
    )
    # Every Langevin arm meets every seed its baseline ran, so baseline-only seeds show up too.
    arms = langevin[COMPARISON_KEYS].drop_duplicates()
    per_seed = langevin.merge(
        arms.merge(baseline, on=PAIR_KEYS), on=[*COMPARISON_KEYS, "seed"], how="outer"
    )
    per_seed["gain"] = (direction(metric) * (per_seed["langevin"] - per_seed["baseline"])).round(
        GAIN_DECIMALS
    )
    return per_seed.sort_values([*COMPARISON_KEYS, "seed"], ignore_index=True)


def gain_stats(gains: np.ndarray, metric: str, confidence: float = CONFIDENCE) -> dict:
    """The GAIN_STATS of the paired `gains` of `metric` (NaN where n is below a minimum)."""
    n = len(gains)
    stats = dict.fromkeys(GAIN_STATS, np.nan)
    stats.update(
        boot_method="",
        n_nonzero=int((gains != 0).sum()),
        n_wins=int((gains > 0).sum()),
        n_ties=int((gains == 0).sum()),
        n_losses=int((gains < 0).sum()),
    )
    if n:
        stats.update(mean_gain=gains.mean())
    if n < MIN_N_T:
        return stats
    bounds = GAIN_BOUNDS if is_accuracy(metric) else UNBOUNDED
    ci_low, ci_high = t_interval(gains, confidence, bounds)
    boot_low, boot_high, boot_method = bca_interval(gains, np.mean, confidence)
    with warnings.catch_warnings():  # constant gains: the tests' variance is 0, p-values degenerate
        warnings.simplefilter("ignore", RuntimeWarning)
        p_wilcoxon = (
            scipy.stats.wilcoxon(gains, zero_method="wilcox", method=_wilcoxon_method()).pvalue
            if np.any(gains != 0)
            else 1.0
        )
        p_ttest = scipy.stats.ttest_1samp(gains, 0.0).pvalue
    stats.update(
        std_gain=gains.std(ddof=1),
        ci_low=ci_low,
        ci_high=ci_high,
        boot_low=boot_low,
        boot_high=boot_high,
        boot_method=boot_method,
        p_wilcoxon=p_wilcoxon,
        p_ttest=p_ttest,
    )
    return stats


def _wilcoxon_method() -> scipy.stats.PermutationMethod:
    """The sign-flip null distribution of WILCOXON_RESAMPLES resamples from a fixed seed."""
    return scipy.stats.PermutationMethod(
        n_resamples=WILCOXON_RESAMPLES, rng=np.random.default_rng(0)
    )


def summarize_gains(
    per_seed: pd.DataFrame, metric: str, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """One row per comparison (dataset, model, depth, pair, shared_config, Langevin arm):
    `baseline_arm`, n_pairs, the failure counts, the gain statistics, `p_wilcoxon_holm`,
    `unpaired` (which seeds lack a partner) and `note`."""
    rows = []
    for keys, group in per_seed.groupby(COMPARISON_KEYS, sort=True):
        row = dict(zip(COMPARISON_KEYS, keys, strict=True))
        named = group["baseline_arm"].dropna()
        baseline_arm = named.iloc[0] if len(named) else NO_BASELINE
        paired = group[group["gain"].notna()]
        gains = paired["gain"].to_numpy(dtype=float)
        stats = gain_stats(gains, metric, confidence)
        rows.append(
            {
                **row,
                "baseline_arm": baseline_arm,
                "n_pairs": len(gains),
                "n_failed_baseline": int(paired["baseline_failed"].astype(bool).sum()),
                "n_failed_langevin": int(paired["langevin_failed"].astype(bool).sum()),
                **stats,
                "unpaired": _unpaired(group, baseline_arm, row["arm"]),
                "note": _note(len(gains), stats["n_nonzero"]),
            }
        )
    gains = pd.DataFrame(rows, columns=GAIN_COLUMNS)
    return gains.assign(p_wilcoxon_holm=holm(gains, "p_wilcoxon"))


def holm(gains: pd.DataFrame, column: str) -> pd.Series:
    """Holm-adjusted `column` within each FAMILY_KEYS group (the depths of one comparison), with
    m = every comparison of the group: a NaN p stays NaN and enters the correction as p = 1, the
    last in Holm's order, so that the others are multiplied as in a family of m."""
    from statsmodels.stats.multitest import multipletests

    adjusted = pd.Series(np.nan, index=gains.index)
    for _, family in gains.groupby(FAMILY_KEYS):
        p = family[column]
        adjusted[family.index] = multipletests(p.fillna(1.0).to_numpy(), method="holm")[1]
        adjusted[p.index[p.isna()]] = np.nan
    return adjusted


def _unpaired(group: pd.DataFrame, baseline_arm: str, arm: str) -> str:
    sides = {
        f"{baseline_arm} only": group["baseline"].notna() & group["langevin"].isna(),
        f"{arm} only": group["langevin"].notna() & group["baseline"].isna(),
        "neither has a value": group["langevin"].isna() & group["baseline"].isna(),
    }
    return "; ".join(
        f"{side}: seeds {', '.join(map(str, group.loc[mask, 'seed']))}"
        for side, mask in sides.items()
        if mask.any()
    )


def _note(n_pairs: int, n_nonzero: int) -> str:
    if n_pairs == 0:
        return "no seed with a value on both sides"
    if n_pairs < MIN_N_T:
        return f"too few seeds (n={n_pairs} < {MIN_N_T}): no CI, no test"
    notes = []
    if n_pairs < MIN_N_BOOTSTRAP:
        notes.append(f"too few seeds for a bootstrap CI (n={n_pairs} < {MIN_N_BOOTSTRAP})")
    if n_nonzero < n_pairs:
        notes.append(
            f"Wilcoxon on the {n_nonzero} non-zero gains ({n_pairs - n_nonzero} zero "
            f"gain{'s' if n_pairs - n_nonzero > 1 else ''} dropped)"
        )
    return "; ".join(notes)
