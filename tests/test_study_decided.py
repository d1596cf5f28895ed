"""A decision-grade study end to end (slow): screened tuning, matched-learning-rate controls and
finals in two looks on a real embedded Ray and a real SQLite MLflow store, killed between the
looks and resumed by the same command without a duplicate run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from study_helpers import REPO, TINY_DATA, interrupt_when, trial_runs

pytestmark = pytest.mark.slow


def tiny_decided_space(tmp_path):
    data = yaml.safe_load((REPO / "search_spaces" / "smoke_decided.yaml").read_text())
    data.update(name="tiny_decided", dataset=dict(TINY_DATA), epochs=2,
                model={"family": "dense", "depths": [3]})
    data["decision"]["looks"] = [2, 4]
    for test in data["decision"]["tests"]:
        test["depths"] = [3]
    path = tmp_path / "tiny_decided.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_killed_between_looks_resumes_the_next_look_only(tmp_path):
    space = tiny_decided_space(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    study = tmp_path / "results" / "tiny_decided"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    command = [sys.executable, "-m", "harness.cli", "run", str(space), "--storage-path",
               str(tmp_path / "results"), "--max-concurrent", "2"]
    returncode, output = interrupt_when(command, env, tmp_path, "look 1 of 2 (2 seeds per arm)",
                                        600)
    assert returncode == 130, output
    final_lines = [line for line in output.splitlines() if "final seed" in line]
    assert not final_lines, final_lines  # the finals' progress names no result
    assert "best val_accuracy hidden until the declared looks" in output
    assert "resume with: harness run --resume tiny_decided" in output
    assert "what went wrong" not in output  # a deliberate Ctrl-C
    first = json.loads((study / "looks.json").read_text())
    assert len(first["looks"]) == 1 and not first["decision"]["stop"]
    assert (study / "outcomes-tune.json").exists() and (study / "outcomes-screen.json").exists()

    resumed = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "choices read from" in resumed.stdout and "look 2 of 2" in resumed.stdout
    assert "look 1 of 2" not in resumed.stdout  # the first look is not run again
    state = json.loads((study / "looks.json").read_text())
    assert state["looks"][0] == first["looks"][0] and len(state["looks"]) == 2
    assert state["decision"]["stop"] and state["decision"]["looks_taken"] == 2

    choices = json.loads((study / "choices.json").read_text())
    plain, noisy = "synthetic-dense3-Adam", "synthetic-dense3-L-Adam"
    controlled = choices[plain]["values"]["learning_rate"] != \
        choices[noisy]["values"]["learning_rate"]
    runs = trial_runs(uri, "tiny_decided")
    keys = Counter(r.data.tags["trial_key"] for r in runs)
    assert set(keys.values()) == {1}  # no run twice
    tune = [r for r in runs if r.data.tags["phase"] == "tune"]
    final = [r for r in runs if r.data.tags["phase"] == "final"]
    assert len(tune) == 2 * 6  # 4 points + 2 kept points on 1 screening seed, per arm
    assert sum(r.data.tags.get("stage") == "screen" for r in tune) == 4
    cells = Counter(r.data.tags["arm"] for r in final)
    expected = {plain: 4, noisy: 4}
    if controlled:
        expected |= {f"{noisy}[sigma=0]": 4, f"{noisy}[lr=Adam]": 4}
    assert cells == expected
    assert {int(r.data.params["seed"]) for r in final} == {2, 3, 4, 5}
    for run in final:
        assert run.data.tags["status"] in ("finished", "diverged")
        if "control" in run.data.tags:
            assert run.data.tags["control_of"] == noisy
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny_decided")
    (design,) = client.search_runs([experiment.experiment_id], "tags.run_kind = 'design'")
    recorded = json.loads(design.data.tags["looks"])
    assert [look["count"] for look in recorded["looks"]] == [2, 4]
    assert json.loads(design.data.tags["decision"])["looks"] == [2, 4]
    client.delete_run(design.info.run_id)  # as if stopped inside the last look's record
    again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(trial_runs(uri, "tiny_decided")) == len(runs)  # nothing trained again
    (design,) = client.search_runs([experiment.experiment_id], "tags.run_kind = 'design'")
    assert json.loads(design.data.tags["looks"]) == recorded

    # the analysis replays the looks from the runs and reaches the driver's verdict
    report = tmp_path / "analysis"
    analyzed = subprocess.run([sys.executable, "-m", "harness.cli", "analyze", "tiny_decided",
                               "--out", str(report)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
    assert analyzed.returncode == 0, analyzed.stdout + analyzed.stderr
    text = (report / "report.md").read_text()
    assert "declared with the study file, before any trial;" in text
    assert text.index("## Verdict: the declared tests (primary)") < text.index("## Tuning protocol")
    declared = pd.read_csv(report / "declared.csv")
    verdicts = state["decision"]["verdicts"]
    assert dict(zip(declared["hypothesis"], declared["verdict"])) == {
        name: v["verdict"] for name, v in verdicts.items()}
    last = state["looks"][-1]["results"]
    for row in declared.itertuples():
        assert row.p_value == pytest.approx(verdicts[row.hypothesis]["p_value"])
        assert row.seeds == last[row.hypothesis]["n"] == 4
    assert (report / "design" / "spec.json").is_file()
    redone = tmp_path / "again"
    from_files = subprocess.run([sys.executable, "-m", "harness.cli", "analyze", "--from",
                                 str(report), "--out", str(redone)], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
    assert from_files.returncode == 0, from_files.stdout + from_files.stderr
    assert (redone / "declared.csv").read_text() == (report / "declared.csv").read_text()


def test_noise_only_tunes_sigma_at_the_plain_choice_in_a_second_round(tmp_path):
    data = yaml.safe_load((REPO / "search_spaces" / "smoke_decided.yaml").read_text())
    data.update(name="tiny_noise", dataset=dict(TINY_DATA), epochs=2,
                model={"family": "dense", "depths": [3]})
    data["tuning"].update(langevin="noise_only", budget=3)
    for key in ("screen", "matched_lr_controls"):
        data["tuning"].pop(key)
    data.pop("decision")
    data["tuning"]["final_seeds"] = 2
    space = tmp_path / "tiny_noise.yaml"
    space.write_text(yaml.safe_dump(data))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(space),
                           "--storage-path", str(tmp_path / "results")],
                          env={**os.environ, "MLFLOW_TRACKING_URI": uri}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "phase tune-noise" in done.stdout
    choices = json.loads((tmp_path / "results" / "tiny_noise" / "choices.json").read_text())
    plain, noisy = choices["synthetic-dense3-Adam"], choices["synthetic-dense3-L-Adam"]
    assert noisy["values"]["learning_rate"] == plain["values"]["learning_rate"]
    runs = trial_runs(uri, "tiny_noise")
    noisy_tuning = [r for r in runs if r.data.tags["arm"] == "synthetic-dense3-L-Adam"
                    and r.data.tags["phase"] == "tune"]
    assert len(noisy_tuning) == 3 and len({r.data.params["sigma"] for r in noisy_tuning}) == 3
    assert {float(r.data.params["learning_rate"]) for r in noisy_tuning} == {
        plain["values"]["learning_rate"]}
    finals = Counter(r.data.tags["arm"] for r in runs if r.data.tags["phase"] == "final")
    assert finals == {"synthetic-dense3-Adam": 2, "synthetic-dense3-L-Adam": 2}


def test_a_decision_declared_from_the_tuning_outcomes_runs_the_finals_it_declares(tmp_path):
    """`--tuning-only` stops once the choices are saved and prints how often each arm trained;
    the file with a decision added then runs the finals, the declaration recorded with the
    sha256 of the choices it followed; any other change to the file is refused."""
    import hashlib

    data = yaml.safe_load(tiny_decided_space(tmp_path).read_text())
    decision = data.pop("decision")
    decision["looks"] = [2]
    space = tmp_path / "tiny_decided.yaml"
    space.write_text(yaml.safe_dump(data))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    study = tmp_path / "results" / "tiny_decided"

    def harness_run(*flags):
        return subprocess.run([sys.executable, "-m", "harness.cli", "run", str(space),
                               "--storage-path", str(tmp_path / "results"), *flags],
                              env={**os.environ, "MLFLOW_TRACKING_URI": uri}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)

    tuned = harness_run("--tuning-only")
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    assert "tuning outcomes (trained: val_accuracy above 0.2000 at the last epoch):" in \
        tuned.stdout
    for arm in ("synthetic-dense3-Adam", "synthetic-dense3-L-Adam"):
        assert f"  {arm}: " in tuned.stdout and "of 4 tuning points trained; the chosen point" \
            in tuned.stdout
    assert "tuning done (12 trials ended, 0 failed); the finals have not started" in tuned.stdout
    assert (study / "choices.json").is_file()
    assert not (study / "looks.json").exists() and not list(study.glob("final*"))
    assert {r.data.tags["phase"] for r in trial_runs(uri, "tiny_decided")} == {"tune"}

    space.write_text(yaml.safe_dump({**data, "epochs": 3, "decision": decision}))
    refused = harness_run()
    assert refused.returncode != 0
    assert "field epochs differs from the study 'tiny_decided' started" in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout

    space.write_text(yaml.safe_dump({**data, "decision": decision}))
    finals = harness_run()
    assert finals.returncode == 0, finals.stdout + finals.stderr
    assert "decision declared after tuning, before the finals" in finals.stdout
    assert "choices read from" in finals.stdout and "look 1 of 1" in finals.stdout
    runs = trial_runs(uri, "tiny_decided")
    assert Counter(r.data.tags["phase"] for r in runs)["tune"] == 12  # tuning not run again
    cells = Counter(r.data.tags["arm"] for r in runs if r.data.tags["phase"] == "final")
    assert cells["synthetic-dense3-Adam"] == cells["synthetic-dense3-L-Adam"] == 2
    sha = hashlib.sha256((study / "choices.json").read_bytes()).hexdigest()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny_decided")
    (design,) = client.search_runs([experiment.experiment_id], "tags.run_kind = 'design'")
    assert design.data.tags["decision_declared"].startswith("after tuning, before the finals, at")
    assert design.data.tags["decision_declared"].endswith(f"(choices.json sha256 {sha})")
    assert json.loads(design.data.tags["decision"])["looks"] == [2]

    # the report says when the decision was declared, from the store and from its export
    for source in (["tiny_decided"], ["--from", str(tmp_path / "report")]):
        out = tmp_path / ("again" if source[0] == "--from" else "report")
        analyzed = subprocess.run([sys.executable, "-m", "harness.cli", "analyze", *source,
                                   "--out", str(out)], env={**os.environ,
                                                            "MLFLOW_TRACKING_URI": uri},
                                  cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert analyzed.returncode == 0, analyzed.stdout + analyzed.stderr
        assert "declared after tuning, before the finals, at " in \
            (out / "report.md").read_text()
        assert (out / "design" / "declared.txt").read_text() == \
            design.data.tags["decision_declared"]


def test_given_choices_run_the_declared_finals_without_tuning_and_analyze(tmp_path):
    """A study whose choices are given (tuning.chosen, e.g. a longer rerun of another study's
    choices on new seeds): no tuning trial, the finals in looks, the verdict from the report."""
    data = yaml.safe_load(tiny_decided_space(tmp_path).read_text())
    for key in ("screen", "matched_lr_controls"):
        data["tuning"].pop(key)
    data["tuning"].update(chosen_from="a test", chosen={
        "synthetic-dense3-Adam": {"learning_rate": 0.01},
        "synthetic-dense3-L-Adam": {"learning_rate": 0.01, "sigma": 1e-3}})
    data["decision"]["looks"] = [2]
    space = tmp_path / "tiny_given.yaml"
    space.write_text(yaml.safe_dump({**data, "name": "tiny_given"}))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(space),
                           "--storage-path", str(tmp_path / "results")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no tuning, the choices are given (tuning.chosen, from a test)" in done.stdout
    assert "  synthetic-dense3-L-Adam: learning_rate=0.01, sigma=0.001 (given)" in done.stdout
    runs = trial_runs(uri, "tiny_given")
    assert {r.data.tags["phase"] for r in runs} == {"final"}
    assert sorted((r.data.tags["arm"], float(r.data.params["learning_rate"]),
                   int(r.data.params["seed"])) for r in runs) == [
        (arm, 0.01, seed) for arm in ("synthetic-dense3-Adam", "synthetic-dense3-L-Adam")
        for seed in (1, 2)]  # the first seeds after the (unused) tuning seed 0
    report = tmp_path / "analysis"
    analyzed = subprocess.run([sys.executable, "-m", "harness.cli", "analyze", "tiny_given",
                               "--out", str(report)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
    assert analyzed.returncode == 0, analyzed.stdout + analyzed.stderr
    declared = pd.read_csv(report / "declared.csv")
    assert len(declared) == 2 and set(declared["seeds"]) == {2}
    assert "## Verdict: the declared tests (primary)" in (report / "report.md").read_text()
