"""The final phase in looks: the declared tests after each batch of final seeds, and the stop.

A study with a `decision:` block (`harness.design.declared`) runs its final seeds in looks
(`decision.looks`, cumulative seeds per arm, e.g. 8, 16, 24, 32, 40; one look at
`tuning.final_seeds` when none are given; a cell that no declared test compares stops at
`decision.secondary_seeds` when given). After look k every declared **hypothesis** — one
(declared test, depth, Langevin arm of a listed base optimizer) — is tested on the seeds run so
far by both of its cells:

- `tuned`: the Langevin arm vs its plain twin at their own choices;
- `noise_at_plain_lr`: the control `L[lr=P]` (Langevin at the plain choice) vs the plain arm;
- `noise_at_langevin_lr`: the Langevin arm vs the control `L[sigma=0]`;
  a `noise_at_*` comparison falls back to `tuned` where the twins chose the same learning rate
  (then no control runs and the tuned twins are matched).

A run trained when its test accuracy is above `decision.success_threshold` (default: chance +
0.10); a diverged or failed run is a failure at chance accuracy. The p-values of all looks go
to the group-sequential Holm procedure (`harness.design.family.decide`, information fraction
t_k = seeds_k / seeds_max, α spent by `decision.spending`); the study stops adding seeds when
every hypothesis is decided, or at the last look. The state (each look's outcomes and
decision) is saved beside the study as `looks.json`, so a killed study resumes at the look it
was in and never reruns a look.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.study.run_schema import DESIGN_LOOKS, STATUS_FINISHED
from harness.study.space import StudySpec
from harness.study.tuning import (
    CONTROL_PLAIN_LR,
    CONTROL_SIGMA0,
    arms,
    control_arm_name,
    controls,
    twin,
)

LOOKS_FILE = DESIGN_LOOKS
DEFAULT_MARGIN = 0.10  # a run trained: test accuracy above chance + this


@dataclass(frozen=True)
class Hypothesis:
    """No difference between `langevin_arm` and `baseline_arm` (tuned arm names) on one
    declared test's endpoint; `comparison` says which of their final cells meet."""

    name: str
    test: int  # index in decision.tests
    depth: int
    langevin_arm: str
    baseline_arm: str


def seed_counts(spec: StudySpec) -> list[int]:
    """Cumulative final seeds per arm at each look."""
    decision = spec.decision
    if decision is not None and decision.looks:
        return list(decision.looks)
    return [len(spec.tuning.final_seed_list)]


def look_configs(spec: StudySpec, choices: dict, earlier: int, count: int,
                 decided: frozenset[str] = frozenset()) -> list[dict]:
    """The final trials of the look that takes the cells from `earlier` to `count` seeds: every
    cell on final seeds earlier+1 … count, but a cell no declared hypothesis compares stops at
    `decision.secondary_seeds` (it describes; the tests never read it). With
    `decision.decided_cells_stop`, so does a cell whose every hypothesis is in `decided`
    (`decided_before`: rejected at an earlier look, so never tested again), at once when
    `secondary_seeds` is not set."""
    from harness.study.tuning import final_configs

    seeds = spec.tuning.final_seed_list
    configs = final_configs(spec, choices, seeds[earlier:count])
    decision = spec.decision
    if decision is None or (decision.secondary_seeds is None and not decision.decided_cells_stop):
        return configs
    found = hypotheses(spec)
    compared = {cell for h in found for cell in cells(spec, choices, h)}
    tested = {cell for h in found if not (decision.decided_cells_stop and h.name in decided)
              for cell in cells(spec, choices, h)}
    secondary = None if decision.secondary_seeds is None else \
        set(seeds[:decision.secondary_seeds])

    def runs(config: dict) -> bool:
        if config["arm"] in tested:
            return True
        if config["arm"] in compared:  # compared by decided hypotheses only
            return secondary is not None and config["seed"] in secondary
        return secondary is None or config["seed"] in secondary

    return [c for c in configs if runs(c)]


