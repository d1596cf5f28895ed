"""The MLflow recorder on its own: one run per trial, one value per epoch, the status and the
provenance of the latest restore, and the clean-up of interrupted and discarded studies.

The recorder's Tune hooks are called directly, in the order Tune's driver calls them, with the
results a trial reports (plain dicts) and a small stand-in for Tune's `Trial` (the recorder reads
only `trial.config["trial"]` and `trial.error_msg`). The store is a real SQLite MLflow store in
`tmp_path` (one store for the module, one experiment per test: creating a store takes seconds);
no Ray is started.
"""

from __future__ import annotations

import math
import pickle
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from study_helpers import REPO, epoch_steps, smoke_space, trial_runs

from harness.study.run_schema import EPOCH_METRICS, TAG_ARM, TAG_PARENT_RUN, TAG_PHASE
from harness.study.space import flatten, parse_space, trial_configs
from harness.study.tracking import (
    MLflowRecorder,
    close_running_runs,
    discard_trial_runs,
    ensure_arm_runs,
    finished_trial_keys,
)
from harness.study.tuning import arms, tune_configs


@dataclass
class FakeTrial:
    """What the recorder reads of Tune's `Trial`."""

    config: dict
    error_msg: str | None = None


def epoch_result(epoch: int, value: float, **extra) -> dict:
    """A result as the trial reports it: every per-epoch metric set to `value` (+ `extra`)."""
    return {"epoch": epoch, **{name: value for name in EPOCH_METRICS}, **extra}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@dataclass
class Study:
    """This test's experiment in the module's store."""

    uri: str
    name: str
    recorders: list = field(default_factory=list)  # flushed before the store is read

    def recorder(self) -> MLflowRecorder:
        return self.track(MLflowRecorder(self.uri, self.name, "study"))

    def track(self, recorder: MLflowRecorder) -> MLflowRecorder:
        self.recorders.append(recorder)
        return recorder

    def runs(self) -> list:
        for recorder in self.recorders:
            recorder.flush()
        return trial_runs(self.uri, self.name)

    def history(self, run_id: str, metric: str = "train_loss") -> list[tuple[int, float]]:
        self.runs()
        return [(m.step, m.value) for m in MlflowClient(self.uri).get_metric_history(run_id, metric)]


@pytest.fixture
def study(store, request):
    return Study(store, request.node.name)


@pytest.fixture
def trials(tmp_path, study):
    """Two trials of a tiny study (one optimizer, seeds 0 and 1)."""
    _, spec = smoke_space(tmp_path, name=study.name, seeds=[0, 1],
                          model={"family": "dense", "depths": [2]},
                          optimizers=[{"base": "adam", "learning_rate": 1.0e-3}])
    return [FakeTrial({"trial": config}) for config in trial_configs(spec)]


def test_a_re_reported_epoch_keeps_its_first_value(study, trials):
    """Epochs 1, 2, 2 again: steps [1, 2], the first value of epoch 2 stays."""
    trial = trials[0]
    rec = study.recorder()
    rec.on_trial_start(0, [], trial)
    for result in (epoch_result(1, 1.0), epoch_result(2, 2.0), epoch_result(2, 99.0)):
        rec.on_trial_result(0, [], trial, result)
    (run,) = study.runs()
    assert epoch_steps(study.uri, run.info.run_id) == {m: [1, 2] for m in EPOCH_METRICS}
    for name in EPOCH_METRICS:
        assert study.history(run.info.run_id, name) == [(1, 1.0), (2, 2.0)]

    # a driver restored from Tune's saved state gets the recorder back from a pickle: it finds
    # the run by its trial_key and the last logged epoch in the store
    restored = study.track(pickle.loads(pickle.dumps(rec)))
    for result in (epoch_result(2, 77.0), epoch_result(3, 3.0)):
        restored.on_trial_result(0, [], trial, result)
    (again,) = study.runs()
    assert again.info.run_id == run.info.run_id
    assert study.history(run.info.run_id) == [(1, 1.0), (2, 2.0), (3, 3.0)]


