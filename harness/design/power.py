"""The power of a declared test before any data: the chance it rejects at level α with n seeds per
arm when the arms differ by the smallest effect worth finding.

The effect (`Effect`) is a mixture model per arm: a run trains with probability p_L (Langevin) or
p_B (baseline); a trained run's accuracy is N(accuracy_trained, accuracy_sd²) for the baseline and
N(accuracy_trained + accuracy_gain, accuracy_sd²) for Langevin (clipped to [0, 1]); a failed run
sits at accuracy_failed. Seeds are independent, and so are the two arms' outcomes on one seed given
the rates (the pairing shares weights and batches but the model gives it no correlation): for
McNemar this fixes the discordant-pair probabilities q_L = p_L(1 − p_B) (only Langevin trains) and
q_B = p_B(1 − p_L) (only the baseline does).

Exact power of the success tests, by enumeration over every outcome (the sample-size method of
Casagrande, Pike & Smith 1978 carried out exactly):
    Fisher, Boschloo:  power = Σ_{x, y} Bin(x; n, p_L) · Bin(y; n, p_B) · [p(x, y) ≤ α]
    McNemar:           power = Σ_{a + b ≤ n} Mult(a, b, n − a − b; n, q_L, q_B, 1 − q_L − q_B)
                               · [p(a, b) ≤ α]
with p(·) the declared test's two-sided p-value (harness.design.tests), tabulated once per n
(`p_value_table`). Fisher's table is computed in one vectorised pass: for each total t = x + y of
successes, x is hypergeometric (2n, n, t) under H0, and p(x, y) = Σ_{x'} P(x') over the x' with
P(x') ≤ P(x)(1 + 1e-7) (the two-sided p of scipy.stats.fisher_exact; the relative tolerance, R's
fisher.test's, keeps tables that tie in exact arithmetic tied). McNemar's is
min(1, 2 · BinCDF(min(a, b); a + b, 1/2)), statsmodels' exact McNemar. Boschloo's table calls
scipy.stats.boschloo_exact once per table up to the symmetries p(x, y) = p(y, x) = p(n − x, n − y)
(about 7 ms each; every n from 1 to 30 together takes about 15 s on one core, once per process):
it is refused beyond BOSCHLOO_MAX_N seeds.

The sign-flip endpoints' power is a seeded Monte-Carlo estimate over `draws` simulated studies
(default 2000, seed 0): its standard error is √(P(1 − P) / draws) ≤ 0.011 (0.009 at P = 0.8).
Each simulated study's p is the exact sign-flip p for n ≤ SIMULATED_EXACT_MAX_N and the p of a
Monte-Carlo permutation test with SIMULATED_FLIPS random sign vectors beyond
(p = (1 + #{|Σ s_i d_i| ≥ |Σ d_i|}) / (1 + SIMULATED_FLIPS), a valid test of its own; Good 2005,
§3.3), shared by all studies. The outcomes of seed j are drawn from a generator seeded by
(seed, j), so the studies with n seeds are the first n seeds of those with more.

Exact power is not monotone in n; `seeds_needed` returns the first n from which it stays at or
above the target up to n_max.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from harness.design.tests import boschloo_p, check_endpoint_test

BOSCHLOO_MAX_N = 30
MAX_SEEDS = {"fisher": 100, "mcnemar": 100, "boschloo": BOSCHLOO_MAX_N, "sign_flip": 60}
DRAWS = 2000
SEED = 0
SIMULATED_EXACT_MAX_N = 12
SIMULATED_FLIPS = 999
FISHER_TIE_TOLERANCE = 1e-7
FLIP_TIE_TOLERANCE = 1e-9  # relative to Σ|d_i|: float noise in a sum never breaks a tie


@dataclass(frozen=True)
class Effect:
    """The smallest effect worth finding, as a mixture model per arm (module docstring)."""

    baseline_success: float
    langevin_success: float
    accuracy_trained: float = 0.97
    accuracy_failed: float = 0.1135
    accuracy_sd: float = 0.005
    accuracy_gain: float = 0.0

    def __post_init__(self):
        for name in ("baseline_success", "langevin_success", "accuracy_trained", "accuracy_failed"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"Effect.{name} must lie in [0, 1]; got {getattr(self, name)}")
        if not self.accuracy_sd >= 0:
            raise ValueError(f"Effect.accuracy_sd must be ≥ 0; got {self.accuracy_sd}")

    def is_null(self, endpoint: str) -> bool:
        """Whether the endpoint's null hypothesis holds under this effect: equal success rates
        ("success"); equal rates and no gain ("accuracy": the paired differences are then
        symmetric about 0); no gain ("accuracy_trained")."""
        equal_rates = self.langevin_success == self.baseline_success
        no_gain = self.accuracy_gain == 0
        return {"success": equal_rates, "accuracy": equal_rates and no_gain,
                "accuracy_trained": no_gain}[endpoint]  # fmt: skip


@dataclass(frozen=True)
class Outcomes:
    """Simulated per-seed outcomes of the two arms, arrays of shape (studies, seeds)."""

    langevin_success: np.ndarray
    baseline_success: np.ndarray
    langevin_accuracy: np.ndarray
    baseline_accuracy: np.ndarray

    def first(self, n: int) -> Outcomes:
        """The same studies cut to their first n seeds."""
        return Outcomes(*(column[:, :n] for column in vars(self).values()))


def draw_outcomes(effect: Effect, studies: int, n: int, key: tuple[int, ...] = (SEED,)) -> Outcomes:
    """`studies` simulated studies of n ≥ 1 seeds under `effect`. Seed j's outcomes come from a
    generator seeded by (*key, j), so a study's first n seeds do not depend on how many follow."""
    seeds = [_draw_seed(effect, studies, np.random.default_rng((*key, j))) for j in range(n)]
    return Outcomes(*(np.stack(column, axis=1) for column in zip(*seeds)))


