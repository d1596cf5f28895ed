"""What a rerun may change in a started study (harness.study.saved_space): the description
always; the decision and tuning.final_seeds until the finals start (a decision declared from
the tuning outcomes, recorded with the choices it followed); nothing else."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from study_helpers import REPO

from harness.errors import HarnessError
from harness.study import saved_space
from harness.study.space import parse_space


def smoke_decided(**changes):
    data = yaml.safe_load((REPO / "search_spaces" / "smoke_decided.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return parse_space(data, REPO / "smoke_decided.yaml", build=False)


def started(tmp_path, spec):
    folder = tmp_path / spec.name
    saved_space.save(spec, str(folder))
    return folder


def test_the_same_file_changes_nothing(tmp_path):
    spec = smoke_decided()
    folder = started(tmp_path, spec)
    before = (folder / saved_space.SPACE_COPY).read_text()
    lines = []
    saved_space.amend(spec, str(folder), "f.yaml", lines.append)
    assert lines == [] and (folder / saved_space.SPACE_COPY).read_text() == before


def test_a_new_description_is_saved(tmp_path):
    folder = started(tmp_path, smoke_decided())
    lines = []
    saved_space.amend(smoke_decided(description="reworded"), str(folder), "f.yaml", lines.append)
    assert saved_space.read(str(folder), build=False).description == "reworded"
    assert lines == ["study 'smoke_decided': description changed since it started; saved in "
                     "harness_space.yaml"]


@pytest.mark.parametrize("changes, fields", [
    ({"epochs": 4}, "epochs"),
    ({"tuning": {"budget": 5}}, "tuning.budget"),
    ({"epochs": 4, "model": {"family": "dense", "depths": [6], "options": {"width": 16}}},
     "model.options, epochs"),
])
def test_a_change_to_what_the_trials_ran_is_refused_in_one_line(tmp_path, changes, fields):
    spec = smoke_decided()
    folder = started(tmp_path, spec)
    before = (folder / saved_space.SPACE_COPY).read_text()
    data = spec.model_dump(mode="json", exclude_unset=True)
    for key, value in changes.items():
        data[key] = {**data[key], **value} if key == "tuning" else value
    changed = parse_space(data, REPO / "f.yaml", build=False)
    with pytest.raises(HarnessError) as refused:
        saved_space.amend(changed, str(folder), "f.yaml", print)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"f.yaml: field {fields} differs from the study 'smoke_decided'")
    assert message.endswith("allowed changes: description, and decision or tuning.final_seeds "
                            "before the finals start; start over with --restart or give the "
                            "study a new name")
    assert (folder / saved_space.SPACE_COPY).read_text() == before


@pytest.mark.parametrize("as_uri", [False, True], ids=["folder", "storage-uri"])
def test_a_decision_declared_after_tuning_is_saved_with_the_choices_it_followed(tmp_path,
                                                                                as_uri):
    """The same on local disk and on a storage URI (file:// here; s3:// and gs:// go through
    the same pyarrow file system calls)."""
    undeclared = smoke_decided(decision=None)
    folder = tmp_path / undeclared.name
    where = f"file://{folder}" if as_uri else str(folder)
    saved_space.save(undeclared, where)
    assert (folder / saved_space.SPACE_COPY).is_file()
    choices = b'{"synthetic-dense6-Adam": {}}'
    (folder / "choices.json").write_bytes(choices)
    assert saved_space.declared(where) == saved_space.DECLARED_WITH_THE_FILE
    lines = []
    declared = smoke_decided()
    saved_space.amend(declared, where, "f.yaml", lines.append)

    assert saved_space.read(where, build=False) == declared
    sha = hashlib.sha256(choices).hexdigest()
    record = json.loads((folder / saved_space.DECLARED_FILE).read_text())
    assert record["declared"] == "after tuning, before the finals"
    assert record["choices_sha256"] == sha
    assert lines[0].startswith("study 'smoke_decided': decision declared after tuning, before "
                               f"the finals ({record['at']}, choices sha256 {sha[:12]})")
    assert lines[1] == ("study 'smoke_decided': tuning.final_seeds, decision changed since it "
                        "started; saved in harness_space.yaml")
    assert saved_space.declared(where) == (
        f"after tuning, before the finals, at {record['at']} (choices.json sha256 {sha})")

    saved_space.amend(undeclared, where, "f.yaml", lines.append)  # withdrawn: no record
    assert not (folder / saved_space.DECLARED_FILE).exists()
    (folder / "final-look1").mkdir()
    with pytest.raises(HarnessError, match="the finals of study 'smoke_decided' have started"):
        saved_space.amend(declared, where, "f.yaml", print)


@pytest.mark.parametrize("started_finals", ["looks.json", "final", "final-look1"])
def test_the_decision_cannot_change_once_a_final_trial_exists(tmp_path, started_finals):
    folder = started(tmp_path, smoke_decided(decision=None))
    (folder / started_finals).mkdir()
    with pytest.raises(HarnessError, match=r"^f\.yaml: field tuning\.final_seeds, decision: the "
                       r"finals of study 'smoke_decided' have started, and a declared decision "
                       r"cannot change once final data exist"):
        saved_space.amend(smoke_decided(), str(folder), "f.yaml", print)
    assert saved_space.read(str(folder), build=False).decision is None
    assert not (folder / saved_space.DECLARED_FILE).exists()


def test_no_saved_copy_no_check(tmp_path):
    saved_space.amend(smoke_decided(), str(tmp_path / "new"), "f.yaml", print)
    assert not (tmp_path / "new").exists()
    with pytest.raises(HarnessError, match="no study named 'x' under .*; studies there: none"):
        saved_space.load("x", str(tmp_path))