def decided_before(state: LookState, look: int) -> frozenset[str]:
    """The hypotheses rejected (decided) at the looks before look number `look` + 1 of `state`."""
    taken = state.decision.get("looks", [])[:look]
    return frozenset(name for row in taken for name in row["rejected"])


def hypotheses(spec: StudySpec) -> list[Hypothesis]:
    """The declared family, in file order: test × depth × Langevin arm."""
    if spec.decision is None:
        return []
    found = []
    for index, test in enumerate(spec.decision.tests):
        for arm in arms(spec):
            opt = arm.optimizer
            plain = twin(spec, arm) if opt.noisy else None
            if (plain is None or arm.depth not in test.depths
                    or (test.optimizers and opt.base not in test.optimizers)
                    or (test.variants and opt.variant not in test.variants)):
                continue
            found.append(Hypothesis(f"{test.label}, depth {arm.depth}: {opt.display} vs "
                                    f"{plain.optimizer.display}", index, arm.depth, arm.name,
                                    plain.name))
    return found


def cells(spec: StudySpec, choices: dict, hypothesis: Hypothesis) -> tuple[str, str]:
    """(Langevin cell, baseline cell): the arm names whose final runs the hypothesis compares."""
    comparison = spec.decision.tests[hypothesis.test].comparison
    controlled = {arm.name for arm, *_ in controls(spec, choices)}
    arm = next(a for a in arms(spec) if a.name == hypothesis.langevin_arm)
    if hypothesis.langevin_arm not in controlled or comparison == "tuned":
        return hypothesis.langevin_arm, hypothesis.baseline_arm
    if comparison == "noise_at_plain_lr":
        return control_arm_name(arm, CONTROL_PLAIN_LR), hypothesis.baseline_arm
    return hypothesis.langevin_arm, control_arm_name(arm, CONTROL_SIGMA0)


def chance(spec: StudySpec) -> float:
    """Chance accuracy: 1 / number of classes."""
    from harness.data.catalog import dataset_info

    return 1.0 / dataset_info(spec.dataset.name, **spec.dataset.options).num_classes


def success_threshold(spec: StudySpec) -> float:
    if spec.decision is not None and spec.decision.success_threshold is not None:
        return spec.decision.success_threshold
    return chance(spec) + DEFAULT_MARGIN


def paired_outcomes(records: list[dict], langevin: str, baseline: str, chance: float):
    """(seeds, Langevin accuracies, baseline accuracies) on the seeds both cells ran, in seed
    order; a run that did not finish (or has no test accuracy) counts at `chance`."""
    by_cell: dict[str, dict[int, dict]] = {}
    for record in records:
        by_cell.setdefault(record["arm"], {})[record["seed"]] = record
    seeds = sorted(set(by_cell.get(langevin, {})) & set(by_cell.get(baseline, {})))

    def accuracy(record):
        value = record["test_accuracy"]
        ok = record["status"] == STATUS_FINISHED and value is not None and math.isfinite(value)
        return value if ok else chance

    acc = {cell: np.array([accuracy(by_cell[cell][s]) for s in seeds], dtype=float)
           for cell in (langevin, baseline)}
    return seeds, acc[langevin], acc[baseline]


@dataclass
class LookState:
    """What the finals have shown so far: per look its seed count, its trials' outcomes and the
    declared tests' results; the family's decision after the last look taken."""

    looks: list[dict] = field(default_factory=list)
    decision: dict = field(default_factory=dict)

    @property
    def stopped(self) -> bool:
        return bool(self.decision.get("stop"))

    @property
    def records(self) -> list[dict]:
        return [r for look in self.looks for r in look["outcomes"]]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=float)

    @classmethod
    def from_json(cls, text: str) -> LookState:
        return cls(**json.loads(text))


