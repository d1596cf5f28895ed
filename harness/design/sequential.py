"""Group-sequential boundaries: a study that takes its finals in looks (more seeds each time) tests
at each look against a |z| boundary so that the overall two-sided type I error stays α.

α-spending (Lan & DeMets 1983), two-sided and symmetric: by information fraction t (the seeds of a
look over the maximum) the design has spent f(t) of α, f(0) = 0, f(1) = α:
    O'Brien-Fleming type:  f(t) = 2 − 2Φ(z_{1−α/2} / √t)     (spends little early)
    Pocock type:           f(t) = α ln(1 + (e − 1) t)
The looks' z statistics follow the canonical joint normal law (Jennison & Turnbull, "Group
Sequential Methods with Applications to Clinical Trials", 2000, §3.1): Z_1, …, Z_K jointly
normal with unit variances and corr(Z_i, Z_j) = √(t_i / t_j) for i < j. The boundary c_k solves
    P(|Z_1| < c_1, …, |Z_{k−1}| < c_{k−1}, |Z_k| ≥ c_k) = f(t_k) − f(t_{k−1}),
here in the equivalent form P(|Z_j| < c_j for all j ≤ k) = 1 − f(t_k), so the α spent by look k
is f(t_k) even where an earlier root is off by the integration error. c_1 = z_{1 − f(t_1)/2}
exactly; later ones by scipy.optimize.brentq on scipy.stats.multivariate_normal.cdf over the
rectangle (Genz's quasi-Monte-Carlo integration with a fixed seed, so the boundaries are
reproducible; absolute error INTEGRATION_ERROR = 1e-5, scipy's default, which puts a boundary
within about ±5e-4 and the α spent by a look within about ±1e-5; two looks are integrated exactly).
The nominal threshold at look k is the two-sided p-value of its boundary: 2(1 − Φ(c_k)).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

INTEGRATION_ERROR = 1e-5
INTEGRATION_SEED = 0
BOUNDARY_TOLERANCE = 1e-5
BRACKET_MARGIN = 0.05


def obrien_fleming(t, alpha: float):
    """O'Brien-Fleming-type spending f(t) = 2 − 2Φ(z_{1−α/2} / √t) (Lan & DeMets 1983)."""
    import scipy.stats

    t = np.asarray(t, dtype=float)
    return 2 - 2 * scipy.stats.norm.cdf(scipy.stats.norm.ppf(1 - alpha / 2) / np.sqrt(t))


def pocock(t, alpha: float):
    """Pocock-type spending f(t) = α ln(1 + (e − 1) t) (Lan & DeMets 1983)."""
    return alpha * np.log1p((math.e - 1) * np.asarray(t, dtype=float))


SPENDING = {"obrien_fleming": obrien_fleming, "pocock": pocock}


def check_design(fractions, alpha: float, spending: str) -> tuple[float, ...]:
    """`fractions` as a tuple after checking 0 < t_1 < … < t_K = 1, 0 < α < 1 and the spending
    name; ValueError (one line) otherwise."""
    if spending not in SPENDING:
        raise ValueError(f"unknown spending {spending!r}; allowed: {', '.join(SPENDING)}")
    fractions = tuple(float(t) for t in fractions)
    increasing = all(a < b for a, b in zip(fractions, fractions[1:]))
    if not fractions or fractions[0] <= 0 or fractions[-1] != 1 or not increasing:
        raise ValueError(
            f"information fractions must rise from above 0 to exactly 1; got {list(fractions)}"
        )
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}")
    return fractions


def spent(fractions, alpha: float, spending: str = "obrien_fleming") -> np.ndarray:
    """f(t_k): the α spent by each look."""
    return np.array(_spent(check_design(fractions, alpha, spending), float(alpha), spending))


@cache  # a power simulation decides thousands of studies with one design
def _spent(fractions: tuple[float, ...], alpha: float, spending: str) -> tuple[float, ...]:
    return tuple(SPENDING[spending](np.array(fractions), alpha))


def boundaries(fractions, alpha: float, spending: str = "obrien_fleming") -> np.ndarray:
    """The |z| boundaries c_1, …, c_K of the looks at information `fractions` (module docstring)."""
    fractions = check_design(fractions, alpha, spending)
    return np.array(_boundaries(fractions, float(alpha), spending))


def nominal_alphas(fractions, alpha: float, spending: str = "obrien_fleming") -> np.ndarray:
    """The two-sided p-value threshold at each look: 2(1 − Φ(c_k))."""
    import scipy.stats

    return 2 * scipy.stats.norm.sf(boundaries(fractions, alpha, spending))


@cache
def _boundaries(fractions: tuple[float, ...], alpha: float, spending: str) -> tuple[float, ...]:
    import scipy.optimize
    import scipy.stats

    t = np.array(fractions)
    spent_by = SPENDING[spending](t, alpha)
    covariance = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    found = [float(scipy.stats.norm.isf(spent_by[0] / 2))]
    for k in range(1, len(t)):

        def continuing(c, k=k):  # P(|Z_j| < c_j, j ≤ k) − (1 − f(t_k))
            upper = np.array([*found, c])
            inside = scipy.stats.multivariate_normal.cdf(
                upper, mean=np.zeros(k + 1), cov=covariance[: k + 1, : k + 1], lower_limit=-upper,
                abseps=INTEGRATION_ERROR, releps=0, rng=np.random.default_rng(INTEGRATION_SEED),
            )  # fmt: skip
            return inside - (1 - spent_by[k])

        # P(|Z_k| ≥ c_k) lies between the increment f(t_k) − f(t_{k−1}) and f(t_k): so does c_k's
        # two-sided normal quantile (widened by the integration error's effect)
        low = scipy.stats.norm.isf(spent_by[k] / 2) - BRACKET_MARGIN
        high = scipy.stats.norm.isf((spent_by[k] - spent_by[k - 1]) / 2) + BRACKET_MARGIN
        found.append(scipy.optimize.brentq(continuing, low, high, xtol=BOUNDARY_TOLERANCE))
    return tuple(found)
