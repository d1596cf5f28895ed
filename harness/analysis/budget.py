"""Expected best validation accuracy vs tuning budget, per arm of a tuned study (tuning trials only).

An arm's tuning scores y_1..y_K (one per tuning point: the validation accuracy of its epoch that
counts, `score_epoch` "last" or "best", averaged over the tuning seeds when there are several; a
diverged or failed trial counts at chance accuracy) define an empirical distribution F̂. The
expected best of n points drawn from it ("Show your work", Dodge et al. 2019) is
    E[max of n] = Σ_i y_(i) · (F̂(y_(i))^n − F̂(y_(i−1))^n),   n = 1..K,
opda's `EmpiricalDistribution.average_tuning_curve`. The band is opda's simultaneous confidence
band for the CDF (Learned-Miller–DeStefano, equal-tailed, support [0, 1]; opda calibrates it by
simulation, seeded here so that two analyses of one study agree) carried to the curve:
the upper CDF band gives the lower curve and vice versa (Lourie, Cho & He 2023). Ties among the
scores (e.g. several runs at chance) make the band's coverage approximate; it stays in [0, 1].
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd

from harness.analysis.intervals import CONFIDENCE
from harness.analysis.metrics import outcome
from harness.study.run_schema import PHASE_TUNE

SCORE_COLUMN = {"last": "val_accuracy", "best": "best_val_accuracy"}
BAND_METHOD = "ld_equal_tailed"
BAND_SEED = 0
ARM_COLUMNS = ["dataset", "model", "depth", "pair", "variant", "arm", "arm_id"]
CURVE_COLUMNS = [*ARM_COLUMNS, "n_points", "budget", "expected_best", "band_low", "band_high"]


def tuning_scores(trials: pd.DataFrame, score_epoch: dict[str, str]) -> pd.DataFrame:
    """One row per (arm, tuning point): ARM_COLUMNS, point, score (mean over tuning seeds)."""
    tune = trials[trials["phase"] == PHASE_TUNE]
    scores = [
        outcome(own, SCORE_COLUMN[score_epoch.get(arm_id, "last")]).rename("score")
        for arm_id, own in tune.groupby("arm_id")
    ]
    tune = tune.assign(score=pd.concat(scores) if scores else np.nan)
    return tune.groupby([*ARM_COLUMNS, "point"], as_index=False)["score"].mean()


@functools.cache
def band_generator(n: int, confidence: float) -> np.random.Generator:
    """A generator seeded with BAND_SEED, one per (n, confidence): opda caches a band's simulation
    by (n, confidence, generator), so each band is simulated once per process, from the same seed
    in every process, whatever the order the arms come in."""
    return np.random.default_rng(BAND_SEED)


def tuning_curve(scores: np.ndarray, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """budget n = 1..len(scores), expected_best, band_low, band_high (opda, support [0, 1])."""
    from opda.nonparametric import EmpiricalDistribution

    ns = np.arange(1, len(scores) + 1)
    with warnings.catch_warnings():  # opda warns about ties; see the module docstring
        warnings.simplefilter("ignore", RuntimeWarning)
        lower_cdf, point_cdf, upper_cdf = EmpiricalDistribution.confidence_bands(
            scores,
            confidence,
            a=0.0,
            b=1.0,
            method=BAND_METHOD,
            generator=band_generator(len(scores), confidence),
            n_jobs=1,
        )
    return pd.DataFrame(
        {
            "budget": ns,
            "expected_best": point_cdf.average_tuning_curve(ns),
            "band_low": upper_cdf.average_tuning_curve(ns),
            "band_high": lower_cdf.average_tuning_curve(ns),
        }
    )


def budget_curves(
    trials: pd.DataFrame, score_epoch: dict[str, str], confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """CURVE_COLUMNS: every arm's tuning curve, n_points = its number of scored tuning points."""
    frames = []
    for keys, own in tuning_scores(trials, score_epoch).groupby(ARM_COLUMNS, sort=True):
        scores = own["score"].dropna().to_numpy(dtype=float)
        if len(scores):
            curve = tuning_curve(scores, confidence)
            frames.append(
                curve.assign(**dict(zip(ARM_COLUMNS, keys, strict=True)), n_points=len(scores))
            )
    if not frames:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[CURVE_COLUMNS]
