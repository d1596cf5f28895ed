"""What a study cost (harness.analysis.cost): wall time per phase and trial time with a pack's
span counted once, from hand-made start and end times."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.analysis.cost import COLUMNS, cost_table

HOUR = 3.6e6
T0 = 1_796_000_000_000  # some millisecond on 2026-12-01


def run(run_id, phase, start_h, end_h, pack=None, stage=None):
    return {"run_id": run_id, "phase": phase, "stage": stage, "pack": pack,
            "start_time": T0 + start_h * HOUR,
            "end_time": None if end_h is None else T0 + end_h * HOUR}


def test_a_pack_counts_once_and_each_phase_spans_its_runs():
    trials = pd.DataFrame([
        run("a", "tune", 0.0, 1.0, pack="p1"), run("b", "tune", 0.0, 1.0, pack="p1"),
        run("c", "tune", 0.5, 2.0, pack="p2"),                        # overlaps p1
        run("d", "tune", 2.0, 2.5, stage="screen"),                   # unpacked: its own trial
        run("e", "tune", 2.0, 3.0, stage="screen"),
        run("f", "final", 3.0, 5.0, pack="p3"), run("g", "final", 3.5, None, pack="p3"),
    ])
    cost = cost_table(trials).set_index("phase")
    assert list(cost.reset_index().columns) == COLUMNS
    assert list(cost.index) == ["tune", "tune (screen)", "final"]   # by first start
    assert cost.loc["tune", "runs"] == 3 and cost.loc["tune", "trials"] == 2
    assert cost.loc["tune", "wall_hours"] == pytest.approx(2.0)
    assert cost.loc["tune", "trial_hours"] == pytest.approx(1.0 + 1.5)
    assert cost.loc["tune (screen)", "trials"] == 2
    assert cost.loc["tune (screen)", "trial_hours"] == pytest.approx(0.5 + 1.0)
    # a run still open ends with the phase's last end
    assert cost.loc["final", "trial_hours"] == pytest.approx(2.0)
    assert cost.loc["final", "wall_hours"] == pytest.approx(2.0)
    assert cost.loc["tune", "first_start_utc"] == pd.Timestamp(
        T0, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")


def test_no_start_times_no_rows():
    assert cost_table(pd.DataFrame({"run_id": ["a"], "phase": ["final"]})).empty


def test_without_a_pack_column_each_run_is_its_own_trial():
    trials = pd.DataFrame([run("a", "final", 0.0, 1.0), run("b", "final", 0.0, 2.0)])
    cost = cost_table(trials.drop(columns=["pack", "stage"]))
    assert list(cost["trials"]) == [2] and cost["trial_hours"][0] == pytest.approx(3.0)
    assert list(cost["phase"]) == ["final"]
