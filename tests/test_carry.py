"""A study's state carried to a new store (`harness export` → `harness run FILE --state-from
DIR`): exactly the files that hold its progress between phases are copied, Tune's folders and the
log are not, and the refusals (no state there, a store that already holds the study, flags that
start nothing new) are one line each."""

from __future__ import annotations

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.study.carry import STATE_FOLDER, adopt_state, save_state, state_names

STATE = {"harness_space.yaml": "name: s\n", "choices.json": '{"a": 1}',
         "outcomes-tune.json": "{}", "outcomes-screen-noise.json": "{}", "looks.json": "[]",
         "declared.json": "{}"}


@pytest.fixture
def study_dir(tmp_path):
    folder = tmp_path / "results" / "s"
    (folder / "tune").mkdir(parents=True)
    (folder / "tune" / "experiment_state-1.json").write_text("{}")
    (folder / "harness.log").write_text("log")
    (folder / "outcomes-tune.json.part").write_text("half")
    for name, text in STATE.items():
        (folder / name).write_text(text)
    return folder


def test_the_state_files_and_nothing_else_travel(study_dir, tmp_path):
    export = tmp_path / "export"
    assert save_state(str(study_dir), str(export / STATE_FOLDER)) == sorted(STATE)
    new = tmp_path / "new" / "s"
    assert adopt_state(str(export), str(new)) == sorted(STATE)  # the export folder, or ...
    assert {p.name: p.read_text() for p in new.iterdir()} == STATE
    newer = tmp_path / "newer" / "s"
    adopt_state(str(export / STATE_FOLDER), str(newer))  # ... its state/ folder itself
    assert state_names(str(newer)) == sorted(STATE)


def test_refusals_are_one_line(study_dir, tmp_path):
    with pytest.raises(HarnessError, match="holds no study"):
        save_state(str(tmp_path / "nowhere"), str(tmp_path / "out"))
    with pytest.raises(HarnessError, match=r"--state-from .*: no saved study state there"):
        adopt_state(str(tmp_path), str(tmp_path / "new"))
    with pytest.raises(HarnessError, match="already holds a study"):
        adopt_state(str(study_dir), str(study_dir))


@pytest.mark.parametrize("flag", [["--resume", "s"], ["--restart"], ["--dry-run"]])
def test_state_from_with_a_flag_that_starts_nothing_new_is_refused(flag, tmp_path, capsys):
    space = [] if flag[0] == "--resume" else ["search_spaces/smoke.yaml"]
    assert main(["run", *space, *flag, "--state-from", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--state-from starts the study of a search-space file" in err


def test_ended_trials_become_the_outcomes_and_records_of_their_phase(tmp_path):
    from harness.study.carry import final_records, read_ended, tuning_outcomes, write_ended

    ended = {"k1": {"status": "finished", "values": [0.5, 0.7], "test_accuracy": 0.71},
             "k3": {"status": "diverged", "values": [0.1], "test_accuracy": None}}
    write_ended(str(tmp_path), ended)
    assert read_ended(str(tmp_path)) == ended and read_ended(str(tmp_path / "none")) == {}
    configs = [{"trial_key": k, "arm": f"arm-{k}", "seed": i} for i, k in enumerate(["k1", "k2",
                                                                                     "k3"])]
    assert tuning_outcomes(ended, configs) == {"k1": ("finished", [0.5, 0.7]),
                                               "k3": ("diverged", [0.1])}
    assert final_records(ended, configs[1:]) == [
        {"trial_key": "k3", "arm": "arm-k3", "seed": 2, "status": "diverged",
         "test_accuracy": None}]


def test_a_packed_phase_packs_only_the_trials_that_had_not_ended(tmp_path, monkeypatch):
    """Carried trials are not run again: the packs Tune gets hold the other trials alone."""
    from study_helpers import smoke_space

    from harness.study import runner
    from harness.study.packs import member_configs
    from harness.study.space import trial_configs

    _, spec = smoke_space(tmp_path, seeds=[0, 1, 2, 3], packing=2,
                          model={"family": "dense", "depths": [2]})
    configs = trial_configs(spec)
    ended = {c["trial_key"]: {"status": "finished", "values": [0.5], "test_accuracy": 0.5}
             for c in configs[::2]}
    given = []

    def new_tuner(spec, runs, *args):
        given.extend(runs)
        raise KeyboardInterrupt  # stop before Ray: the packs are what is checked

    monkeypatch.setattr(runner, "_new_tuner", new_tuner)
    with pytest.raises(KeyboardInterrupt):
        runner._fit(spec, configs, str(tmp_path / "results"), "phase", "sqlite:///none.db", 1,
                    print, "phase", ended)
    members = [m["trial_key"] for pack in given for m in member_configs(pack)]
    assert sorted(members) == sorted(c["trial_key"] for c in configs[1::2])