def test_provenance_tags_follow_the_latest_restore(study, trials):
    """A trial restored from an older checkpoint than its last logged epoch re-reports epochs;
    the metrics keep their first values but the tags say where and from which epoch it resumed."""
    trial = trials[0]
    rec = study.recorder()
    rec.on_trial_start(0, [], trial)
    first = dict(node_id="node-a", devices="CPU", replicas=1, resumed_from_epoch=0)
    rec.on_trial_result(0, [], trial, epoch_result(1, 1.0, **first))
    rec.on_trial_result(0, [], trial, epoch_result(2, 2.0))
    rec.on_trial_result(0, [], trial, epoch_result(3, 3.0))
    (run,) = study.runs()
    assert (run.data.tags["node_id"], run.data.tags["resumed_from_epoch"]) == ("node-a", "0")

    # node a died; Tune restored the trial on node b from its checkpoint of epoch 1
    resumed = dict(node_id="node-b", devices="CPU", replicas=1, resumed_from_epoch=1)
    rec.on_trial_result(0, [], trial, epoch_result(2, 20.0, **resumed))
    rec.on_trial_result(0, [], trial, epoch_result(3, 30.0))
    rec.on_trial_result(0, [], trial, epoch_result(4, 4.0, status="finished"))
    rec.on_trial_complete(0, [], trial)
    (run,) = study.runs()
    assert (run.data.tags["node_id"], run.data.tags["resumed_from_epoch"]) == ("node-b", "1")
    assert study.history(run.info.run_id) == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]
    assert run.data.tags["status"] == "finished" and run.info.status == "FINISHED"


def test_a_diverged_trial_is_recorded_diverged_not_finished(study, trials):
    trial = trials[0]
    rec = study.recorder()
    rec.on_trial_start(0, [], trial)
    rec.on_trial_result(0, [], trial, epoch_result(1, 1.0))
    rec.on_trial_result(0, [], trial, epoch_result(2, float("nan"), status="diverged"))
    rec.on_trial_complete(0, [], trial)
    (run,) = study.runs()
    assert run.data.tags["status"] == "diverged"
    assert run.info.status == "FINISHED"  # it ended normally: diverging is a result
    assert math.isnan(run.data.metrics["train_loss"])


def test_a_diverged_epoch_re_reported_after_a_restore_still_marks_the_run_diverged(study, trials):
    """The driver died after logging the diverged epoch; the retried trial diverges again at the
    same (already logged) epoch: the run must still end `diverged`."""
    trial = trials[0]
    rec = study.recorder()
    rec.on_trial_start(0, [], trial)
    rec.on_trial_result(0, [], trial, epoch_result(1, 1.0))
    rec.on_trial_result(0, [], trial, epoch_result(2, float("nan"), status="diverged"))
    rec.flush()  # logged; then the driver died
    restored = study.track(pickle.loads(pickle.dumps(rec)))
    restored.on_trial_start(0, [], trial)
    restored.on_trial_result(0, [], trial, epoch_result(2, float("nan"), status="diverged",
                                                         resumed_from_epoch=1))
    restored.on_trial_complete(0, [], trial)
    (run,) = study.runs()
    assert run.data.tags["status"] == "diverged"
    assert run.data.tags["resumed_from_epoch"] == "1"


