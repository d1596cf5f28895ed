"""The decision-grade protocol's pure parts: screening, noise-only tuning, matched-learning-rate
controls, the declared family and its looks, the dry run's power. No Ray here (the whole run:
tests/test_study_decided.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.errors import HarnessError
from harness.study import looks
from harness.study.power_plan import power_lines
from harness.study.run_schema import STATUS_DIVERGED, STATUS_FINISHED
from harness.study.space import parse_space
from harness.study.tuning import (
    CONTROL_PLAIN_LR,
    CONTROL_SIGMA0,
    Choice,
    arms,
    choose,
    final_configs,
    rounds,
    screen_configs,
    tune_configs,
)

REPO = Path(__file__).resolve().parent.parent
SMOKE_DECIDED = REPO / "search_spaces" / "smoke_decided.yaml"
DENSE_TUNED = REPO / "search_spaces" / "dense_depth_mnist_tuned.yaml"


def spec_of(tmp_path, source=SMOKE_DECIDED, **changes):
    """A study file with `changes` ("tuning.x" / "decision.x" edit a block; None deletes)."""
    data = yaml.safe_load(source.read_text())
    for key, value in changes.items():
        block, _, name = key.rpartition(".")
        owner = data[block] if block else data
        if value is None:
            owner.pop(name, None)
        else:
            owner[name] = value
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return parse_space(data, path)


def outcome(value, status=STATUS_FINISHED, epochs=3):
    return (status, [value] * epochs)


# --- screening -------------------------------------------------------------------------------


def test_screen_reruns_each_arms_best_points_and_twins_get_the_same_trial_budget(tmp_path):
    spec = spec_of(tmp_path)
    stage_one = tune_configs(spec)
    scores = {"Adam": [0.5, 0.9, 0.7, 0.8], "L-Adam": [0.95, 0.2, 0.6, 0.3]}
    outcomes = {c["trial_key"]: outcome(scores[c["optimizer"]][c["point"]]) for c in stage_one}
    screened = screen_configs(spec, stage_one, outcomes, failed_score=0.1)
    kept = {(c["optimizer"], c["point"]) for c in screened}
    assert kept == {("Adam", 1), ("Adam", 3), ("L-Adam", 0), ("L-Adam", 2)}
    assert {c["seed"] for c in screened} == {1} == set(spec.tuning.screen_seed_list)
    assert all(c["stage"] == "screen" and c["phase"] == "tune" for c in screened)
    per_arm = {a.name: sum(c["arm"] == a.name for c in stage_one + screened) for a in arms(spec)}
    assert set(per_arm.values()) == {spec.tuning.trials_per_arm} == {6}
    assert len({c["trial_key"] for c in stage_one + screened}) == 12
    assert not set(spec.tuning.final_seed_list) & {0, 1}


def test_screened_choice_is_the_best_mean_with_failures_at_chance(tmp_path):
    """Point 1 won stage one on its lucky seed but sits at chance on the screening seed; point 3
    trains on both: the screen chooses point 3. A diverged screening trial scores at chance."""
    spec = spec_of(tmp_path)
    stage_one = tune_configs(spec)
    first = {1: 0.95, 3: 0.9, 0: 0.2, 2: 0.3}
    outcomes = {c["trial_key"]: outcome(first[c["point"]]) for c in stage_one}
    screened = screen_configs(spec, stage_one, outcomes, failed_score=0.1)
    for c in screened:
        if c["point"] == 1 and c["optimizer"] == "Adam":
            outcomes[c["trial_key"]] = outcome(float("nan"), STATUS_DIVERGED)
        elif c["point"] == 1:
            outcomes[c["trial_key"]] = outcome(0.1)
        else:
            outcomes[c["trial_key"]] = outcome(0.88)
    choices = choose(spec, outcomes, stage_one, screened)
    assert {c.point for c in choices.values()} == {3}
    assert all(math.isclose(c.score, (0.9 + 0.88) / 2) for c in choices.values())
    unscreened = choose(spec, {k: v for k, v in outcomes.items()}, stage_one)
    assert {c.point for c in unscreened.values()} == {1}  # one seed picks the lucky point


# --- noise only ------------------------------------------------------------------------------


def test_noise_only_tunes_sigma_alone_at_the_plain_choice(tmp_path):
    spec = spec_of(tmp_path, **{"tuning.langevin": "noise_only",
                                "tuning.matched_lr_controls": None})
    plain, noisy = rounds(spec)
    assert [a.optimizer.noisy for a in plain] == [False] and [a.optimizer.noisy for a in noisy] == [True]
    first = tune_configs(spec)
    assert {c["optimizer"] for c in first} == {"Adam"}
    chosen = {plain[0].name: Choice(plain[0].name, 2, 0.9, {"learning_rate": 0.0123}, "k")}
    second = tune_configs(spec, noisy, chosen)
    assert len(second) == spec.tuning.budget
    assert {c["learning_rate"] for c in second} == {0.0123}
    sigmas = [c["sigma"] for c in second]
    assert len(set(sigmas)) == len(sigmas) and all(1e-5 <= s <= 1e-2 for s in sigmas)
    outcomes = {c["trial_key"]: outcome(0.5 + 0.1 * c["point"]) for c in second}
    picked = choose(spec, outcomes, second)[noisy[0].name]
    assert picked.values == {"learning_rate": 0.0123, "sigma": sigmas[3]}


@pytest.mark.parametrize("changes, message", [
    ({"tuning.langevin": "noise_only"}, "nothing to control"),
    ({"tuning.langevin": "noise_only", "tuning.matched_lr_controls": None,
      "optimizers": [{"base": "adam"}, {"base": "adam", "sigma": 0.001}]}, "searches sigma alone"),
    ({"tuning.langevin": "noise_only", "tuning.matched_lr_controls": None,
      "optimizers": [{"base": "rmsprop"}, {"base": "adam", "sigma": "tune"}]}, "no plain adam"),
    ({"tuning.screen": {"top": 0, "seeds": 2}}, "tuning.screen.top"),
    ({"tuning.screen": {"top": 2, "seeds": 1}}, "tuning.screen.seeds"),
    ({"tuning.final_seeds": [1, 2, 3, 4, 5, 6, 7, 8]}, "screening seeds [1]"),
    ({"tuning.final_seeds": 5}, "decision.looks"),
    ({"decision.looks": [6, 3]}, "increasing"),
    ({"decision.secondary_seeds": 9}, "decision.secondary_seeds': 9 is more than"),
    ({"decision.secondary_seeds": 0}, "decision.secondary_seeds"),
    ({"tuning.matched_lr_controls": None}, "needs the twins at one learning rate"),
])
def test_bad_protocol_fields_are_refused_with_one_line(tmp_path, changes, message):
    with pytest.raises(HarnessError, match=None) as error:
        spec_of(tmp_path, **changes)
    text = str(error.value)
    assert message in text and "\n" not in text


@pytest.mark.parametrize("test, message", [
    ({"endpoint": "success", "test": "sign_flip"}, "allowed: fisher, boschloo, mcnemar"),
    ({"endpoint": "accuracy", "test": "fisher"}, "allowed: sign_flip"),
    ({"depths": [40]}, "[40] not in model.depths"),
    ({"optimizers": ["rmsprop"]}, "['rmsprop'] without a plain arm"),
])
def test_bad_declared_tests_name_the_field(tmp_path, test, message):
    base = {"endpoint": "success", "test": "fisher", "depths": [6],
            "effect": {"baseline_success": 0.5, "langevin_success": 1.0}}
    with pytest.raises(HarnessError) as error:
        spec_of(tmp_path, **{"decision.tests": [{**base, **test}]})
    assert message in str(error.value) and "decision.tests.0" in str(error.value)


# --- matched-learning-rate controls ------------------------------------------------------------


def _choices(spec, lr_plain, lr_langevin, sigma=1e-3):
    plain, noisy = arms(spec)
    return {plain.name: Choice(plain.name, 1, 0.9, {"learning_rate": lr_plain}, "a"),
            noisy.name: Choice(noisy.name, 2, 0.9, {"learning_rate": lr_langevin, "sigma": sigma},
                               "b")}


def test_controls_are_the_2x2_of_learning_rate_and_sigma_on_the_same_seeds(tmp_path):
    spec = spec_of(tmp_path)
    plain, noisy = arms(spec)
    configs = final_configs(spec, _choices(spec, 5e-3, 1e-3), seeds=[2, 3])
    cell = {(c["learning_rate"], c["sigma"]): c for c in configs if c["seed"] == 2}
    assert set(cell) == {(5e-3, 0.0), (1e-3, 1e-3), (1e-3, 0.0), (5e-3, 1e-3)}
    sigma0, plain_lr = cell[(1e-3, 0.0)], cell[(5e-3, 1e-3)]
    assert (sigma0["control"], sigma0["control_of"], sigma0["variant"]) == (
        CONTROL_SIGMA0, noisy.name, "baseline")
    assert (plain_lr["control"], plain_lr["control_of"], plain_lr["variant"]) == (
        CONTROL_PLAIN_LR, noisy.name, "langevin")
    assert sigma0["arm"] == f"{noisy.name}[sigma=0]" and plain_lr["arm"] == f"{noisy.name}[lr=Adam]"
    assert {c["seed"] for c in configs} == {2, 3} and len(configs) == 8
    assert len({c["trial_key"] for c in configs}) == 8
    same = final_configs(spec, _choices(spec, 1e-3, 1e-3), seeds=[2, 3])
    assert len(same) == 4 and not any("control" in c for c in same)  # matched already


def test_noise_comparisons_meet_the_cells_of_their_learning_rate(tmp_path):
    spec = spec_of(tmp_path)
    plain, noisy = arms(spec)
    accuracy, success = looks.hypotheses(spec)
    differ, same = _choices(spec, 5e-3, 1e-3), _choices(spec, 1e-3, 1e-3)
    assert looks.cells(spec, differ, accuracy) == (f"{noisy.name}[lr=Adam]", plain.name)
    assert looks.cells(spec, same, accuracy) == (noisy.name, plain.name)
    assert looks.cells(spec, differ, success) == (noisy.name, plain.name)
    at_langevin = spec_of(tmp_path, **{"decision.tests": [{
        "endpoint": "success", "test": "mcnemar", "comparison": "noise_at_langevin_lr",
        "depths": [6], "effect": {"baseline_success": 0.5, "langevin_success": 1.0}}]})
    (hypothesis,) = looks.hypotheses(at_langevin)
    assert looks.cells(at_langevin, differ, hypothesis) == (noisy.name, f"{noisy.name}[sigma=0]")


# --- looks ------------------------------------------------------------------------------------


def _records(cells_values: dict, seeds):
    return [{"trial_key": f"{cell}-{s}", "arm": cell, "seed": s,
             "status": STATUS_FINISHED if not math.isnan(v) else STATUS_DIVERGED,
             "test_accuracy": v} for cell, values in cells_values.items()
            for s, v in zip(seeds, values)]


def test_looks_stop_when_every_declared_test_is_decided(tmp_path):
    """Look 1 (3 seeds) cannot decide; at look 2 (12 seeds, t = 0.6) success 0/12 vs 12/12
    (Fisher p = 1.9e-6) and 12 equal accuracy gains (exact sign-flip p = 2/4096) both pass
    their O'Brien-Fleming boundaries at α/2 and α: the study stops before its 20-seed maximum."""
    spec = spec_of(tmp_path, **{"decision.looks": [3, 12, 20], "tuning.final_seeds": None})
    plain, noisy = arms(spec)
    choices = _choices(spec, 1e-3, 1e-3)
    state = looks.LookState()
    first = _records({noisy.name: [0.9] * 3, plain.name: [0.1] * 3}, range(2, 5))
    state = looks.add_look(spec, choices, state, 3, first)
    assert not state.stopped and state.decision["looks_taken"] == 1
    assert {v["verdict"] for v in state.decision["verdicts"].values()} == {"undecided"}
    second = _records({noisy.name: [0.9] * 9, plain.name: [0.1] * 8 + [float("nan")]},
                      range(5, 14))
    state = looks.add_look(spec, choices, state, 12, second)
    results = state.looks[-1]["results"]
    assert {r["n"] for r in results.values()} == {12}
    assert [r["estimate"] for r in results.values()] == [pytest.approx(0.8), 1.0]
    assert state.stopped and "look 2" in state.decision["reason"]
    assert {v["verdict"] for v in state.decision["verdicts"].values()} == {"supported"}
    again = looks.LookState.from_json(state.to_json())
    assert again.stopped and again.to_json() == state.to_json()


