"""The declared family of hypotheses over the looks of a study: Holm's step-down at each look with
group-sequential boundaries, and a seeded simulation of the whole design.

The rule is the graphical group-sequential approach of Maurer & Bretz ("Multiple testing in group
sequential trials using graphical approaches", Statistics in Biopharmaceutical Research 5, 2013)
with Holm's graph (equal weights; a rejected hypothesis's share of α goes equally to the rest).
At look k, with R the hypotheses not yet rejected and m = |R|, sort R by their p-values at look k:
    reject the smallest if p ≤ nominal_alphas(fractions, α / m, spending)[k] (harness.design.
    sequential), remove it, m ← m − 1, and repeat; stop at the first that fails.
Each open hypothesis is tested against the boundaries of a full group-sequential design at its
current share α / m. Maurer & Bretz also re-test the earlier looks with the α a rejection frees;
this rule does not, which can only lose rejections: the family-wise error stays at most α.
A NaN p-value (a test that could not be computed at a look) never leaves the family: it is not
rejected and keeps its share of α (m counts it). A rejected hypothesis stays rejected, with the
look, p-value, threshold and estimate of its rejection: "supported" if the estimate
(Langevin − baseline) is > 0, "contradicted" if < 0; an open one is "undecided".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from harness.design.power import Effect, draw_outcomes, simulated_estimates, simulated_p_values
from harness.design.sequential import check_design, nominal_alphas, spent
from harness.design.tests import check_endpoint_test

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
UNDECIDED = "undecided"


@dataclass(frozen=True)
class LookState:
    """One look taken: its number (from 1), information fraction, the α spent by it at the
    overall α (f(t_k)), the hypotheses open when it started, and those it rejected, in order."""

    look: int
    fraction: float
    alpha_spent: float
    open_before: tuple[str, ...]
    rejected: tuple[str, ...]


@dataclass(frozen=True)
class HypothesisDecision:
    """Where one hypothesis stands: the look that rejected it (None while open), the p-value,
    nominal threshold and estimate at that look (at the last look taken while open), verdict."""

    name: str
    look: int | None
    p_value: float
    threshold: float
    estimate: float
    verdict: str


@dataclass(frozen=True)
class FamilyDecision:
    """The family after the looks taken: each hypothesis, each look, whether to stop and why."""

    hypotheses: dict[str, HypothesisDecision]
    looks: tuple[LookState, ...]
    stop: bool
    reason: str

    @property
    def alpha_spent(self) -> tuple[float, ...]:
        """f(t_k) at the overall α, per look taken."""
        return tuple(state.alpha_spent for state in self.looks)


@dataclass(frozen=True)
class DesignSimulation:
    """A simulated design: each hypothesis' rejection rate (its power where it is false), the
    family-wise error (rate of rejecting at least one true null hypothesis; 0 when none is true),
    the mean seeds per arm at stopping, and the number of simulated studies."""

    rejection_rate: dict[str, float]
    familywise_error: float
    mean_seeds: float
    studies: int


def decide(
    p_values_by_look, fractions, alpha: float, spending: str, estimates_by_look
) -> FamilyDecision:
    """The family's state after the looks taken (module docstring). `p_values_by_look` and
    `estimates_by_look`: one {hypothesis: value} per look taken, all with the same hypotheses;
    `fractions`: every planned look's information fraction, the last 1."""
    fractions = check_design(fractions, alpha, spending)
    names = tuple(p_values_by_look[0]) if p_values_by_look else ()
    _check_looks(p_values_by_look, estimates_by_look, names, len(fractions))
    alpha_spent = spent(fractions, alpha, spending)
    open_names = list(names)
    decided: dict[str, HypothesisDecision] = {}
    states = []
    for k, (p_values, estimates) in enumerate(zip(p_values_by_look, estimates_by_look)):
        open_before = tuple(open_names)
        ranked = sorted(open_names, key=lambda name: _nan_last(p_values[name]))
        for name in ranked:
            threshold = _threshold(fractions, alpha, spending, len(open_names), k)
            if not p_values[name] <= threshold:  # a NaN fails too
                break
            open_names.remove(name)
            decided[name] = HypothesisDecision(
                name, k + 1, p_values[name], threshold, estimates[name],
                _verdict(name, estimates[name]),
            )  # fmt: skip
        rejected = tuple(name for name in open_before if name not in open_names)
        states.append(LookState(k + 1, fractions[k], float(alpha_spent[k]), open_before, rejected))
    last = len(p_values_by_look) - 1
    for name in open_names:
        threshold = _threshold(fractions, alpha, spending, len(open_names), last)
        decided[name] = HypothesisDecision(
            name, None, p_values_by_look[last][name], threshold, estimates_by_look[last][name],
            UNDECIDED,
        )  # fmt: skip
    stop, reason = _stop(open_names, names, states, len(fractions))
    return FamilyDecision({name: decided[name] for name in names}, tuple(states), stop, reason)