def test_a_run_records_config_tags_params_and_its_history(study, trials):
    trial = trials[1]
    config = trial.config["trial"]
    rec = study.recorder()
    rec.on_trial_start(0, [], trial)
    for epoch in (1, 2):
        rec.on_trial_result(0, [], trial, epoch_result(epoch, epoch / 10))
    rec.on_trial_result(0, [], trial, {**epoch_result(3, 0.3), "test_loss": 0.5,
                                       "test_accuracy": 0.75, "status": "finished"})
    rec.on_trial_complete(0, [], trial)

    client = MlflowClient(study.uri)
    (run,) = study.runs()
    tags = run.data.tags
    assert tags["trial_key"] == config["trial_key"]
    assert (tags["run_kind"], tags["study"], tags["status"]) == ("trial", "study", "finished")
    assert (tags["pair"], tags["variant"], tags["optimizer"]) == ("adam", "baseline", "Adam")
    assert (tags["dataset"], tags["model"], tags["depth"], tags["seed"]) == (
        "synthetic", "dense", "2", "1")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=REPO).stdout.strip()
    assert tags["git_commit"] == (commit or "unknown")  # "unknown" outside a git checkout
    assert run.data.params == {k: str(v) for k, v in flatten(config).items()}
    experiment = client.get_experiment(run.info.experiment_id)  # SQLite: artifacts beside it
    assert experiment.artifact_location.startswith("file://")
    assert run.data.metrics["test_accuracy"] == 0.75 and run.data.metrics["test_loss"] == 0.5
    assert [p.step for p in client.get_metric_history(run.info.run_id, "test_loss")] == [3]

    directory = Path(client.download_artifacts(run.info.run_id, ""))
    assert pd.read_json(directory / "config.json", typ="series")["trial_key"] == config["trial_key"]
    saved = pd.read_csv(directory / "history.csv", index_col="epoch")
    assert list(saved.index) == [1, 2, 3] and list(saved.columns) == list(EPOCH_METRICS)
    assert saved["val_accuracy"].tolist() == pytest.approx([0.1, 0.2, 0.3])


def test_every_param_is_logged_past_mlflows_batch_of_100(study, trials):
    config = {**trials[0].config["trial"], "model_options": {f"o{i:03d}": i for i in range(250)}}
    rec = study.recorder()
    rec.on_trial_start(0, [], FakeTrial({"trial": config}))
    (run,) = study.runs()
    assert run.data.params == {k: str(v) for k, v in flatten(config).items()}
    assert len(run.data.params) > 250


def test_a_failed_trial_is_recorded_failed_with_the_last_line_of_its_error(study, trials):
    trial = FakeTrial(trials[0].config, error_msg="Traceback (most recent call last):\n"
                      "  File 'x.py', line 1\nValueError: out of memory\n")
    rec = study.recorder()
    rec.on_trial_start(0, [], trial)
    rec.on_trial_result(0, [], trial, epoch_result(1, 1.0))
    rec.on_trial_error(0, [], trial)
    (run,) = study.runs()
    assert run.info.status == "FAILED"
    assert run.data.tags["status"] == "failed"
    assert run.data.tags["error"] == "ValueError: out of memory"


def test_a_long_error_is_cut_to_500_characters(study, trials):
    last_line = "RuntimeError: " + "x" * 700
    trial = FakeTrial(trials[0].config, error_msg=f"Traceback (most recent call last):\n{last_line}")
    rec = study.recorder()
    rec.on_trial_start(0, [], trial)
    rec.on_trial_error(0, [], trial)
    (run,) = study.runs()
    assert run.data.tags["error"] == last_line[:500]


def test_a_stopped_study_closes_its_runs_and_a_resume_reopens_them(study, trials):
    rec = study.recorder()
    for trial in trials:
        rec.on_trial_start(0, [], trial)
    rec.on_trial_result(0, [], trials[0], epoch_result(1, 1.0, status="finished"))
    rec.on_trial_complete(0, [], trials[0])
    rec.on_experiment_end(trials)  # Ctrl-C: Tune ends the experiment, then the runner closes
    assert close_running_runs(study.uri, study.name) == 1
    assert close_running_runs(study.uri, "no-such-experiment") == 0
    runs = {r.data.tags["trial_key"]: r for r in study.runs()}
    done, stopped = (runs[t.config["trial"]["trial_key"]] for t in trials)
    assert (done.info.status, done.data.tags["status"]) == ("FINISHED", "finished")
    assert (stopped.info.status, stopped.data.tags["status"]) == ("KILLED", "interrupted")

    resumed = study.recorder()  # `harness run --resume`: a new driver
    resumed.on_trial_start(0, [], trials[1])
    resumed.flush()
    assert MlflowClient(study.uri).get_run(stopped.info.run_id).info.status == "RUNNING"
    assert len(study.runs()) == 2  # continued, not duplicated


