"""The tuned-study part of an analysis: protocol, choices, budget curves, success on the finals.

A tuned study (trials tagged phase = "tune" / "final", one arm run per arm) is analysed in two
parts that never pool: its tuning trials give each arm's budget curve (`budget`); its final trials
(the chosen config re-run on fresh seeds) give success rates (`success`), the depth trend of
success (`success_trend`, logistic, secondary) and, in `report`, every
statistic an untuned study gets (per-arm summary, paired gains by seed, depth trend). Screening
trials (a kept point on another seed) are no draws of the budget curve; matched-learning-rate
controls get their own 2 × 2 (`controls`), never pooled with the arms; a study with a declared
decision gets its verdict from the declared tests (`verdict`), the only primary result. Runs that
have not ended (still going, or interrupted) are left out of all of it (`metrics.ended`). Before any
final run has an outcome (only tuning trials, or finals still running) there is nothing to
analyse: a one-line HarnessError says so (`require_finals`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from harness.analysis.budget import budget_curves
from harness.analysis.choice import chosen_configs, edge_warnings
from harness.analysis.controls import is_control, matched_lr_cells, matched_lr_effects
from harness.analysis.intervals import CONFIDENCE
from harness.analysis.load import Study
from harness.analysis.metrics import ended, outcome
from harness.analysis.success import (
    DEFAULT_MARGIN,
    SUCCESS_METRIC,
    success_rates,
    successes,
    twin_tests,
)
from harness.analysis.success_trend import success_trend
from harness.analysis.verdict import design_of, looks_table, verdict_lines, verdict_table
from harness.errors import HarnessError
from harness.study.run_schema import PHASE_FINAL, PHASE_TUNE
from harness.study.tuning import STAGE_SCREEN

PROTOCOL_PARAMS = [
    "budget", "sampler", "sampler_seed", "metric", "mode", "score_epoch", "tuning_seeds",
    "final_seeds", "langevin_mode", "screen", "matched_lr_controls",
]  # fmt: skip


@dataclass(frozen=True)
class Tuning:
    protocol: pd.DataFrame  # one row per arm: PROTOCOL_PARAMS and the searched ranges
    choices: pd.DataFrame  # choice.chosen_configs
    curves: pd.DataFrame  # budget.budget_curves
    success: pd.DataFrame  # success.success_rates on the finals
    twins: pd.DataFrame  # success.twin_tests
    trend: pd.DataFrame  # success_trend.success_trend
    threshold: float | None  # None: chance + DEFAULT_MARGIN per dataset
    matched_lr: pd.DataFrame  # controls.matched_lr_effects (empty without controls)
    matched_lr_seeds: pd.DataFrame  # controls.matched_lr_cells: the 2 × 2's every run
    declared: pd.DataFrame | None = None  # verdict.verdict_table (None: nothing declared)
    declared_lines: list[str] = field(default_factory=list)  # verdict.verdict_lines
    looks: pd.DataFrame | None = None  # verdict.looks_table

    def threshold_text(self) -> str:
        if self.threshold is None:
            return f"test accuracy > chance + {DEFAULT_MARGIN:.0%} (chance = 1 / number of classes)"
        return f"test accuracy > {self.threshold:g}"

    def warnings(self) -> list[str]:
        return edge_warnings(self.choices)


def finals_of(study: Study) -> Study:
    """The study restricted to the final trials of its arms (tuning trials never pool with them;
    the matched-learning-rate controls have their own 2 × 2, `controls`)."""
    trials = ended(study.trials)
    final_runs = (trials["phase"] == PHASE_FINAL) & ~is_control(trials)
    runs = set(trials.loc[final_runs, "run_id"])
    return Study(
        name=study.name,
        experiment_id=study.experiment_id,
        tracking_uri=study.tracking_uri,
        trials=trials[final_runs].reset_index(drop=True),
        epochs=study.epochs[study.epochs["run_id"].isin(runs)].reset_index(drop=True),
        metric_names=study.metric_names,
        arms=study.arms,
        design=study.design,
    )


def stage_one(trials: pd.DataFrame) -> pd.DataFrame:
    """The tuning trials that drew a point (a screening trial re-runs a kept point on another
    seed: it is no draw of the budget curve)."""
    tune = trials["phase"] == PHASE_TUNE
    if "stage" in trials:
        tune &= trials["stage"].isna() | (trials["stage"] != STAGE_SCREEN)
    return trials[tune]


def _ranges(arm: pd.Series) -> str:
    hypers = sorted(
        c[len("range.") : -len(".low")]
        for c in arm.index
        if c.startswith("range.") and c.endswith(".low") and pd.notna(arm[c])
    )
    return "; ".join(
        f"{h} [{float(arm[f'range.{h}.low']):g}, {float(arm[f'range.{h}.high']):g}]"
        + (" log" if str(arm[f"range.{h}.log"]).lower() == "true" else "")
        for h in hypers
    )


def protocol(arms: pd.DataFrame) -> pd.DataFrame:
    """Per arm: budget, sampler, seeds, metric and the searched ranges, as the arm runs logged them."""
    return pd.DataFrame(
        [
            {
                "arm_id": arm["arm_id"],
                **{p: arm.get(p) for p in PROTOCOL_PARAMS},
                "tuning_seeds": _seeds(arm.get("tuning_seeds")),
                "final_seeds": _seeds(arm.get("final_seeds")),
                "ranges": _ranges(arm),
            }
            for _, arm in arms.iterrows()
        ],
        columns=["arm_id", *PROTOCOL_PARAMS, "ranges"],
    ).sort_values("arm_id", ignore_index=True)


def require_finals(study: Study) -> None:
    """A one-line HarnessError unless some final trial has an outcome (its SUCCESS_METRIC logged,
    or diverged / failed)."""
    trials = study.trials
    finals = trials[trials["phase"] == PHASE_FINAL]
    if SUCCESS_METRIC in finals and outcome(finals, SUCCESS_METRIC).notna().any():
        return
    raise HarnessError(
        f"study {study.name!r} has no finished final run yet "
        f"({(trials['phase'] == PHASE_TUNE).sum()} tuning trials, {len(finals)} final): a tuned "
        "study is analysed on its final runs; finish its final phase (`harness run FILE`, or "
        f"`harness run --resume {study.name}`), then analyze it"
    )


def analyze_tuning(
    study: Study, threshold: float | None = None, confidence: float = CONFIDENCE
) -> Tuning:
    """The tuned-study statistics of `study` (see the module docstring); `require_finals` first."""
    require_finals(study)
    score_epoch = (
        dict(zip(study.arms["arm_id"], study.arms["score_epoch"], strict=True))
        if "score_epoch" in study.arms
        else {}
    )
    every_final = ended(study.trials)
    every_final = every_final[every_final["phase"] == PHASE_FINAL]
    finals = finals_of(study).trials
    rates = success_rates(finals, threshold, confidence)
    design = design_of(study.design)
    declared, notes = verdict_table(design, every_final) if design else (None, [])
    looks = looks_table(design, every_final) if design else None
    return Tuning(
        protocol=protocol(study.arms),
        choices=chosen_configs(study.arms),
        curves=budget_curves(stage_one(study.trials), score_epoch, confidence),
        success=rates,
        twins=twin_tests(rates, successes(finals, threshold), confidence),
        trend=success_trend(finals, threshold, confidence),
        threshold=threshold,
        matched_lr=matched_lr_effects(every_final, threshold),
        matched_lr_seeds=matched_lr_cells(every_final, threshold),
        declared=declared,
        declared_lines=verdict_lines(declared, notes, design) if design else [],
        looks=looks,
    )


def _seeds(text) -> str:
    """A JSON list of seeds as "0, 1, 2" (any other text as it is)."""
    try:
        return ", ".join(map(str, json.loads(text)))
    except (TypeError, ValueError):
        return str(text)