def _draw_seed(effect: Effect, studies: int, rng: np.random.Generator):
    """One seed's (success_L, success_B, accuracy_L, accuracy_B) in `studies` studies."""
    success_l = rng.random(studies) < effect.langevin_success
    success_b = rng.random(studies) < effect.baseline_success
    trained_l = effect.accuracy_trained + effect.accuracy_gain
    accuracy_l = np.where(success_l, rng.normal(trained_l, effect.accuracy_sd, studies),
                          effect.accuracy_failed)  # fmt: skip
    accuracy_b = np.where(success_b, rng.normal(effect.accuracy_trained, effect.accuracy_sd, studies),
                          effect.accuracy_failed)  # fmt: skip
    return success_l, success_b, np.clip(accuracy_l, 0, 1), np.clip(accuracy_b, 0, 1)


def p_value_table(test: str, n: int) -> np.ndarray:
    """Read-only table of the success test's two-sided p-value for every outcome with n seeds per
    arm: [x, y] for x Langevin and y baseline successes (fisher, boschloo), [a, b] for a seeds
    where only Langevin and b where only the baseline trained (mcnemar; NaN where a + b > n)."""
    if test == "boschloo" and n > BOSCHLOO_MAX_N:
        raise ValueError(
            f"boschloo power is tabulated up to {BOSCHLOO_MAX_N} seeds per arm (scipy's test takes"
            f" milliseconds per table); got n = {n}"
        )
    return {"fisher": _fisher_table, "boschloo": _boschloo_table, "mcnemar": _mcnemar_table}[test](n)


@cache
def _fisher_table(n: int) -> np.ndarray:
    """Fisher's two-sided p for every (x, y), from the hypergeometric law of x given t = x + y."""
    import scipy.stats

    x = np.arange(n + 1)
    totals = np.arange(2 * n + 1)
    probability = scipy.stats.hypergeom.pmf(x[:, None], 2 * n, n, totals[None, :])  # [x, t]
    at_most = probability[None, :, :] <= probability[:, None, :] * (1 + FISHER_TIE_TOLERANCE)
    p_by_total = np.einsum("jt,ijt->it", probability, at_most)  # [x, t]: Σ_x' P(x') [P(x') ≤ P(x)]
    table = np.minimum(p_by_total[x[:, None], x[:, None] + x[None, :]], 1.0)
    return _read_only(table)


@cache
def _mcnemar_table(n: int) -> np.ndarray:
    """Exact McNemar p for every (a, b) with a + b ≤ n."""
    import scipy.stats

    a, b = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    table = np.minimum(1.0, 2 * scipy.stats.binom.cdf(np.minimum(a, b), a + b, 0.5))
    return _read_only(np.where(a + b <= n, table, np.nan))


@cache
def _boschloo_table(n: int) -> np.ndarray:
    """Boschloo's two-sided p for every (x, y), one scipy call per class of symmetric tables."""
    table = np.empty((n + 1, n + 1))
    for x in range(n + 1):
        for y in range(x, n + 1):
            if x + y <= n:
                p_value = boschloo_p(x, n, y, n)
                for i, j in ((x, y), (y, x), (n - x, n - y), (n - y, n - x)):
                    table[i, j] = p_value
    return _read_only(table)


def _read_only(table: np.ndarray) -> np.ndarray:
    table.setflags(write=False)
    return table