def test_a_restart_discards_the_old_runs_and_opens_new_ones(study, trials):
    rec = study.recorder()
    for trial in trials:
        rec.on_trial_start(0, [], trial)
    old = {r.info.run_id for r in study.runs()}
    assert discard_trial_runs(study.uri, study.name) == 2
    assert discard_trial_runs(study.uri, "no-such-experiment") == 0
    assert study.runs() == []
    client = MlflowClient(study.uri)
    assert {client.get_run(r).info.lifecycle_stage for r in old} == {"deleted"}
    study.recorder().on_trial_start(0, [], trials[0])
    (new,) = study.runs()
    assert new.info.run_id not in old


def test_a_tuned_studys_trials_are_children_of_their_arms_run(study, tmp_path):
    """One parent run per arm, found again rather than duplicated; every trial its child;
    finished and diverged trials count as done for a resume; --restart discards arms too."""
    data = yaml.safe_load((REPO / "search_spaces" / "smoke_tuned.yaml").read_text())
    spec = parse_space({**data, "name": study.name}, tmp_path / "tuned.yaml")
    arm_runs = ensure_arm_runs(study.uri, spec)
    assert set(arm_runs) == {arm.name for arm in arms(spec)} and len(arm_runs) == 2
    assert ensure_arm_runs(study.uri, spec) == arm_runs

    configs = tune_configs(spec)[:3]
    rec = study.recorder()
    for config, status in zip(configs, ("finished", "diverged", None)):
        trial = FakeTrial({"trial": config}, error_msg="RuntimeError: lost")
        rec.on_trial_start(0, [], trial)
        rec.on_trial_result(0, [], trial, epoch_result(1, 0.5, **({"status": status}
                                                                   if status else {})))
        (rec.on_trial_complete if status else rec.on_trial_error)(0, [], trial)
    for run in study.runs():
        tags = run.data.tags
        assert tags[TAG_PARENT_RUN] == arm_runs[tags[TAG_ARM]] and tags[TAG_PHASE] == "tune"
    assert finished_trial_keys(study.uri, study.name) == {c["trial_key"] for c in configs[:2]}
    assert finished_trial_keys(study.uri, "no-such-experiment") == set()
    assert discard_trial_runs(study.uri, study.name) == 3 + 2


def test_the_recorders_hooks_return_while_the_store_is_blocked(tmp_path):
    """A stalled tracking server holds up the writer's thread, never Tune's result loop; once it
    answers, every epoch is logged once and in few requests."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _, spec = smoke_space(tmp_path, name="stall", seeds=[0, 1, 2, 3],
                          model={"family": "dense", "depths": [2]},
                          optimizers=[{"base": "adam", "learning_rate": 1.0e-3}])
    trials = [FakeTrial({"trial": config}) for config in trial_configs(spec)]
    recorder = MLflowRecorder(uri, spec.experiment_name, spec.name)
    for trial in trials:
        recorder.on_trial_start(0, [], trial)
    recorder.flush()
    gate, batches = threading.Event(), []
    log_batch = recorder.client.log_batch

    def stalled_log_batch(run_id, **kwargs):
        gate.wait(30)
        batches.append(run_id)
        return log_batch(run_id, **kwargs)

    recorder.client.log_batch = stalled_log_batch
    slowest = 0.0
    for epoch in range(1, 21):
        for trial in trials:
            started = time.perf_counter()
            recorder.on_trial_result(0, [], trial, epoch_result(epoch, epoch / 100))
            slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 0.05  # the first write is stalled: every hook returned anyway
    gate.set()
    for trial in trials:
        recorder.on_trial_complete(0, [], trial)
    recorder.on_experiment_end([])
    runs = trial_runs(uri, spec.experiment_name)
    assert len(runs) == 4
    for run in runs:
        assert epoch_steps(uri, run.info.run_id) == {m: list(range(1, 21)) for m in EPOCH_METRICS}
        assert run.info.status == "FINISHED"
    # 80 reports: one request per run for what queued during the stall (plus the first one and
    # the status at the end), not one per report
    assert len(batches) <= 4 * 3