def test_a_cell_no_declared_test_compares_stops_at_the_secondary_seeds(tmp_path):
    """smoke_decided's tests compare L-Adam[lr=Adam] with Adam (accuracy) and L-Adam with Adam
    (success): the control L-Adam[sigma=0] only describes, so with `secondary_seeds: 4` it runs
    look 1's 4 seeds and none of look 2's; without it, every look's."""
    choices = _choices(spec_of(tmp_path), 5e-3, 1e-3)
    spec = spec_of(tmp_path, **{"decision.secondary_seeds": 4})
    plain, noisy = arms(spec)
    first, second = (looks.look_configs(spec, choices, a, b) for a, b in ((0, 4), (4, 8)))

    def cells_of(configs):
        seeds: dict[str, list[int]] = {}
        for config in configs:
            seeds.setdefault(config["arm"], []).append(config["seed"])
        return seeds

    sigma0 = f"{noisy.name}[sigma=0]"
    assert cells_of(first) == {cell: [2, 3, 4, 5] for cell in
                               (plain.name, noisy.name, sigma0, f"{noisy.name}[lr=Adam]")}
    assert cells_of(second) == {cell: [6, 7, 8, 9] for cell in
                                (plain.name, noisy.name, f"{noisy.name}[lr=Adam]")}
    every = spec_of(tmp_path)
    assert looks.look_configs(every, choices, 4, 8) == final_configs(every, choices, [6, 7, 8, 9])
    assert "stop at 4 seeds (decision.secondary_seeds)" in "\n".join(power_lines(spec))