def power(
    endpoint: str, test: str, n: int, effect: Effect, alpha: float,
    draws: int = DRAWS, seed: int = SEED,
) -> float:  # fmt: skip
    """Probability that the declared test rejects at two-sided level `alpha` with n seeds per arm
    under `effect`: exact for the success tests, a seeded simulation of `draws` studies for the
    sign-flip endpoints (module docstring)."""
    import scipy.stats

    check_endpoint_test(endpoint, test)
    if n < 1 or not 0 < alpha < 1:
        raise ValueError(f"power needs n ≥ 1 and 0 < alpha < 1; got n = {n}, alpha = {alpha}")
    if test == "sign_flip":
        p_values = simulated_p_values(endpoint, test, draw_outcomes(effect, draws, n, (seed,)))
        return float(np.mean(p_values <= alpha))
    table = p_value_table(test, n)
    counts = np.arange(n + 1)
    if test == "mcnemar":
        l_only = effect.langevin_success * (1 - effect.baseline_success)
        b_only = effect.baseline_success * (1 - effect.langevin_success)
        a, b = np.meshgrid(counts, counts, indexing="ij")
        concordant = np.maximum(n - a - b, 0)  # a + b > n: the cells sum past n, pmf 0
        probability = scipy.stats.multinomial.pmf(
            np.stack([a, b, concordant], axis=-1), n, [l_only, b_only, max(0.0, 1 - l_only - b_only)]
        )
        return float(np.sum(probability * (table <= alpha)))
    p_langevin = scipy.stats.binom.pmf(counts, n, effect.langevin_success)
    p_baseline = scipy.stats.binom.pmf(counts, n, effect.baseline_success)
    return float(p_langevin @ (table <= alpha) @ p_baseline)


def simulated_p_values(endpoint: str, test: str, outcomes: Outcomes) -> np.ndarray:
    """The declared test's p-value in each simulated study (success tests from `p_value_table`,
    sign-flip as the module docstring says; NaN for "accuracy_trained" where no seed has both arms
    trained, as `evaluate` gives)."""
    success_l, success_b = outcomes.langevin_success, outcomes.baseline_success
    n = success_l.shape[1]
    if test == "fisher" or test == "boschloo":
        return p_value_table(test, n)[success_l.sum(axis=1), success_b.sum(axis=1)]
    if test == "mcnemar":
        a, b = (success_l & ~success_b).sum(axis=1), (~success_l & success_b).sum(axis=1)
        return p_value_table(test, n)[a, b]
    differences = outcomes.langevin_accuracy - outcomes.baseline_accuracy
    if endpoint == "accuracy":
        return sign_flip_p_values(differences, exact=n <= SIMULATED_EXACT_MAX_N)
    both = success_l & success_b  # a zero difference flips to itself: as if left out
    p_values = sign_flip_p_values(np.where(both, differences, 0.0), exact=n <= SIMULATED_EXACT_MAX_N)
    return np.where(both.any(axis=1), p_values, np.nan)


def simulated_estimates(endpoint: str, outcomes: Outcomes) -> np.ndarray:
    """The endpoint's estimate (Langevin − baseline) in each simulated study: the success rate
    difference, or the mean paired accuracy difference over all seeds or over the seeds where
    both arms trained (NaN where there is none)."""
    success_l, success_b = outcomes.langevin_success, outcomes.baseline_success
    if endpoint == "success":
        return (success_l.sum(axis=1) - success_b.sum(axis=1)) / success_l.shape[1]
    differences = outcomes.langevin_accuracy - outcomes.baseline_accuracy
    keep = success_l & success_b if endpoint == "accuracy_trained" else np.ones_like(success_l)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(keep, differences, 0).sum(axis=1) / keep.sum(axis=1)


def sign_flip_p_values(differences: np.ndarray, exact: bool) -> np.ndarray:
    """Sign-flip p of each row of `differences`: over all 2^n sign vectors when `exact`, else the
    Monte-Carlo permutation p with SIMULATED_FLIPS seeded random sign vectors."""
    n = differences.shape[1]
    if exact:
        signs = 1.0 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)  # row 0: all +1
    else:
        signs = np.random.default_rng(SEED).choice([-1.0, 1.0], size=(SIMULATED_FLIPS, n))
    tolerance = FLIP_TIE_TOLERANCE * np.abs(differences).sum(axis=1)
    observed = np.abs(differences.sum(axis=1))
    hits = np.zeros(len(differences))
    for start in range(0, len(differences), 256):  # chunks keep the flip sums to a few MB
        rows = slice(start, start + 256)
        flipped = np.abs(differences[rows] @ signs.T)
        hits[rows] = np.sum(flipped >= (observed[rows] - tolerance[rows])[:, None], axis=1)
    if exact:
        return hits / 2**n
    return (1 + hits) / (1 + SIMULATED_FLIPS)


def seeds_needed(
    endpoint: str, test: str, effect: Effect, alpha: float, target: float = 0.8,
    n_max: int | None = None,
) -> int | None:  # fmt: skip
    """The first n from which the power stays ≥ `target` for every n up to `n_max` (default
    MAX_SEEDS[test]); None if the power at n_max is below it."""
    check_endpoint_test(endpoint, test)
    n_max = MAX_SEEDS[test] if n_max is None else n_max
    needed = None
    for n in range(n_max, 0, -1):
        if power(endpoint, test, n, effect, alpha) < target:
            break
        needed = n
    return needed
