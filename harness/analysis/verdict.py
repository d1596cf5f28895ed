"""The verdict of a study with a declared decision: the declared tests only, redone from the runs.

The study's design run (`run_schema.RUN_KIND_DESIGN`) keeps the study file as validated, each
arm's choice and the looks the driver took. From the final trials alone the analysis replays the
looks (`harness.study.looks.add_look`: the seeds of look k are the first `looks[k]` final seeds)
and so recomputes every declared test and the family's decision: group-sequential Holm, verdict
per hypothesis — **supported** (the Langevin arm better), **contradicted** (worse), **undecided**
— with the estimate, its interval, the p-value against its threshold at the deciding (or last)
look, the seeds it used and the power the declared test had at that many seeds for the declared
smallest effect (at α/m, Holm's first step). A verdict that differs from what the driver decided
while running is reported, never hidden. Everything else in the report is secondary.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.study.looks import (
    LookState,
    add_look,
    decided_before,
    hypotheses,
    look_configs,
    seed_counts,
)
from harness.study.run_schema import (
    DESIGN_CHOICES,
    DESIGN_DECLARED,
    DESIGN_LOOKS,
    DESIGN_SPEC,
)
from harness.study.space import StudySpec

COLUMNS = [
    "hypothesis", "verdict", "estimate", "low", "high", "interval", "p_value", "threshold",
    "look", "looks_taken", "seeds", "langevin_cell", "baseline_cell", "power_at_seeds",
]  # fmt: skip


@dataclass(frozen=True)
class Design:
    """A study's declared design as its design run recorded it."""

    spec: StudySpec
    choices: dict  # arm name -> tuning.Choice
    recorded: LookState | None  # the driver's looks (None: not recorded)
    declared: str | None = None  # when the decision was declared (None: not recorded)


def design_of(files: dict[str, str] | None) -> Design | None:
    """The Design of a study's design-run files (`Study.design`); None without them."""
    from harness.study.tuning import choices_from_json

    if files is None:
        return None
    return Design(StudySpec.model_validate_json(files[DESIGN_SPEC]),
                  choices_from_json(files[DESIGN_CHOICES]),
                  LookState.from_json(files[DESIGN_LOOKS]), files.get(DESIGN_DECLARED))


def _records(finals: pd.DataFrame) -> list[dict]:
    return [{"trial_key": row.trial_key, "arm": row.arm_id, "seed": int(row.seed),
             "status": row.status,
             "test_accuracy": None if pd.isna(row.test_accuracy) else float(row.test_accuracy)}
            for row in finals.itertuples()]


def replay(design: Design, finals: pd.DataFrame) -> LookState:
    """The looks the final trials complete, each decided as the driver decides it: look k is
    complete when every trial the driver runs for it (`looks.look_configs`) has ended (a look
    in progress, some cells ahead of others, is not a look yet)."""
    spec = design.spec
    records = _records(finals) if len(finals) else []
    ended = {(r["arm"], r["seed"]) for r in records}
    state = LookState()
    earlier = 0
    for count in seed_counts(spec):
        wanted = {(c["arm"], c["seed"]) for c in look_configs(
            spec, design.choices, earlier, count, decided_before(state, len(state.looks)))}
        if not wanted <= ended or state.stopped:
            break
        state = add_look(spec, design.choices, state, count,
                         [r for r in records if (r["arm"], r["seed"]) in wanted])
        earlier = count
    return state


def looks_table(design: Design, finals: pd.DataFrame) -> pd.DataFrame:
    """Per look taken: seeds per arm, information fraction, α spent so far (f(t_k) at the
    family's α), the hypotheses it decided."""
    state = replay(design, finals)
    plan = seed_counts(design.spec)
    return pd.DataFrame(
        [{"look": row["look"], "seeds per arm": row["seeds"],
          "information fraction": f"{row['seeds'] / plan[-1]:.2f}",
          "α spent (cumulative)": f"{row['alpha_spent']:.3g}",
          "decided here": "; ".join(row["rejected"]) or "none"}
         for row in state.decision.get("looks", [])],
        columns=["look", "seeds per arm", "information fraction", "α spent (cumulative)",
                 "decided here"])


