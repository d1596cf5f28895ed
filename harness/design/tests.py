"""The declared tests of a comparison between a Langevin arm and its plain twin, paired on seed.

Arrays are aligned by seed: seed i gave both arms the same initial weights and batches. Every test
is two-sided; `evaluate` returns the estimate (Langevin − baseline), the p-value, n and an
interval, and ENDPOINT_TESTS lists the (endpoint, test) pairs a study may declare.

- "success": the difference of success rates kL/n − kB/n.
  - "fisher": Fisher's exact test (Fisher 1935; scipy.stats.fisher_exact) on
    [[kL, n − kL], [kB, n − kB]]: p = Σ of the hypergeometric probabilities of the tables with the
    same margins that are no more probable than the observed one.
  - "boschloo": Boschloo's exact unconditional test (Boschloo 1970; scipy.stats.boschloo_exact):
    Fisher's one-sided p as the statistic, its tail probability maximised over the common success
    rate; two-sided p = min(1, 2 · the smaller one-sided p). scipy takes the two binomial samples
    as the table's columns, so it gets [[kL, kB], [n − kL, n − kB]].
  - "mcnemar": the exact McNemar test on the seed pairs (McNemar 1947; statsmodels
    contingency_tables.mcnemar(exact=True) on [[both, L only], [B only, neither]]): with b seeds
    where only Langevin trained and c where only the baseline did,
    p = min(1, 2 · P(Bin(b + c, 1/2) ≤ min(b, c))).
  Interval: Newcombe's hybrid score interval of the difference (Newcombe 1998, method 10;
  statsmodels confint_proportions_2indep(method="newcomb", compare="diff")).
- "accuracy": the mean of the paired differences d_i = accuracy_L,i − accuracy_B,i over all n
  seeds (the caller counts a diverged run at chance accuracy). "accuracy_trained": the same over
  the seeds where both arms trained (n = their count).
  - "sign_flip": the sign-flip permutation test of the mean (Fisher 1935; Good, "Permutation,
    Parametric and Bootstrap Tests of Hypotheses", 2005, §3): under H0 every d_i is symmetric about
    0 and p = #{s ∈ {−1, +1}^n : |Σ s_i d_i| ≥ |Σ d_i|} / 2^n, over all 2^n sign vectors for
    n ≤ EXACT_FLIP_MAX_N, else over FLIP_RESAMPLES random ones (scipy.stats.permutation_test,
    permutation_type="samples", seeded; p = (1 + #) / (1 + FLIP_RESAMPLES)). The exact count
    meets in the middle (Horowitz & Sahni 1974): s and −s give the same |Σ|, so s_1 = +1; the
    sums a of d_1 with the ± sums of d_2..d_h and the sorted ± sums b of d_{h+1}..d_n (h = ⌈n/2⌉)
    give # = 2 · Σ_a (#{b : a + b ≥ |Σ d_i|} + #{b : a + b ≤ −|Σ d_i|}), in 2^(n/2) memory and
    O(2^(n/2) · n) time: about 3 s at n = 48 on a 2-core CPU (2^23 and 2^24 sums). The
    differences are first rounded to integers on a grid of max|d_i| · 1e-9, so sums equal in
    exact arithmetic (0.1 + 0.2 and 0.3) compare equal and floating point never breaks a tie;
    differences closer than 1e-9 · max|d_i| count as equal.
  Interval: the BCa bootstrap of the mean (Efron 1987; scipy.stats.bootstrap, BOOTSTRAP_RESAMPLES
  resamples, seeded, values sorted first so the order of the seeds does not matter); the
  percentile interval of the same resamples where BCa is undefined; NaN below MIN_N_BOOTSTRAP
  values (too few distinct resamples).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

ENDPOINT_TESTS = {
    "success": ("fisher", "boschloo", "mcnemar"),
    "accuracy": ("sign_flip",),
    "accuracy_trained": ("sign_flip",),
}
CONFIDENCE = 0.95
EXACT_FLIP_MAX_N = 48
FLIP_RESAMPLES = 100_000
FLIP_CHUNK = 1 << 20  # first-half sums counted at once
FLIP_GRID = 1e9  # steps of the rounding grid per max|d_i|
MIN_N_BOOTSTRAP = 8
BOOTSTRAP_RESAMPLES = 9999
SEED = 0

NEWCOMBE = "Newcombe hybrid score"
BCA = "BCa bootstrap"
PERCENTILE = "percentile bootstrap (BCa undefined)"
TOO_FEW = f"none (fewer than {MIN_N_BOOTSTRAP} values)"
ALL_EQUAL = "none (all values equal)"


@dataclass(frozen=True)
class TestResult:
    """One declared test on one comparison: estimate (Langevin − baseline), two-sided p-value,
    number of seeds it used, and the interval (low, high) with the name of its method."""

    __test__ = False  # not a pytest test class

    estimate: float
    p_value: float
    n: int
    low: float
    high: float
    interval: str


def check_endpoint_test(endpoint: str, test: str) -> None:
    """Raise ValueError (one line) unless (endpoint, test) is a pair of ENDPOINT_TESTS."""
    if endpoint not in ENDPOINT_TESTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; allowed: {', '.join(ENDPOINT_TESTS)}")
    if test not in ENDPOINT_TESTS[endpoint]:
        allowed = ", ".join(ENDPOINT_TESTS[endpoint])
        raise ValueError(f"test {test!r} is not declared for endpoint {endpoint!r}; allowed: {allowed}")


def fisher_p(k_langevin: int, n_langevin: int, k_baseline: int, n_baseline: int) -> float:
    """Two-sided p of Fisher's exact test of kL / nL against kB / nB."""
    import scipy.stats

    table = [[k_langevin, n_langevin - k_langevin], [k_baseline, n_baseline - k_baseline]]
    return float(scipy.stats.fisher_exact(table).pvalue)


