"""The dry run's account of a declared decision: each declared test's power at the planned final
seeds and the seeds it needs, before anything runs.

For each test of `decision.tests` (its effect: the smallest worth finding, `power.Effect`):
- the power of one look at the maximum seeds, at α and — with Holm over m hypotheses — at α/m,
  the level Holm's first step uses (the least any hypothesis of the family gets), computed
  exactly by enumeration for Fisher / Boschloo / McNemar, by seeded simulation for sign-flip;
- the first seed count from which that power stays at or above 80 % (`power.seeds_needed`);
- with several looks, the whole sequential design simulated (`family.simulate`, seeded): the
  chance each hypothesis is decided in Langevin's favour and the mean seeds per arm it uses.
Below 50 % the text says so before anything runs.
"""

from __future__ import annotations

from harness.study.looks import hypotheses, seed_counts

TARGET = 0.8
WARN_BELOW = 0.5
SIMULATIONS = 2000
SIMULATED_SEARCH = 3  # simulated tests: look for the 80 % seed count up to 3x the planned seeds


def _effect_text(test) -> str:
    effect = test.effect
    text = (f"success {effect.baseline_success:g} (plain) vs {effect.langevin_success:g} "
            "(Langevin)")
    if test.endpoint != "success":
        text += (f"; trained accuracy {effect.accuracy_trained:g} ± {effect.accuracy_sd:g}, "
                 f"Langevin {effect.accuracy_gain:+g}; failed {effect.accuracy_failed:g}")
    return text


def _search_limit(test, n: int) -> int | None:
    """How far `seeds_needed` looks: the exact tests' own limit (fast), a simulated test's
    power only up to SIMULATED_SEARCH × the planned seeds (each n is a simulation)."""
    from harness.design.power import MAX_SEEDS

    if test.test != "sign_flip":
        return None
    return min(MAX_SEEDS[test.test], max(SIMULATED_SEARCH * n, 12))


def _seeds(needed: int | None, limit: int | None) -> str:
    from harness.design.power import MAX_SEEDS

    return f"{needed}" if needed is not None else "more than " + str(limit or max(MAX_SEEDS.values()))


def power_lines(spec) -> list[str]:
    from harness.design.family import simulate
    from harness.design.power import power, seeds_needed

    decision = spec.decision
    found = hypotheses(spec)
    plan = seed_counts(spec)
    n = plan[-1]
    m = len(found) if decision.correction == "holm" else 1
    alpha = decision.alpha
    family = f"Holm over all {m} hypotheses" if m > 1 else "no correction"
    lines = [f"declared decision: {len(found)} hypotheses, two-sided α = {alpha:g} family-wise "
             f"({family}); final seeds in looks {plan} ({decision.spending} α-spending); a "
             "verdict comes from these tests only, everything else is secondary"]
    if decision.secondary_seeds is not None:
        lines.append(f"final cells no declared test compares (other depths, optimizers, "
                     f"controls) stop at {decision.secondary_seeds} seeds "
                     "(decision.secondary_seeds)" + ("" if decision.decided_cells_stop else
                                                     "; the compared cells run every look"))
    if decision.decided_cells_stop:
        stop = f"{decision.secondary_seeds} seeds" if decision.secondary_seeds else "once"
        lines.append("a compared cell whose every hypothesis is decided stops at "
                     f"{stop} too (decision.decided_cells_stop): a rejected hypothesis is never "
                     "tested again; the other cells run every look until the family is decided")
    for index, test in enumerate(decision.tests):
        mine = [h for h in found if h.test == index]
        effect = test.effect.effect()
        lines.append(f"test {index + 1}: {test.label} at depths {test.depths}: "
                     f"{len(mine)} hypothes{'is' if len(mine) == 1 else 'es'} "
                     f"({'; '.join(h.name for h in mine)})")
        lines.append(f"  smallest effect worth finding: {_effect_text(test)}")
        levels = [(alpha, f"α = {alpha:g}")]
        if m > 1:
            levels.append((alpha / m, f"α/{m} = {alpha / m:.4g} (Holm's first step)"))
        lowest = 1.0
        for level, label in levels:
            value = power(test.endpoint, test.test, n, effect, level)
            limit = _search_limit(test, n)
            needed = seeds_needed(test.endpoint, test.test, effect, level, target=TARGET,
                                  n_max=limit)
            lowest = min(lowest, value)
            lines.append(f"  power {value:.3f} at {n} seeds per arm ({label}); {TARGET:.0%} "
                         f"power from {_seeds(needed, limit)} seeds on")
        if len(plan) > 1:
            share = alpha * len(mine) / m  # this test's hypotheses at their Bonferroni share
            result = simulate({h.name: effect for h in mine}, test.endpoint, test.test, plan,
                              share, decision.spending, n_sim=SIMULATIONS, seed=0)
            rates = sorted(result.rejection_rate.values())
            decided = f"{rates[0]:.0%}" if rates[0] == rates[-1] else \
                f"{rates[0]:.0%} to {rates[-1]:.0%}"
            lines.append(f"  looks {plan} ({SIMULATIONS} simulated studies at α = {share:.4g}"
                         f"{' (its share of the family)' if share < alpha else ''}): decided for "
                         f"Langevin in {decided}, mean {result.mean_seeds:.1f} of at most {n} "
                         "seeds per arm")
        if lowest < WARN_BELOW:
            lines.append(f"  WARNING: power below {WARN_BELOW:.0%} at the planned {n} seeds: "
                         "this test is unlikely to decide; add seeds (looks) or declare a "
                         "larger smallest effect before running")
    return lines
