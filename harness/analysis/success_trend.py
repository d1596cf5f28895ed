"""Does a Langevin twin's advantage in success grow with depth? A logistic model of success on a
tuned study's final runs (secondary: a study's declared tests decide, not this).

Per Langevin arm (dataset, model, pair, arm) and its baseline twin (the baseline of the same
dataset, model, depth, pair and shared_config, as in `paired`), over the final runs of both at
every depth both ran, success y (`success.successes`: test accuracy above the threshold; a
diverged or failed run is a failure) is modelled as
    logit P(y = 1) = b0 + b1 · depth + b2 · L + b3 · depth · L,   L = 1 for the Langevin twin
(statsmodels GLM, Binomial family, logit link, maximum likelihood). b3 is `interaction`: how much
the Langevin − baseline difference in log-odds changes per layer (> 0: the twin's advantage grows
with depth); it equals the Langevin twin's log-odds slope in depth minus its baseline's. A seed
gives both twins the same initial weights and batches at every depth, so seeds are clusters: the
covariance is cluster-robust over seeds (cov_type "cluster" with statsmodels' small-sample
correction), and `p` and the interval [ci_low, ci_high] use Student's t with (seeds − 1) degrees
of freedom. The G seeds' score sums add up to 0, so the cluster-robust covariance has rank at
most G − 1: below MIN_CLUSTERS seeds the model-based covariance (normal) stands in, and
`covariance` says which was used.

Degenerate data has no finite estimate, and gets NaN with a `note` saying why, never an exception:
one depth only, no baseline twin, or a twin whose successes and failures are separated by depth
(all of its runs trained, none did, or every trained run lies on one side in depth of every
untrained one). For one covariate with an intercept that is exactly when its log-odds slope has
no finite maximum-likelihood estimate, and the model above is the two twins' own logistic
regressions on depth side by side, so it has a finite estimate exactly when neither twin is
separated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.depth import TREND_KEYS
from harness.analysis.intervals import CONFIDENCE
from harness.analysis.paired import NO_BASELINE, PAIR_KEYS
from harness.analysis.success import successes
from harness.study.run_schema import VARIANT_BASELINE

MIN_CLUSTERS = 5  # one more than the model's 4 coefficients
CLUSTERED = "cluster-robust (seeds)"
MODEL_BASED = f"model-based (fewer than {MIN_CLUSTERS} seeds)"
FIT_COLUMNS = ["interaction", "se", "ci_low", "ci_high", "p"]
SUCCESS_TREND_COLUMNS = [
    *TREND_KEYS, "baseline_arm", "depths", "n_runs", "n_seeds", *FIT_COLUMNS, "covariance", "note",
]  # fmt: skip


def success_trend(
    trials: pd.DataFrame, threshold: float | None = None, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """SUCCESS_TREND_COLUMNS, one row per Langevin arm of the final `trials` (see the module
    docstring; `threshold` as in `success.thresholds`)."""
    runs = successes(trials, threshold)
    is_baseline = runs["variant"] == VARIANT_BASELINE
    rows = []
    for keys, langevin in runs[~is_baseline].groupby(TREND_KEYS, sort=True):
        baseline = runs[is_baseline].merge(langevin[PAIR_KEYS].drop_duplicates(), on=PAIR_KEYS)
        rows.append(
            {**dict(zip(TREND_KEYS, keys, strict=True)), **_fit(langevin, baseline, confidence)}
        )
    return pd.DataFrame(rows, columns=SUCCESS_TREND_COLUMNS)


def _fit(langevin: pd.DataFrame, baseline: pd.DataFrame, confidence: float) -> dict:
    depths = sorted(set(langevin["depth"]) & set(baseline["depth"]))
    runs = pd.concat([langevin.assign(L=1.0), baseline.assign(L=0.0)])
    runs = runs[runs["depth"].isin(depths)]
    baseline_arm = ", ".join(dict.fromkeys(baseline["arm"])) or NO_BASELINE
    row = {
        "baseline_arm": baseline_arm,
        "depths": ", ".join(str(d) for d in depths),
        "n_runs": len(runs),
        "n_seeds": runs["seed"].nunique(),
        **dict.fromkeys(FIT_COLUMNS, np.nan),
        "covariance": "",
        "note": "",
    }
    reasons = _degenerate(runs, depths, {1.0: langevin["arm"].iloc[0], 0.0: baseline_arm})
    if reasons:
        return row | {"note": f"no finite estimate: {'; '.join(reasons)}"}
    import statsmodels.api as sm

    depth, twin = runs["depth"].to_numpy(dtype=float), runs["L"].to_numpy()
    model = sm.GLM(
        runs["success"].to_numpy(dtype=float),
        np.column_stack([np.ones_like(depth), depth, twin, depth * twin]),
        family=sm.families.Binomial(),
    )
    if row["n_seeds"] >= MIN_CLUSTERS:
        seeds = pd.factorize(runs["seed"])[0]
        result = model.fit(cov_type="cluster", cov_kwds={"groups": seeds}, use_t=True)
        covariance = CLUSTERED
    else:
        result, covariance = model.fit(), MODEL_BASED
    low, high = result.conf_int(alpha=1 - confidence)[3]
    return row | {
        "interaction": result.params[3],
        "se": result.bse[3],
        "ci_low": low,
        "ci_high": high,
        "p": result.pvalues[3],
        "covariance": covariance,
    }


def _degenerate(runs: pd.DataFrame, depths: list, names: dict[float, str]) -> list[str]:
    """Why the model has no finite estimate (empty when it has one)."""
    if names[0.0] == NO_BASELINE:
        return ["no baseline twin ran"]
    if len(depths) < 2:
        return ["one depth only"]
    reasons = []
    for twin, name in names.items():
        side = runs[runs["L"] == twin]
        trained = side.loc[side["success"], "depth"]
        untrained = side.loc[~side["success"], "depth"]
        if untrained.empty:
            reasons.append(f"every run of {name} trained")
        elif trained.empty:
            reasons.append(f"no run of {name} trained")
        elif untrained.max() <= trained.min() or trained.max() <= untrained.min():
            reasons.append(f"{name}: trained and untrained runs are separated by depth")
    return reasons
