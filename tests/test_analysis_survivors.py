"""Mutants of harness.analysis (matched-lr controls, the verdict) that the fast tier let through,
each now caught here. Expected values are worked by hand from the modules' docstrings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from harness.analysis.controls import COLUMNS, matched_lr_effects
from harness.analysis.verdict import COLUMNS as VERDICT_COLUMNS
from harness.analysis.verdict import Design, design_of, replay, verdict_lines, verdict_table
from harness.study.looks import LookState
from harness.study.run_schema import DESIGN_CHOICES, DESIGN_LOOKS, DESIGN_SPEC
from harness.study.space import load_space
from harness.study.tuning import Choice, choices_to_json

REPO = Path(__file__).resolve().parent.parent

LANGEVIN = "mnist-dense40-L-Adam"


def control_finals(cells: dict) -> pd.DataFrame:
    """Final runs: (arm, variant, control) -> test accuracy on seeds 3, 4, ... (all finished)."""
    return pd.DataFrame([
        {"dataset": "mnist", "model": "dense", "depth": 40, "arm_id": arm, "variant": variant,
         "pair": "adam", "seed": seed, "status": "finished", "test_accuracy": value,
         "control": control, "control_of": LANGEVIN if control else None}
        for (arm, variant, control), values in cells.items()
        for seed, value in zip(range(3, 3 + len(values)), values)])


TWO_BY_TWO = {
    ("mnist-dense40-Adam", "baseline", None): [0.5, 0.75],
    (LANGEVIN, "langevin", None): [0.75, 0.75],
    (f"{LANGEVIN}[sigma=0]", "baseline", "sigma0"): [0.5, 0.5],
    (f"{LANGEVIN}[lr=Adam]", "langevin", "plain_lr"): [0.25, 0.75],
}


def test_a_control_run_exactly_at_the_threshold_is_not_a_success():
    # success is accuracy *above* the threshold: at 0.5, only the 0.75 runs count
    effects = matched_lr_effects(control_finals(TWO_BY_TWO), threshold=0.5).set_index("effect")
    tuned = effects.loc["tuned vs tuned"]  # L (0.75, 0.75) − Adam (0.5, 0.75)
    assert (tuned["successes"], tuned["minus_successes"]) == (2, 1)
    at_langevin = effects.loc["noise at the Langevin lr"]  # L − L[sigma=0] (0.5, 0.5)
    assert (at_langevin["successes"], at_langevin["minus_successes"]) == (2, 0)


def test_each_effect_row_names_the_dataset_model_and_depth_of_its_arm():
    effects = matched_lr_effects(control_finals(TWO_BY_TWO))
    assert list(effects.columns) == COLUMNS
    assert len(effects) == 5  # the five effects of the 2 × 2
    assert set(zip(effects["dataset"], effects["model"], effects["depth"])) == {
        ("mnist", "dense", 40)}


def test_controls_whose_langevin_arm_has_no_final_run_give_no_rows_but_the_columns():
    only_controls = {key: values for key, values in TWO_BY_TWO.items() if key[0] != LANGEVIN}
    effects = matched_lr_effects(control_finals(only_controls))
    assert effects.empty and list(effects.columns) == COLUMNS


# --- the verdict (smoke_decided.yaml: Holm over an accuracy sign-flip test and a success
# Fisher test, looks at 4 and 8 seeds; as in tests/test_analysis_verdict.py) -------------------

PLAIN, NOISY = "synthetic-dense6-Adam", "synthetic-dense6-L-Adam"
SEEDS = list(range(2, 10))  # smoke_decided's final seeds
DECIDED = {  # every Langevin cell trains, the plain arm never: both tests decide at look 2
    PLAIN: [0.10] * 7 + [None], NOISY: [0.9] * 8, f"{NOISY}[lr=Adam]": [0.9] * 8,
    f"{NOISY}[sigma=0]": [0.5] * 8,
}


def smoke_design(recorded=None) -> Design:
    spec = load_space(REPO / "search_spaces" / "smoke_decided.yaml")
    choices = {PLAIN: Choice(PLAIN, 1, 0.9, {"learning_rate": 5e-3}, "a"),
               NOISY: Choice(NOISY, 2, 0.9, {"learning_rate": 1e-3, "sigma": 1e-3}, "b")}
    return Design(spec, choices, recorded)


def verdict_finals(values: dict) -> pd.DataFrame:
    return pd.DataFrame([
        {"trial_key": f"{cell}-{seed}", "arm_id": cell, "seed": seed,
         "status": "diverged" if value is None else "finished", "test_accuracy": value}
        for cell, per_seed in values.items() for seed, value in zip(SEEDS, per_seed)])


def test_the_verdict_table_carries_each_tests_interval():
    table, _ = verdict_table(smoke_design(), verdict_finals(DECIDED))
    accuracy, success = table["hypothesis"]
    table = table.set_index("hypothesis")
    # 8/8 against 0/8 (the diverged run at chance): Newcombe's interval, from statsmodels
    low, high = confint_proportions_2indep(8, 8, 0, 8, method="newcomb", compare="diff")
    assert (table.loc[success, "low"], table.loc[success, "high"]) == pytest.approx((low, high))
    # eight equal gains 0.9 − 0.1: no spread, the interval is the point
    assert (table.loc[accuracy, "low"], table.loc[accuracy, "high"]) == pytest.approx((0.8, 0.8))


def test_a_verdict_the_driver_recorded_alike_adds_no_disagreement_note():
    design = smoke_design()
    same = replay(design, verdict_finals(DECIDED))  # what the driver would have recorded
    _, notes = verdict_table(smoke_design(recorded=same), verdict_finals(DECIDED))
    assert len(notes) == 1 and notes[0].startswith("every declared test decided at look 2 of 2")


def test_verdict_lines_print_the_interval_in_points_and_the_holm_family():
    design = smoke_design()
    row = {"hypothesis": "h", "verdict": "supported", "estimate": 0.1, "low": 0.05,
           "high": 0.15, "interval": "BCa bootstrap", "p_value": 0.001, "threshold": 0.01,
           "look": 2, "looks_taken": 2, "seeds": 8, "langevin_cell": "L", "baseline_cell": "B",
           "power_at_seeds": 0.5}
    lines = verdict_lines(pd.DataFrame([row], columns=VERDICT_COLUMNS), ["note"], design)
    assert "+10.0 pp [+5.0, +15.0] pp (BCa bootstrap)" in lines[0]
    assert lines[1] == ("Declared family: 1 hypothesis, two-sided α = 0.05, Holm, "
                        "obrien_fleming α-spending; declared when: not recorded (an older "
                        "harness); note")
    open_row = {**row, "verdict": "undecided", "p_value": 0.104, "threshold": 0.000657,
                "look": None, "looks_taken": 2}
    both = verdict_lines(pd.DataFrame([row, open_row], columns=VERDICT_COLUMNS), [], design)
    assert "p = 0.001 ≤ 0.01 at look 2 of 2," in both[0]  # the column holds a float then
    assert "p = 0.104 > 0.000657 at look 2 of 2," in both[1]
    dated = dataclasses.replace(design, declared="after tuning, before the finals, at T")
    assert "α-spending; declared after tuning, before the finals, at T; note" in verdict_lines(
        pd.DataFrame([row], columns=VERDICT_COLUMNS), ["note"], dated)[1]


def test_design_of_reads_back_the_files_the_design_run_keeps():
    design = smoke_design(recorded=LookState())
    files = {DESIGN_SPEC: design.spec.model_dump_json(indent=1),
             DESIGN_CHOICES: choices_to_json(design.choices),
             DESIGN_LOOKS: LookState().to_json()}
    read = design_of(files)
    assert read == design
    assert design_of(None) is None
