"""The fair-comparison protocol's pure parts: schema, sampler, twins, budgets, selection, dry run.

No Ray here (the two-phase run itself: tests/test_study_tuned.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.errors import HarnessError
from harness.study.space import load_space, parse_space
from harness.study.tuning import (
    arms,
    choices_from_json,
    choices_to_json,
    choose,
    final_configs,
    to_value,
    tune_configs,
    unit_points,
)

REPO = Path(__file__).resolve().parent.parent
SMOKE_TUNED = REPO / "search_spaces" / "smoke_tuned.yaml"


def tuned(tmp_path: Path, **changes) -> tuple[Path, dict]:
    """smoke_tuned.yaml with `changes` applied (None deletes a key; "tuning.x" edits the block)."""
    data = yaml.safe_load(SMOKE_TUNED.read_text())
    for key, value in changes.items():
        owner, name = (data["tuning"], key[7:]) if key.startswith("tuning.") else (data, key)
        if value is None:
            owner.pop(name, None)
        else:
            owner[name] = value
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, data


def spec_of(tmp_path, **changes):
    path, data = tuned(tmp_path, **changes)
    return parse_space(data, path)


GIVEN = {"synthetic-dense6-Adam": {"learning_rate": 1e-3},
         "synthetic-dense6-L-Adam": {"learning_rate": 1e-3, "sigma": 1e-4}}
THREE_TWINS = [{"base": "adam"}, {"base": "adam", "sigma": "tune"},
               {"base": "adam", "sigma": "tune", "layer_fraction": 0.3}]


def test_every_arm_gets_exactly_the_budget(tmp_path):
    spec = spec_of(tmp_path, optimizers=THREE_TWINS, model={"family": "dense", "depths": [3, 6]},
                   **{"tuning.budget": 5})
    configs = tune_configs(spec)
    names = [a.name for a in arms(spec)]
    assert len(names) == 6 and len(set(names)) == 6
    assert {n: sum(c["arm"] == n for c in configs) for n in names} == dict.fromkeys(names, 5)
    assert sorted(c["point"] for c in configs if c["arm"] == names[0]) == [0, 1, 2, 3, 4]
    assert len({c["trial_key"] for c in configs}) == len(configs)
    assert all(c["phase"] == "tune" for c in configs)


def test_twins_share_learning_rates_and_seeds_and_only_langevin_arms_get_sigma(tmp_path):
    spec = spec_of(tmp_path, optimizers=THREE_TWINS, model={"family": "dense", "depths": [3, 6]},
                   **{"tuning.budget": 6, "tuning.seeds": [4, 7]})
    configs = tune_configs(spec)
    by_arm = {}
    for c in configs:
        by_arm.setdefault((c["depth"], c["variant"]), []).append(c)
    for depth in (3, 6):
        plain, full, layer = (by_arm[depth, v] for v in ("baseline", "langevin", "layer-langevin"))
        for twins in zip(plain, full, layer):
            assert len({c["learning_rate"] for c in twins}) == 1
            assert len({c["seed"] for c in twins}) == 1
            assert len({c["point"] for c in twins}) == 1
        assert [c["seed"] for c in plain] == [4, 7, 4, 7, 4, 7]  # seeds cycle over points
        assert all(c["sigma"] == 0.0 for c in plain)
        assert all(1e-5 <= c["sigma"] < 1e-2 for c in full + layer)
        assert [c["sigma"] for c in full] == [c["sigma"] for c in layer]
        assert len({c["learning_rate"] for c in plain}) == 6  # six distinct draws
        assert all(c["layer_fraction"] == 0.3 for c in layer)


def test_sampler_is_deterministic_and_seeded(tmp_path):
    for sampler in ("sobol", "halton", "random"):
        spec = spec_of(tmp_path, **{"tuning.sampler": sampler, "tuning.budget": 8})
        again = spec_of(tmp_path, **{"tuning.sampler": sampler, "tuning.budget": 8})
        other = spec_of(tmp_path, **{"tuning.sampler": sampler, "tuning.budget": 8,
                                     "tuning.seed": 1})
        assert tune_configs(spec) == tune_configs(again)
        lrs = [c["learning_rate"] for c in tune_configs(spec)]
        assert lrs != [c["learning_rate"] for c in tune_configs(other)]
        assert all(1e-4 <= lr < 1e-1 for lr in lrs)
    points = unit_points(spec_of(tmp_path, **{"tuning.budget": 8}).tuning, 2)
    assert points.shape == (8, 2) and ((points >= 0) & (points < 1)).all()
    # scrambled Sobol puts exactly one of 8 points in each eighth of every axis
    assert sorted((points * 8).astype(int)[:, 0].tolist()) == list(range(8))


def test_values_map_onto_the_range_in_log_or_linear_space():
    assert to_value(0.0, 1e-4, 1e-1, log=True) == 1e-4
    assert to_value(0.5, 1e-4, 1e-2, log=True) == pytest.approx(1e-3)
    assert to_value(0.5, 0.0, 2.0, log=False) == 1.0
    assert to_value(0.123456789, 0.0, 1.0, log=False) == 0.1235  # 4 significant digits


def test_other_hyper_parameters_and_per_base_ranges(tmp_path):
    spec = spec_of(
        tmp_path,
        optimizers=[{"base": "adam"}, {"base": "adam", "sigma": "tune"}, {"base": "adadelta"}],
        **{"tuning.space": {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
                            "sigma": {"low": 1e-5, "high": 1e-3, "log": True},
                            "beta_1": {"low": 0.8, "high": 0.99}},
           "tuning.space_by_base": {"adadelta": {
               "learning_rate": {"low": 0.1, "high": 10.0, "log": True}}}})
    configs = tune_configs(spec)
    adam = [c for c in configs if c["optimizer"] == "Adam"]
    ladam = [c for c in configs if c["optimizer"] == "L-Adam"]
    adadelta = [c for c in configs if c["optimizer"] == "Adadelta"]
    assert all(0.8 <= c["hyper"]["beta_1"] < 0.99 for c in adam)
    assert [c["hyper"] for c in adam] == [c["hyper"] for c in ladam]  # twins share beta_1
    assert all(0.1 <= c["learning_rate"] < 10 for c in adadelta)
    assert all(1e-4 <= c["learning_rate"] < 1e-2 for c in adam)


@pytest.mark.parametrize("changes, message", [
    ({"tuning.seeds": [0, 1], "tuning.final_seeds": [1, 5]},
     r"field 'tuning.final_seeds': \[1\] also in tuning.seeds"),
    ({"tuning.budget": 0}, r"field 'tuning.budget'"),
    ({"tuning.sampler": "grid"}, r"field 'tuning.sampler'.*'sobol', 'halton' or 'random'"),
    ({"tuning.metric": "val_loss"}, r"field 'tuning.mode': 'max' with metric val_loss.*min"),
    ({"tuning.final_seeds": 0}, r"field 'tuning.final_seeds'"),
    ({"tuning.space": {"learning_rate": {"low": 1e-2, "high": 1e-4, "log": True}}},
     r"field 'tuning.space.learning_rate'.*must be below high"),
    ({"tuning.space": {"learning_rate": {"low": 0.0, "high": 1e-1, "log": True}}},
     r"field 'tuning.space.learning_rate'.*log: true needs low > 0"),
    ({"tuning.space": {"learning_rate": {"low": 1e-4, "high": 1e-1}, "momentum": {
        "low": 0.1, "high": 0.9}}},
     r"field 'tuning.space': unknown hyper-parameter\(s\) \['momentum'\] for adam; allowed"),
    ({"optimizers": [{"base": "adam", "learning_rate": 1e-3}]},
     r"field 'optimizers.0.learning_rate': tuned by tuning.space"),
    ({"tuning.space": {"learning_rate": {"low": 1e-4, "high": 1e-1, "log": True}}},
     r"field 'optimizers.1.sigma': 'tune' needs a sigma range"),
    ({"seeds": 3}, r"field 'seeds': not used in a tuned study"),
    ({"tuning.space": {"learning_rate": {"low": 1e-4, "high": 1e-1}, "sigma": {
        "low": 1e-5, "high": 1e-3}, "beta_1": {"low": 0.5, "high": 1.5}}},
     r"field 'tuning.space.beta_1' \(high end, for optimizers.0\): .*beta_1"),
    ({"tuning": None, "optimizers": [{"base": "adam", "learning_rate": 1e-3, "sigma": "tune"}]},
     r"field 'optimizers.0.sigma': 'tune' needs a tuning block"),
    ({"tuning": None, "optimizers": [{"base": "adam"}]},
     r"field 'optimizers.0.learning_rate': missing"),
    ({"tuning.chosen": GIVEN}, r"field 'tuning.chosen_from': required with tuning.chosen"),
    ({"tuning.chosen": {"synthetic-dense6-Adam": {"learning_rate": 1e-3}},
      "tuning.chosen_from": "a study"},
     r"field 'tuning.chosen': no setting for \['synthetic-dense6-L-Adam'\]; allowed: exactly "
     r"the arms \['synthetic-dense6-Adam', 'synthetic-dense6-L-Adam'\]"),
    ({"tuning.chosen": {**GIVEN, "synthetic-dense7-Adam": {"learning_rate": 1e-3}},
      "tuning.chosen_from": "a study"},
     r"field 'tuning.chosen': unknown arm\(s\) \['synthetic-dense7-Adam'\]"),
    ({"tuning.chosen": {**GIVEN, "synthetic-dense6-Adam": {"learning_rate": 1e-3, "sigma": 0.1}},
      "tuning.chosen_from": "a study"},
     r"field 'tuning.chosen.synthetic-dense6-Adam': gives \['learning_rate', 'sigma'\]; "
     r"allowed: exactly \['learning_rate'\]"),
    ({"tuning.chosen": GIVEN, "tuning.chosen_from": "a study",
      "tuning.screen": {"top": 2, "seeds": 2}}, r"field 'tuning.screen': nothing is tuned"),
])
def test_bad_tuning_blocks_are_refused_with_one_line(tmp_path, changes, message, capsys):
    path, data = tuned(tmp_path, **changes)
    with pytest.raises(HarnessError, match=message) as error:
        parse_space(data, path)
    assert "\n" not in str(error.value)
    # the run itself: a value only the optimizer's constructor refuses (beta_1 = 1.5) is checked
    # when the study starts, before Ray; a dry run checks what needs no Keras
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def outcome(status, *history):
    return (status, list(history))


def test_selection_best_last_epoch_ties_to_the_earliest_point(tmp_path):
    spec = spec_of(tmp_path, optimizers=[{"base": "adam"}], **{"tuning.budget": 4})
    keys = [c["trial_key"] for c in tune_configs(spec)]
    outcomes = {keys[0]: outcome("finished", 0.9, 0.5),   # best epoch high, last low
                keys[1]: outcome("finished", 0.1, 0.7),
                keys[2]: outcome("finished", 0.2, 0.7),   # tie with point 1: point 1 wins
                keys[3]: outcome("diverged", 0.99, float("nan"))}
    (choice,) = choose(spec, outcomes).values()
    assert (choice.point, choice.score, choice.trial_key) == (1, 0.7, keys[1])
    assert choice.values == {"learning_rate": tune_configs(spec)[1]["learning_rate"]}

    best = spec_of(tmp_path, optimizers=[{"base": "adam"}],
                   **{"tuning.budget": 4, "tuning.score_epoch": "best"})
    (choice,) = choose(best, outcomes).values()
    assert (choice.point, choice.score) == (0, 0.9)  # the diverged 0.99 never counts


def test_selection_by_loss_picks_the_minimum_and_failures_rank_last(tmp_path):
    spec = spec_of(tmp_path, optimizers=[{"base": "adam"}],
                   **{"tuning.budget": 4, "tuning.metric": "val_loss", "tuning.mode": "min"})
    keys = [c["trial_key"] for c in tune_configs(spec)]
    outcomes = {keys[0]: outcome("finished", 2.0, 1.5),
                keys[1]: outcome("failed"),
                keys[2]: outcome("finished", 0.3, 0.4)}  # keys[3] missing: counts as failed
    (choice,) = choose(spec, outcomes).values()
    assert (choice.point, choice.score) == (2, 0.4)


def test_an_arm_whose_trials_all_failed_still_gets_a_deterministic_choice(tmp_path):
    spec = spec_of(tmp_path, optimizers=[{"base": "adam"}], **{"tuning.budget": 3})
    (choice,) = choose(spec, {}).values()
    assert choice.point == 0 and math.isnan(choice.score) and not choice.trained
    again = choices_from_json(choices_to_json({choice.arm: choice}))[choice.arm]
    assert again.point == 0 and math.isnan(again.score)


def test_trained_counts_say_how_often_each_arm_and_its_chosen_point_trained(tmp_path):
    """The table a decision is declared from after tuning: a trial trained when it finished with
    its last-epoch accuracy above the threshold (a diverged one never, whatever it reached)."""
    from harness.study.tuning import failed_score, screen_configs, trained_lines

    spec = spec_of(tmp_path, optimizers=[{"base": "adam"}],
                   **{"tuning.budget": 4, "tuning.screen": {"top": 2, "seeds": 3}})
    stage_one = tune_configs(spec)
    keys = [c["trial_key"] for c in stage_one]
    outcomes = {keys[0]: outcome("finished", 0.9, 0.95),
                keys[1]: outcome("finished", 0.9, 0.15),     # trained, then fell to chance
                keys[2]: outcome("diverged", 0.99, float("nan")),
                keys[3]: outcome("finished", 0.3, 0.6)}
    screened = screen_configs(spec, stage_one, outcomes, failed_score(spec))
    assert sorted({c["point"] for c in screened}) == [0, 3]
    by_point = {p: [c["trial_key"] for c in screened if c["point"] == p] for p in (0, 3)}
    outcomes |= {by_point[0][0]: outcome("finished", 0.5, 0.2),   # 0.2 is not above 0.2
                 by_point[0][1]: outcome("finished", 0.5, 0.21),
                 by_point[3][0]: outcome("finished", 0.7, 0.7),
                 by_point[3][1]: outcome("finished", 0.7, 0.7)}
    choices = choose(spec, outcomes, stage_one, screened)
    (name,) = choices
    assert choices[name].point == 3  # mean 0.667 beats 0.453
    assert trained_lines(spec, stage_one, screened, outcomes, choices, 0.2) == [
        f"  {name}: 2 of 4 tuning points trained; the chosen point 3 on 3 of 3 seeds"]
    assert trained_lines(spec, stage_one, screened, outcomes, choices, 0.65) == [
        f"  {name}: 1 of 4 tuning points trained; the chosen point 3 on 2 of 3 seeds"]
    by_loss = spec_of(tmp_path, optimizers=[{"base": "adam"}],
                      **{"tuning.metric": "val_loss", "tuning.mode": "min"})
    assert trained_lines(by_loss, stage_one, screened, outcomes, choices, 0.2) == []


def test_finals_rerun_each_arms_choice_on_the_fresh_seeds(tmp_path):
    spec = spec_of(tmp_path, **{"tuning.final_seeds": 4, "tuning.seeds": [0, 2]})
    assert spec.tuning.final_seed_list == [1, 3, 4, 5]
    configs = tune_configs(spec)
    outcomes = {c["trial_key"]: outcome("finished", c["point"] / 10) for c in configs}
    choices = choose(spec, outcomes)  # the last point scores best in every arm
    finals = final_configs(spec, choices)
    assert len(finals) == 2 * 4
    for config in finals:
        chosen = next(c for c in configs if c["trial_key"] == choices[config["arm"]].trial_key)
        assert config["phase"] == "final" and config["point"] == 3
        assert (config["learning_rate"], config["sigma"]) == (chosen["learning_rate"],
                                                               chosen["sigma"])
    assert sorted(c["seed"] for c in finals) == [1, 1, 3, 3, 4, 4, 5, 5]
    listed = spec_of(tmp_path, **{"tuning.final_seeds": [10, 11]})
    assert listed.tuning.final_seed_list == [10, 11]


def test_dry_run_prints_both_phases_identically_twice(capsys):
    assert main(["run", str(SMOKE_TUNED), "--dry-run"]) == 0
    first = capsys.readouterr().out
    assert main(["run", str(SMOKE_TUNED), "--dry-run"]) == 0
    assert capsys.readouterr().out == first
    spec = load_space(SMOKE_TUNED)
    assert "8 tuning trials" in first and "6 final trials" in first
    assert "phase final" in first and "final seeds [1, 2, 3]" in first
    for config in tune_configs(spec):
        assert config["trial_key"] in first


def test_given_choices_skip_tuning_and_their_finals_run_the_given_settings(tmp_path, capsys):
    """`tuning.chosen`: no tuning trial; the finals run each arm's given setting, and a
    noise_at_plain_lr test needs no controls when every twin was given one learning rate."""
    from harness.study.tuning import GIVEN_POINT, given_choices

    decision = {"looks": [2, 3], "tests": [{
        "endpoint": "accuracy", "test": "sign_flip", "comparison": "noise_at_plain_lr",
        "depths": [6], "effect": {"baseline_success": 0.6, "langevin_success": 0.95}}]}
    path, data = tuned(tmp_path, **{"tuning.chosen": GIVEN, "tuning.chosen_from": "study x",
                                    "decision": decision, "tuning.final_seeds": None})
    spec = parse_space(data, path, build=False)
    assert spec.tuning.trials_per_arm == 0
    choices = given_choices(spec)
    assert {name: (c.point, c.values) for name, c in choices.items()} == {
        name: (GIVEN_POINT, values) for name, values in GIVEN.items()}
    finals = final_configs(spec, choices)
    assert sorted((c["arm"], c["learning_rate"], c["sigma"], c["seed"]) for c in finals) == sorted(
        (f"synthetic-dense6-{name}", 1e-3, sigma, seed) for name, sigma in (("Adam", 0.0),
                                                                           ("L-Adam", 1e-4))
        for seed in (1, 2, 3))
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("study 'smoke_tuned' (choices given): 2 arms, no tuning trial (their "
                          "settings come from study x); 6 final trials on seeds [1, 2, 3] (at "
                          "most: looks stop when decided)\n"
                          "  synthetic-dense6-Adam: learning_rate=0.001\n"
                          "  synthetic-dense6-L-Adam: learning_rate=0.001, sigma=0.0001\n")
    assert "phase tune" not in out and "matched-lr controls" not in out
    assert "power " in out

    unmatched = {**GIVEN, "synthetic-dense6-L-Adam": {"learning_rate": 2e-3, "sigma": 1e-4}}
    path, data = tuned(tmp_path, **{"tuning.chosen": unmatched, "tuning.chosen_from": "x",
                                    "decision": decision, "tuning.final_seeds": None})
    with pytest.raises(HarnessError, match=r"noise_at_plain_lr needs the twins at one learning "
                       "rate"):
        parse_space(data, path, build=False)