def _check_looks(p_values_by_look, estimates_by_look, names, planned: int) -> None:
    """ValueError (one line) unless 1 to `planned` looks each carry p-values and estimates of the
    same hypotheses."""
    if not 1 <= len(p_values_by_look) <= planned:
        raise ValueError(f"{len(p_values_by_look)} looks given; the design plans 1 to {planned}")
    if len(estimates_by_look) != len(p_values_by_look):
        raise ValueError("estimates_by_look must give one {hypothesis: estimate} per look taken")
    for k, (p_values, estimates) in enumerate(zip(p_values_by_look, estimates_by_look)):
        if set(p_values) != set(names) or set(estimates) != set(names):
            raise ValueError(
                f"look {k + 1} has hypotheses {sorted(p_values)} (estimates {sorted(estimates)});"
                f" the family is {sorted(names)}"
            )


def _nan_last(p_value: float) -> float:
    return math.inf if math.isnan(p_value) else p_value


@cache
def _threshold(fractions: tuple[float, ...], alpha: float, spending: str, m: int, k: int) -> float:
    """Nominal p threshold at look k of a hypothesis holding α / m."""
    return float(nominal_alphas(fractions, alpha / m, spending)[k])


def _verdict(name: str, estimate: float) -> str:
    if estimate > 0:
        return SUPPORTED
    if estimate < 0:
        return CONTRADICTED
    raise ValueError(f"hypothesis {name!r} was rejected with estimate {estimate}: no direction")


def _stop(open_names, names, states, planned: int) -> tuple[bool, str]:
    """Whether the study stops after the looks taken, and why (one line)."""
    if not open_names:
        last_rejection = max(state.look for state in states if state.rejected)
        return True, f"every declared test decided at look {last_rejection} of {planned}"
    if len(states) == planned:
        return True, f"maximum seeds reached (look {planned} of {planned})"
    return False, f"continuing: {len(open_names)} of {len(names)} tests undecided"


def simulate(
    effects_by_hypothesis: dict[str, Effect], endpoint: str, test: str, looks, alpha: float,
    spending: str = "obrien_fleming", n_sim: int = 2000, seed: int = 0,
) -> DesignSimulation:  # fmt: skip
    """Seeded simulation of the whole design: in each of `n_sim` studies every hypothesis draws its
    seeds' outcomes from its Effect (harness.design.power.draw_outcomes; hypotheses independent),
    the declared test runs at each look on the cumulative seeds (`looks`: seeds per arm at each
    look), `decide` follows each look, and the study ends when it says stop. Monte-Carlo standard
    error of a rate r: √(r(1 − r) / n_sim)."""
    check_endpoint_test(endpoint, test)
    looks = [int(n) for n in looks]
    if not looks or looks[0] < 1 or any(a >= b for a, b in zip(looks, looks[1:])):
        raise ValueError(f"looks must be rising seed counts per arm from 1; got {looks}")
    fractions = [n / looks[-1] for n in looks]
    names = list(effects_by_hypothesis)
    p_values, estimates = {}, {}  # name → array (studies, looks)
    for index, (name, effect) in enumerate(effects_by_hypothesis.items()):
        outcomes = draw_outcomes(effect, n_sim, looks[-1], key=(seed, index))
        p_values[name] = np.stack(
            [simulated_p_values(endpoint, test, outcomes.first(n)) for n in looks], axis=1
        )
        estimates[name] = np.stack(
            [simulated_estimates(endpoint, outcomes.first(n)) for n in looks], axis=1
        )
    rejected = np.zeros((n_sim, len(names)), dtype=bool)
    seeds_used = np.zeros(n_sim)
    for study in range(n_sim):
        for k in range(len(looks)):
            decision = decide(
                [{name: p_values[name][study, j] for name in names} for j in range(k + 1)],
                fractions, alpha, spending,
                [{name: estimates[name][study, j] for name in names} for j in range(k + 1)],
            )  # fmt: skip
            if decision.stop:
                break
        rejected[study] = [decision.hypotheses[name].look is not None for name in names]
        seeds_used[study] = looks[k]
    true_nulls = [effects_by_hypothesis[name].is_null(endpoint) for name in names]
    return DesignSimulation(
        rejection_rate={name: float(rate) for name, rate in zip(names, rejected.mean(axis=0))},
        familywise_error=float(np.mean(rejected[:, true_nulls].any(axis=1))),
        mean_seeds=float(seeds_used.mean()),
        studies=n_sim,
    )
