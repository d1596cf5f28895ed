"""The verdict from the declared tests (harness.analysis.verdict), replayed from final runs.

smoke_decided.yaml declares, Holm over two hypotheses, looks at 4 and 8 seeds: the noise effect
on test accuracy at the plain learning rate (sign-flip) and the tuned twins' success (Fisher).
Here the twins chose different learning rates, so the accuracy test meets the control
L-Adam[lr=Adam] and the plain arm; the success test the tuned L-Adam and Adam."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.analysis.verdict import Design, replay, verdict_lines, verdict_table
from harness.study.looks import LookState
from harness.study.space import load_space
from harness.study.tuning import Choice

REPO = Path(__file__).resolve().parent.parent
PLAIN, NOISY = "synthetic-dense6-Adam", "synthetic-dense6-L-Adam"
CONTROL = f"{NOISY}[lr=Adam]"


def design(recorded=None) -> Design:
    spec = load_space(REPO / "search_spaces" / "smoke_decided.yaml")
    choices = {PLAIN: Choice(PLAIN, 1, 0.9, {"learning_rate": 5e-3}, "a"),
               NOISY: Choice(NOISY, 2, 0.9, {"learning_rate": 1e-3, "sigma": 1e-3}, "b")}
    return Design(spec, choices, recorded)


def finals(seeds, values: dict) -> pd.DataFrame:
    """Final runs of the cells in `values` (cell -> accuracy per seed, None = diverged)."""
    return pd.DataFrame([
        {"trial_key": f"{cell}-{seed}", "arm_id": cell, "seed": seed,
         "status": "diverged" if value is None else "finished", "test_accuracy": value}
        for cell, per_seed in values.items() for seed, value in zip(seeds, per_seed)])


SEEDS = list(range(2, 10))  # smoke_decided's final seeds
DECIDED = {  # every Langevin cell trains, the plain arm never: both tests decide at look 2
    PLAIN: [0.10] * 7 + [None], NOISY: [0.9] * 8, CONTROL: [0.9] * 8,
    f"{NOISY}[sigma=0]": [0.5] * 8,
}


def test_the_verdict_is_the_declared_tests_replayed_look_by_look():
    table, notes = verdict_table(design(), finals(SEEDS, DECIDED))
    table = table.set_index("hypothesis")
    accuracy, success = table.index
    assert table.loc[accuracy, "langevin_cell"] == CONTROL  # matched learning rate
    assert table.loc[success, "langevin_cell"] == NOISY
    assert set(table["verdict"]) == {"supported"} and set(table["look"]) == {2}
    assert table.loc[success, "estimate"] == 1.0 and table.loc[success, "seeds"] == 8
    # 0.9 − 0.1 on every seed: the diverged plain run counts at chance, 0.1 (10 classes)
    assert table.loc[accuracy, "estimate"] == pytest.approx(0.8)
    assert table.loc[success, "p_value"] == pytest.approx(1 / 6435)  # Fisher 8/8 vs 0/8
    assert all(table["p_value"] <= table["threshold"])
    assert notes[-1].startswith("every declared test decided at look 2 of 2")
    lines = verdict_lines(table.reset_index(), notes, design())
    assert lines[0].startswith("**supported** — accuracy (sign_flip, noise_at_plain_lr)")
    assert "+100.0 pp" in lines[1] and "8 seeds per arm" in lines[1]


def test_a_secondary_cell_stopped_at_its_seeds_completes_the_later_looks():
    """With `secondary_seeds: 4` the driver runs the only-describing control L-Adam[sigma=0] on
    look 1 only: its 4 seeds complete look 2 as well; without the field they leave it open."""
    stopped = {**DECIDED, f"{NOISY}[sigma=0]": DECIDED[f"{NOISY}[sigma=0]"][:4]}
    runs = pd.concat([finals(SEEDS, {k: v for k, v in stopped.items() if len(v) == 8}),
                      finals(SEEDS[:4], {k: v for k, v in stopped.items() if len(v) == 4})])
    assert len(replay(design(), runs).looks) == 1
    base = design()
    secondary = Design(base.spec.model_copy(update={"decision": base.spec.decision.model_copy(
        update={"secondary_seeds": 4})}), base.choices, None)
    table, _ = verdict_table(secondary, runs)
    assert set(table["verdict"]) == {"supported"} and set(table["look"]) == {2}
    assert table.set_index("hypothesis")["seeds"].tolist() == [8, 8]


def test_an_unfinished_look_is_not_counted_and_no_look_means_no_verdict():
    first_half = finals(SEEDS[:4], {k: v[:4] for k, v in DECIDED.items()})
    assert len(replay(design(), first_half).looks) == 1
    some = finals(SEEDS[:6], {k: v[:6] for k, v in DECIDED.items()})
    table, _ = verdict_table(design(), some)
    assert set(table["looks_taken"]) == {1} and set(table["seeds"]) == {4}
    assert set(table["verdict"]) == {"undecided"}  # 4 seeds cannot pass O'Brien-Fleming
    none, notes = verdict_table(design(), finals(SEEDS[:3], {k: v[:3] for k, v in DECIDED.items()}))
    assert none.empty and "no look complete yet" in notes[0]
    # look 2 in progress: one cell has all its seeds, the others not yet (they run in packs)
    ahead = pd.concat([first_half, finals(SEEDS[4:], {PLAIN: DECIDED[PLAIN][4:]})])
    assert len(replay(design(), ahead).looks) == 1
    table, _ = verdict_table(design(), ahead)
    assert set(table["looks_taken"]) == {1} and set(table["seeds"]) == {4}


def test_a_verdict_that_differs_from_the_drivers_record_is_reported():
    recorded = LookState([{"count": 4, "outcomes": []}], {"verdicts": {}})
    _, notes = verdict_table(design(recorded), finals(SEEDS, DECIDED))
    assert "differ from what the driver recorded (1 looks" in notes[0]


def test_the_looks_table_says_what_each_look_spent_and_decided():
    from harness.analysis.verdict import looks_table
    from harness.design.sequential import spent

    table = looks_table(design(), finals(SEEDS, DECIDED))
    assert list(table["seeds per arm"]) == [4, 8]
    expected = spent([0.5, 1.0], 0.05, "obrien_fleming")
    assert list(table["α spent (cumulative)"]) == [f"{v:.3g}" for v in expected]
    assert table["decided here"].iloc[0] == "none" and table["decided here"].iloc[1].count(";") == 1


def test_with_decided_cells_stop_the_replay_completes_looks_without_a_decided_cell():
    """Looks at 12 and 20 seeds: the matched-lr accuracy test (L-Adam[lr=Adam] 0.9 vs Adam 0.8
    on every seed, sign-flip p = 2/4096) is decided at look 1; the success test (both train on
    every seed) stays open. The driver then runs look 2 without L-Adam[lr=Adam]: with
    `decided_cells_stop` the replay takes that look, without it the look is incomplete."""
    base = design()
    spec = base.spec.model_copy(update={
        "decision": base.spec.decision.model_copy(update={"looks": [12, 20],
                                                          "decided_cells_stop": True}),
        "tuning": base.spec.tuning.model_copy(update={"final_seeds": 20})})
    seeds = spec.tuning.final_seed_list
    look1 = finals(seeds[:12], {PLAIN: [0.8] * 12, NOISY: [0.9] * 12, CONTROL: [0.9] * 12,
                                f"{NOISY}[sigma=0]": [0.5] * 12})
    look2 = finals(seeds[12:], {PLAIN: [0.8] * 8, NOISY: [0.9] * 8,
                                f"{NOISY}[sigma=0]": [0.5] * 8})
    runs = pd.concat([look1, look2])
    stopping = Design(spec, base.choices, None)
    assert len(replay(stopping, runs).looks) == 2
    table = verdict_table(stopping, runs)[0].set_index("hypothesis")
    accuracy, success = table.index
    assert (table.loc[accuracy, "verdict"], table.loc[accuracy, "look"],
            table.loc[accuracy, "seeds"]) == ("supported", 1, 12)
    assert (table.loc[success, "verdict"], table.loc[success, "seeds"]) == ("undecided", 20)
    every = Design(spec.model_copy(update={"decision": spec.decision.model_copy(
        update={"decided_cells_stop": False})}), base.choices, None)
    assert len(replay(every, runs).looks) == 1