def evaluate(spec: StudySpec, choices: dict, records: list[dict]) -> dict[str, dict]:
    """Each hypothesis' declared test on `records` (the finals so far): TestResult fields."""
    from harness.design.tests import evaluate as run_test

    threshold = success_threshold(spec)
    results = {}
    for hypothesis in hypotheses(spec):
        test = spec.decision.tests[hypothesis.test]
        langevin, baseline = cells(spec, choices, hypothesis)
        seeds, acc_l, acc_b = paired_outcomes(records, langevin, baseline, chance(spec))
        result = run_test(test.endpoint, test.test, acc_l > threshold, acc_b > threshold,
                          acc_l, acc_b)
        results[hypothesis.name] = {**asdict(result), "langevin_cell": langevin,
                                    "baseline_cell": baseline, "seeds": len(seeds)}
    return results


def decide(spec: StudySpec, looks: list[dict]) -> dict:
    """The family's decision after `looks` (each with its `count` and test `results`)."""
    from harness.design.family import decide as family_decide

    decision = spec.decision
    names = [h.name for h in hypotheses(spec)]
    plan = seed_counts(spec)
    fractions = [count / plan[-1] for count in plan]
    p_values = [{n: look["results"][n]["p_value"] for n in names} for look in looks]
    estimates = [{n: look["results"][n]["estimate"] for n in names} for look in looks]
    if decision.correction == "holm":
        families = [names]
    else:
        families = [[n] for n in names]
    verdicts, stop, reasons = {}, True, []
    taken = [{"look": k + 1, "seeds": look["count"], "alpha_spent": None, "rejected": []}
             for k, look in enumerate(looks)]
    for family in families:
        outcome = family_decide([{n: p[n] for n in family} for p in p_values], fractions,
                                decision.alpha, decision.spending,
                                [{n: e[n] for n in family} for e in estimates])
        for name in family:
            verdicts[name] = asdict(outcome.hypotheses[name])
        for row, state in zip(taken, outcome.looks):
            row["alpha_spent"] = state.alpha_spent  # f(t_k) at the overall α
            row["rejected"] += list(state.rejected)
        stop = stop and outcome.stop
        reasons.append(outcome.reason)
    return {"stop": stop, "reason": reasons[0] if len(reasons) == 1 else "; ".join(reasons),
            "verdicts": verdicts, "looks_taken": len(looks), "looks_planned": len(plan),
            "looks": taken}


def add_look(spec: StudySpec, choices: dict, state: LookState, count: int,
             records: list[dict]) -> LookState:
    """The state after one more look of `count` seeds per arm whose trials gave `records`."""
    looks = [*state.looks, {"count": count, "outcomes": records}]
    if spec.decision is None:
        last = len(looks) == len(seed_counts(spec))
        return LookState(looks, {"stop": last, "reason": "no declared decision"})
    every = [r for look in looks for r in look["outcomes"]]
    looks[-1]["results"] = evaluate(spec, choices, every)
    return LookState(looks, decide(spec, looks))


def control_lines(spec: StudySpec, choices: dict) -> list[str]:
    """What the matched-learning-rate controls are, one line per controlled Langevin arm."""
    lines = []
    for arm, control, _, values in controls(spec, choices):
        if control != CONTROL_SIGMA0:
            continue
        plain = twin(spec, arm)
        theirs = choices[plain.name].values
        lines.append(f"matched-lr controls for {arm.name}: it chose "
                     f"{_values(values)}, {plain.optimizer.display} chose {_values(theirs)}; "
                     f"finals add {control_arm_name(arm, CONTROL_SIGMA0)} and "
                     f"{control_arm_name(arm, CONTROL_PLAIN_LR)}")
    return lines


def _values(values: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in values.items())


def look_lines(spec: StudySpec, state: LookState) -> list[str]:
    """The console's account of the last look: each declared test and the family's decision."""
    look = state.looks[-1]
    plan = seed_counts(spec)
    head = f"look {len(state.looks)} of {len(plan)} ({look['count']} seeds per arm)"
    if spec.decision is None:
        return [f"{head} done"]
    lines = [f"{head}:"]
    for name, result in look["results"].items():
        verdict = state.decision["verdicts"][name]
        lines.append(f"  {name}: estimate {result['estimate']:+.3f} on {result['n']} seeds, "
                     f"p = {result['p_value']:.4g} -> {verdict['verdict']}")
    lines.append(f"  {state.decision['reason']}")
    return lines