def test_an_unfinished_run_counts_at_chance_and_failed_not_trained(tmp_path):
    spec = spec_of(tmp_path)
    seeds, acc_l, acc_b = looks.paired_outcomes(
        _records({"L": [0.9, float("nan")], "B": [0.8, 0.7]}, [2, 3]), "L", "B", chance=0.1)
    assert seeds == [2, 3] and list(acc_l) == [0.9, 0.1] and list(acc_b) == [0.8, 0.7]
    assert looks.success_threshold(spec) == pytest.approx(0.2)  # synthetic: 10 classes


# --- dry run ----------------------------------------------------------------------------------


def test_dry_run_states_budget_controls_and_power(capsys):
    assert main(["run", str(SMOKE_DECIDED), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "budget 4 + 2 kept points × 1 screening seeds = 6 tuning trials per arm" in text
    assert "screening seeds [1]" in text and "final seeds [2, 3, 4, 5, 6, 7, 8, 9]" in text
    assert "matched-lr controls" in text and "declared decision: 2 hypotheses" in text
    assert "Holm over all 2 hypotheses" in text and "looks [4, 8]" in text


def test_dry_run_of_the_tuned_dense_study_with_a_declared_fisher_test(tmp_path, capsys):
    """100 % vs 62.5 % success at depth 40, two-sided Fisher at α = 0.05: power 0.137 at the
    study's 8 final seeds, 80 % from 17 seeds on (../shared/spec/decision-design.md)."""
    data = yaml.safe_load(DENSE_TUNED.read_text())
    data["decision"] = {"alpha": 0.05, "correction": "none", "tests": [{
        "endpoint": "success", "test": "fisher", "depths": [40], "optimizers": ["adam"],
        "effect": {"baseline_success": 0.625, "langevin_success": 1.0}}]}
    path = tmp_path / "declared.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "power 0.137 at 8 seeds per arm (α = 0.05); 80% power from 17 seeds on" in text
    assert "WARNING: power below 50%" in text


def test_a_declared_study_is_not_cut_into_depth_parts(capsys):
    assert main(["run", str(SMOKE_DECIDED), "--depths", "6", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "runs whole" in err and len(err.strip().splitlines()) == 1


def test_with_decided_cells_stop_a_cell_only_decided_hypotheses_compare_stops(tmp_path):
    """Accuracy (L-Adam[lr=Adam] vs Adam) decided at look 1, success (L-Adam vs Adam) open: with
    `decided_cells_stop` look 2 drops L-Adam[lr=Adam] (at once, or after `secondary_seeds`)
    and keeps Adam and L-Adam, which the open test compares; without it every cell runs."""
    spec = spec_of(tmp_path, **{"decision.decided_cells_stop": True})
    choices = _choices(spec, 5e-3, 1e-3)
    plain, noisy = arms(spec)
    accuracy, success = (h.name for h in looks.hypotheses(spec))
    state = looks.LookState([{"count": 4, "outcomes": []}],
                            {"looks": [{"look": 1, "rejected": [accuracy]}]})
    assert looks.decided_before(state, 0) == frozenset()
    assert looks.decided_before(state, 1) == {accuracy}

    def cells_of(configs):
        return {c["arm"] for c in configs}

    control, sigma0 = f"{noisy.name}[lr=Adam]", f"{noisy.name}[sigma=0]"
    decided = looks.decided_before(state, 1)
    assert cells_of(looks.look_configs(spec, choices, 0, 4)) == {plain.name, noisy.name,
                                                                control, sigma0}
    assert cells_of(looks.look_configs(spec, choices, 4, 8, decided)) == {plain.name, noisy.name,
                                                                          sigma0}
    with_secondary = spec_of(tmp_path, **{"decision.decided_cells_stop": True,
                                          "decision.secondary_seeds": 6})
    late = looks.look_configs(with_secondary, choices, 4, 8, decided)
    assert sorted((c["arm"], c["seed"]) for c in late if c["arm"] in (control, sigma0)) == [
        (control, 6), (control, 7), (sigma0, 6), (sigma0, 7)]  # seeds 2-7: the first 6
    both = looks.decided_before(looks.LookState([], {"looks": [
        {"rejected": [accuracy]}, {"rejected": [success]}]}), 2)
    assert cells_of(looks.look_configs(spec, choices, 4, 8, both)) == {sigma0}  # no test's
    plain_rule = spec_of(tmp_path)
    assert looks.look_configs(plain_rule, choices, 4, 8, decided) == \
        final_configs(plain_rule, choices, [6, 7, 8, 9])
    assert "stops at once too (decision.decided_cells_stop)" in "\n".join(power_lines(spec))