def boschloo_p(k_langevin: int, n_langevin: int, k_baseline: int, n_baseline: int) -> float:
    """Two-sided p of Boschloo's exact test of kL / nL against kB / nB (arms as columns)."""
    import scipy.stats

    table = [[k_langevin, k_baseline], [n_langevin - k_langevin, n_baseline - k_baseline]]
    return float(scipy.stats.boschloo_exact(table, alternative="two-sided").pvalue)


def mcnemar_p(langevin_only: int, baseline_only: int) -> float:
    """Two-sided p of the exact McNemar test from the discordant seed pairs (the concordant ones
    do not enter it)."""
    from statsmodels.stats.contingency_tables import mcnemar

    table = [[0, langevin_only], [baseline_only, 0]]
    return float(mcnemar(table, exact=True).pvalue)


def newcombe_interval(
    k_langevin: int, n_langevin: int, k_baseline: int, n_baseline: int,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:  # fmt: skip
    """(low, high) of Newcombe's hybrid score interval of kL / nL − kB / nB (NaN if an n is 0)."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    if n_langevin == 0 or n_baseline == 0:
        return np.nan, np.nan
    low, high = confint_proportions_2indep(
        k_langevin, n_langevin, k_baseline, n_baseline,
        method="newcomb", compare="diff", alpha=1 - confidence,
    )  # fmt: skip
    return float(low), float(high)


def on_flip_grid(differences) -> np.ndarray:
    """The differences as integers on a grid of max|d_i| · 1e-9 (int64; all zero stays zero)."""
    differences = np.asarray(differences, dtype=float)
    scale = np.max(np.abs(differences), initial=0.0)
    if scale == 0:
        return np.zeros(differences.shape, dtype=np.int64)
    return np.rint(differences / scale * FLIP_GRID).astype(np.int64)


def sign_flip_p(differences, seed: int = SEED) -> float:
    """Two-sided p of the sign-flip permutation test of the mean of `differences` (module
    docstring): exact over all 2^n sign vectors for n ≤ EXACT_FLIP_MAX_N, else FLIP_RESAMPLES
    seeded random ones. An empty sample has one (empty) sign vector: p = 1."""
    import scipy.stats

    grid = on_flip_grid(differences)
    if len(grid) <= EXACT_FLIP_MAX_N:
        return _exact_flip_p(grid)
    result = scipy.stats.permutation_test(
        (grid.astype(float),),
        lambda x, axis: np.abs(np.mean(x, axis=axis)),
        permutation_type="samples",
        vectorized=True,
        n_resamples=FLIP_RESAMPLES,
        alternative="greater",
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def _exact_flip_p(grid: np.ndarray) -> float:
    """The exact sign-flip p of integer differences, met in the middle (module docstring)."""
    observed = abs(int(grid.sum()))
    if observed == 0 or len(grid) == 0:
        return 1.0
    half = (len(grid) + 1) // 2
    first = _signed_sums(grid[1:half]) + abs(int(grid[0]))
    second = _signed_sums(grid[half:])
    hits = 0
    for start in range(0, first.size, FLIP_CHUNK):  # bounds the index arrays' memory
        chunk = first[start:start + FLIP_CHUNK]
        hits += int(second.size * chunk.size
                    - np.searchsorted(second, observed - chunk, side="left").sum())
        hits += int(np.searchsorted(second, -observed - chunk, side="right").sum())
    return hits / 2 ** (len(grid) - 1)


def _signed_sums(values: np.ndarray) -> np.ndarray:
    """The 2^k sums Σ ±v_i of k integers, sorted: each doubling joins two sorted runs, which a
    stable sort (timsort) merges in linear time."""
    sums = np.zeros(1, dtype=np.int64)
    for value in np.abs(values):  # ±v and ±|v| give the same sums
        sums = np.sort(np.concatenate((sums - value, sums + value)), kind="stable")
    return sums


def bootstrap_interval(
    values, confidence: float = CONFIDENCE, seed: int = SEED
) -> tuple[float, float, str]:
    """(low, high, method) of the BCa bootstrap interval of the mean of `values` (module
    docstring); the percentile interval where BCa is undefined."""
    values = np.sort(np.asarray(values, dtype=float))
    if len(values) < MIN_N_BOOTSTRAP:
        return np.nan, np.nan, TOO_FEW
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0]), ALL_EQUAL
    low, high = _bootstrap(values, "BCa", confidence, seed)
    if np.isfinite(low) and np.isfinite(high):
        return low, high, BCA
    # BCa is undefined when nearly every resample equals the estimate (scipy returns NaN then)
    return *_bootstrap(values, "percentile", confidence, seed), PERCENTILE


def _bootstrap(values, method: str, confidence: float, seed: int) -> tuple[float, float]:
    """(low, high) of scipy.stats.bootstrap's `method` interval of the mean of `values`."""
    import scipy.stats

    with warnings.catch_warnings():  # scipy warns when a resample is degenerate
        warnings.simplefilter("ignore")
        ci = scipy.stats.bootstrap(
            (values,), np.mean, confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES,
            method=method, rng=np.random.default_rng(seed),
        ).confidence_interval  # fmt: skip
    return float(ci.low), float(ci.high)


def evaluate(
    endpoint: str, test: str,
    langevin_success, baseline_success, langevin_accuracy, baseline_accuracy,
    confidence: float = CONFIDENCE,
) -> TestResult:  # fmt: skip
    """The declared `test` of `endpoint` on per-seed outcomes of the two arms (module docstring).

    "accuracy_trained" on no seed where both arms trained: estimate and p are NaN, n = 0.
    """
    check_endpoint_test(endpoint, test)
    columns = [np.asarray(langevin_success, dtype=bool), np.asarray(baseline_success, dtype=bool),
               np.asarray(langevin_accuracy, dtype=float),
               np.asarray(baseline_accuracy, dtype=float)]  # fmt: skip
    if len({len(column) for column in columns}) != 1:
        lengths = ", ".join(str(len(column)) for column in columns)
        raise ValueError(f"per-seed arrays must have one length (one value per seed); got {lengths}")
    success_l, success_b, accuracy_l, accuracy_b = columns
    if endpoint == "success":
        return _success(test, success_l, success_b, confidence)
    keep = success_l & success_b if endpoint == "accuracy_trained" else np.ones(len(success_l), bool)
    differences = accuracy_l[keep] - accuracy_b[keep]
    if np.isnan(differences).any():
        raise ValueError(
            f"{endpoint}: an accuracy is NaN; count a diverged run at chance accuracy first"
        )
    if len(differences) == 0:
        return TestResult(np.nan, np.nan, 0, np.nan, np.nan, TOO_FEW)
    low, high, interval = bootstrap_interval(differences, confidence)
    return TestResult(
        float(differences.mean()), sign_flip_p(differences), len(differences), low, high, interval
    )


def _success(test: str, success_l, success_b, confidence: float) -> TestResult:
    """The success endpoint's `test` and Newcombe interval on the seed-aligned outcomes."""
    n = len(success_l)
    if n == 0:
        return TestResult(np.nan, np.nan, 0, np.nan, np.nan, NEWCOMBE)
    k_l, k_b = int(success_l.sum()), int(success_b.sum())
    if test == "fisher":
        p_value = fisher_p(k_l, n, k_b, n)
    elif test == "boschloo":
        p_value = boschloo_p(k_l, n, k_b, n)
    else:
        p_value = mcnemar_p(int((success_l & ~success_b).sum()), int((~success_l & success_b).sum()))
    low, high = newcombe_interval(k_l, n, k_b, n, confidence)
    return TestResult((k_l - k_b) / n, p_value, n, low, high, NEWCOMBE)
