"""A tuned study end to end (slow): two phases on a real embedded Ray, recorded in a real SQLite
MLflow store, killed between the phases and resumed by the same command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient
from study_helpers import REPO, TINY_DATA, epoch_steps, interrupt_when, trial_runs

from harness.study.run_schema import EPOCH_METRICS
from harness.study.space import load_space
from harness.study.tuning import choices_to_json, choose

pytestmark = pytest.mark.slow


def tiny_tuned_space(tmp_path):
    data = yaml.safe_load((REPO / "search_spaces" / "smoke_tuned.yaml").read_text())
    data.update(name="tiny_tuned", dataset=dict(TINY_DATA), epochs=2,
                model={"family": "dense", "depths": [3]})
    data["tuning"].update(budget=4, final_seeds=2)
    path = tmp_path / "tiny_tuned.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_killed_between_phases_resumes_without_losing_or_repeating_anything(tmp_path):
    space = tiny_tuned_space(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    results = tmp_path / "results"
    choices_file = results / "tiny_tuned" / "choices.json"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    command = [sys.executable, "-m", "harness.cli", "run", str(space), "--storage-path",
               str(results), "--max-concurrent", "1"]
    returncode, output = interrupt_when(command, env, tmp_path, choices_file, timeout=400)
    assert returncode == 130, output  # stopped as the final phase starts
    choices = json.loads(choices_file.read_text())
    tuned_before = {r.data.tags["trial_key"]: r.info.end_time for r in trial_runs(uri, "tiny_tuned")
                    if r.data.tags["phase"] == "tune"}
    assert len(tuned_before) == 8

    resumed = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "choices read from" in resumed.stdout
    assert json.loads(choices_file.read_text()) == choices  # the choice is not made again

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny_tuned")
    arm_runs = {r.data.tags["arm"]: r for r in client.search_runs(
        [experiment.experiment_id], "tags.run_kind = 'arm'")}
    assert sorted(arm_runs) == ["synthetic-dense3-Adam", "synthetic-dense3-L-Adam"]
    runs = trial_runs(uri, "tiny_tuned")
    tune = [r for r in runs if r.data.tags["phase"] == "tune"]
    final = [r for r in runs if r.data.tags["phase"] == "final"]
    assert len(tune) == 8 and len(final) == 4  # nothing duplicated
    for run in tune:  # tuning trials ended before the kill: not run again
        assert run.info.end_time == tuned_before[run.data.tags["trial_key"]]
        assert "test_accuracy" not in run.data.metrics  # tuning sees validation only
    for run in runs:
        tags, params = run.data.tags, run.data.params
        arm = arm_runs[tags["arm"]]
        assert tags["mlflow.parentRunId"] == arm.info.run_id
        assert run.info.status == "FINISHED" and tags["status"] == "finished"
        assert epoch_steps(uri, run.info.run_id) == {m: [1, 2] for m in EPOCH_METRICS}
        assert params["base_optimizer"] == "adam" and params["depth"] == "3"
        assert params["phase"] == tags["phase"]
        assert float(params["sigma"]) == 0.0 if tags["variant"] == "baseline" else \
            float(params["sigma"]) > 0
    for run in final:
        chosen = choices[run.data.tags["arm"]]
        assert int(run.data.params["point"]) == chosen["point"]
        assert float(run.data.params["learning_rate"]) == chosen["values"]["learning_rate"]
        assert int(run.data.params["seed"]) in (1, 2)
        assert "test_accuracy" in run.data.metrics
    for name, arm in arm_runs.items():
        assert arm.info.status == "FINISHED"
        assert arm.data.tags["chosen.point"] == str(choices[name]["point"])
        assert arm.data.tags["budget"] == "4"
        assert arm.data.params["range.learning_rate.low"] == "0.0001"
        assert json.loads(arm.data.params["final_seeds"]) == [1, 2]
    # the choice made from Tune's results is the one MLflow's records of the tuning trials give
    spec = load_space(space)
    outcomes = {r.data.tags["trial_key"]: (r.data.tags["status"], [
        m.value for m in sorted(client.get_metric_history(r.info.run_id, "val_accuracy"),
                                key=lambda m: m.step)]) for r in tune}
    assert json.loads(choices_to_json(choose(spec, outcomes))) == choices
    # twins: the same learning-rate draws and seeds in the tuning phase
    points = {}
    for run in tune:
        points.setdefault(run.data.params["point"], set()).add(
            (run.data.params["learning_rate"], run.data.params["seed"]))
    assert all(len(pairs) == 1 for pairs in points.values()) and len(points) == 4