def verdict_table(design: Design, finals: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """COLUMNS, one row per declared hypothesis, and the notes (disagreement with the driver's
    record, looks not complete)."""
    from harness.design.power import power

    spec = design.spec
    decision = spec.decision
    state = replay(design, finals)
    notes = []
    if not state.looks:
        return pd.DataFrame(columns=COLUMNS), [
            "no look complete yet: the declared tests need the first "
            f"{seed_counts(spec)[0]} final seeds of every compared cell"]
    found = hypotheses(spec)
    m = len(found) if decision.correction == "holm" else 1
    rows = []
    for hypothesis in found:
        verdict = state.decision["verdicts"][hypothesis.name]
        at = verdict["look"] or len(state.looks)
        result = state.looks[at - 1]["results"][hypothesis.name]
        test = decision.tests[hypothesis.test]
        rows.append({
            "hypothesis": hypothesis.name, "verdict": verdict["verdict"],
            "estimate": result["estimate"], "low": result["low"], "high": result["high"],
            "interval": result["interval"], "p_value": verdict["p_value"],
            "threshold": verdict["threshold"], "look": verdict["look"],
            "looks_taken": len(state.looks), "seeds": result["n"],
            "langevin_cell": result["langevin_cell"], "baseline_cell": result["baseline_cell"],
            "power_at_seeds": power(test.endpoint, test.test, result["n"],
                                    test.effect.effect(), decision.alpha / m),
        })
    if design.recorded is not None and design.recorded.looks:
        driver = design.recorded.decision.get("verdicts", {})
        mine = state.decision["verdicts"]
        differ = sorted(n for n in mine if driver.get(n, {}).get("verdict") != mine[n]["verdict"])
        if differ or len(design.recorded.looks) != len(state.looks):
            notes.append(f"the runs give {len(state.looks)} looks and verdicts that differ from "
                         f"what the driver recorded ({len(design.recorded.looks)} looks; "
                         f"differing: {', '.join(differ) or 'none'})")
    planned = seed_counts(spec)
    notes.append(f"{state.decision['reason']} (looks planned: {planned})")
    return pd.DataFrame(rows, columns=COLUMNS), notes


def _interval(row) -> str:
    if pd.isna(row.low):
        return f"(interval: {row.interval})"
    return f"[{row.low * 100:+.1f}, {row.high * 100:+.1f}] pp ({row.interval})"


def verdict_lines(table: pd.DataFrame, notes: list[str], design: Design) -> list[str]:
    """The report's opening paragraph: one line per declared hypothesis, in plain words."""
    decision = design.spec.decision
    lines = []
    for row in table.itertuples():
        planned = len(seed_counts(design.spec))
        decided = (f"p = {row.p_value:.3g} ≤ {row.threshold:.3g} at look {int(row.look)} of "
                   f"{planned}" if pd.notna(row.look) and row.look else
                   f"p = {row.p_value:.3g} > {row.threshold:.3g} at look {row.looks_taken} of "
                   f"{planned}")
        lines.append(
            f"**{row.verdict}** — {row.hypothesis} ({row.langevin_cell} − {row.baseline_cell}): "
            f"{row.estimate * 100:+.1f} pp {_interval(row)}, {decided}, {row.seeds} seeds per "
            "arm; power for the declared "
            f"smallest effect at {row.seeds} seeds: {row.power_at_seeds:.2f}")
    lines.append(f"Declared family: {len(table)} "
                 f"{'hypothesis' if len(table) == 1 else 'hypotheses'}, two-sided α = {decision.alpha:g}, "
                 f"{'Holm' if decision.correction == 'holm' else 'no correction'}, "
                 f"{decision.spending} α-spending; declared "
                 f"{design.declared or 'when: not recorded (an older harness)'}; "
                 + "; ".join(notes))
    return lines
