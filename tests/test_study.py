"""The runner end to end on an embedded Ray with a real MLflow store and real Keras training.

Tiny synthetic data (no files), tiny nets; each study takes tens of seconds, mostly process start.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import ray
from mlflow.tracking import MlflowClient
from study_helpers import TINY_DATA, epoch_steps, smoke_space, trial_runs

from harness.errors import HarnessError
from harness.study.run_schema import EPOCH_METRICS
from harness.study.runner import run_study
from harness.study.space import parse_space, trial_configs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def embedded_ray():
    yield
    ray.shutdown()


def test_smoke_study_one_run_per_trial_one_value_per_epoch(tmp_path):
    _, spec = smoke_space(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    outcome = run_study(spec, tracking_uri=uri, storage_path=str(tmp_path / "results"))
    assert (outcome.total, outcome.finished, outcome.errored) == (12, 12, 0)

    configs = {c["trial_key"]: c for c in trial_configs(spec)}
    runs = trial_runs(uri, "smoke")
    assert sorted(r.data.tags["trial_key"] for r in runs) == sorted(configs)
    client = MlflowClient(uri)
    for run in runs:
        config = configs[run.data.tags["trial_key"]]
        assert run.info.status == "FINISHED"
        assert run.data.tags["status"] == "finished"
        assert run.data.tags["devices"] == "CPU" and run.data.tags["git_commit"]
        params = run.data.params
        assert params["depth"] == str(config["depth"]) and params["seed"] == str(config["seed"])
        assert params["optimizer"] == config["optimizer"] and params["dataset"] == "synthetic"
        assert float(params["sigma"]) == config["sigma"]
        assert epoch_steps(uri, run.info.run_id) == {m: [1, 2] for m in EPOCH_METRICS}
        assert [p.step for p in client.get_metric_history(run.info.run_id, "test_accuracy")] == [2]
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
            "config.json", "history.csv"}
    # the data is learnable: a 3-layer net beats chance (10 classes) clearly
    best = max(r.data.metrics["test_accuracy"] for r in runs)
    assert best > 0.3


def test_same_seed_same_start_langevin_differs(tmp_path):
    """Adam and L-Adam with one seed: same init and batches, so σ alone separates them."""
    _, spec = smoke_space(tmp_path, name="pairs", seeds=[0], epochs=1,
                          model={"family": "dense", "depths": [3]})
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_study(spec, tracking_uri=uri, storage_path=str(tmp_path / "results"))
    runs = {r.data.tags["variant"]: r for r in trial_runs(uri, "pairs")}
    adam, langevin = runs["baseline"].data.metrics, runs["langevin"].data.metrics
    assert adam["train_loss"] != langevin["train_loss"]
    assert abs(adam["train_loss"] - langevin["train_loss"]) < 0.05  # σ = 1e-3 is a nudge


def test_diverging_trial_is_recorded_and_the_others_finish(tmp_path):
    _, spec = smoke_space(
        tmp_path, name="diverge", seeds=[0], epochs=2, model={"family": "dense", "depths": [2]},
        optimizers=[{"base": "sgd", "learning_rate": 1.0e12},
                    {"base": "adam", "learning_rate": 1.0e-3}])
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    outcome = run_study(spec, tracking_uri=uri, storage_path=str(tmp_path / "results"))
    assert outcome.errored == 0 and outcome.finished == 2
    runs = {r.data.params["base_optimizer"]: r for r in trial_runs(uri, "diverge")}
    assert runs["sgd"].data.tags["status"] == "diverged"
    assert runs["sgd"].info.status == "FINISHED"
    assert not math.isfinite(runs["sgd"].data.metrics["train_loss"])
    assert runs["adam"].data.tags["status"] == "finished"


def test_gpu_request_on_cpu_only_cluster_fails_before_anything_starts(tmp_path):
    _, spec = smoke_space(tmp_path, name="gpu", resources={"cpu": 1, "gpu": 1})
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(HarnessError, match=r"field 'resources.gpu' is 1 but the cluster has 0 GPUs"):
        run_study(spec, tracking_uri=uri, storage_path=str(tmp_path / "results"))
    assert not (tmp_path / "results").exists()


def _logged_epochs(uri: str, runs) -> dict[str, int]:
    """trial_key -> the last epoch logged for its run (0: none yet)."""
    return {r.data.tags["trial_key"]: max(epoch_steps(uri, r.info.run_id)["train_loss"], default=0)
            for r in runs}


@pytest.mark.parametrize("packing", [None, 2], ids=["alone", "packed"])
def test_interrupted_driver_resumes_only_unfinished_trials(tmp_path, packing):
    """Packed (two packs of two trials), the same holds for every member of a pack."""
    epochs = 8
    # epochs of about a second; the driver is stopped after a trial's second or third epoch, so that
    # the several seconds Tune takes to stop cannot let that trial run to its end (seen in CI
    # with 3 epochs and a stop after the second), and so that it has a checkpoint to resume from
    # even if the newest one is lost (below)
    data = {**TINY_DATA, "options": {**TINY_DATA["options"], "train_size": 10000}}
    space, spec = smoke_space(tmp_path, name="resume", seeds=[0, 1], epochs=epochs,
                              model={"family": "dense", "depths": [2]}, dataset=data,
                              **({"packing": packing} if packing else {}))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    command = [sys.executable, "-m", "harness.cli", "run", str(space),
               "--storage-path", str(tmp_path / "results"), "--max-concurrent", "1"]
    driver = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    finished_first: dict[str, float] = {}
    midway: dict[str, int] = {}
    while time.monotonic() < deadline and driver.poll() is None and not (finished_first and midway):
        time.sleep(0.2)
        try:
            runs = trial_runs(uri, "resume")
        except Exception:  # the store or experiment is not there yet
            continue
        finished_first = {r.data.tags["trial_key"]: r.info.end_time for r in runs
                          if r.info.status == "FINISHED"}
        running = _logged_epochs(uri, [r for r in runs if r.info.status == "RUNNING"])
        midway = {key: logged for key, logged in running.items() if 2 <= logged <= 3}
    assert finished_first and midway, "no trial finished and another half-way in time"
    driver.send_signal(signal.SIGINT)
    output, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, output
    assert "resume with: harness run --resume resume" in output
    assert all(r.info.status != "RUNNING" for r in trial_runs(uri, "resume"))
    # the epoch each stopped trial must resume after: its last checkpoint, which is its last report
    # or the one before. Tune registers a reported checkpoint one event after the callbacks have
    # logged the report (the actor's `save` is a second remote call); a Ctrl-C between the two
    # loses that checkpoint (seen in CI: a trial logged epoch 1 and resumed from 0). The epoch it
    # re-runs keeps its first value in MLflow (checked by the steps below).
    stopped = {key: logged for key, logged in _logged_epochs(uri, trial_runs(uri, "resume")).items()
               if key not in finished_first}
    assert any(1 <= logged < epochs for logged in stopped.values()), stopped

    resumed = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--resume", "resume", "--storage-path",
         str(tmp_path / "results")], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming study 'resume'" in resumed.stdout

    runs = trial_runs(uri, "resume")
    assert len(runs) == len(trial_configs(spec)) == 4  # one run per trial, none duplicated
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["status"] == "finished"
        assert epoch_steps(uri, run.info.run_id) == {m: list(range(1, epochs + 1))
                                                     for m in EPOCH_METRICS}
        key = run.data.tags["trial_key"]
        if key in finished_first:  # ended before the interrupt: not run again
            assert run.info.end_time == finished_first[key]
            assert run.data.tags["resumed_from_epoch"] == "0"
        elif stopped.get(key, 0) < epochs:  # continued from its checkpoint, not from scratch
            logged = stopped.get(key, 0)
            assert int(run.data.tags["resumed_from_epoch"]) in {max(logged - 1, 0), logged}, key
            if key in midway:
                assert int(run.data.tags["resumed_from_epoch"]) >= 1, key


def test_synthetic_space_parses_like_a_file(tmp_path):
    """The helper's override keeps everything else of smoke.yaml (guards the tests above)."""
    _, spec = smoke_space(tmp_path)
    assert spec.dataset.name == TINY_DATA["name"] and spec.model.depths == [3, 10]
    assert parse_space(spec.model_dump(mode="json"), tmp_path / "x.yaml") == spec


def test_restart_starts_over_with_new_runs(tmp_path):
    _, spec = smoke_space(tmp_path, name="again", seeds=[0], epochs=1,
                          model={"family": "dense", "depths": [2]},
                          optimizers=[{"base": "adam", "learning_rate": 1.0e-3}])
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = str(tmp_path / "results")
    run_study(spec, tracking_uri=uri, storage_path=storage)
    (first,) = trial_runs(uri, "again")
    lines = []
    outcome = run_study(spec, tracking_uri=uri, storage_path=storage, restart=True,
                        out=lines.append)
    assert outcome.finished == 1
    assert any("1 old MLflow runs moved to MLflow's trash" in line for line in lines)
    (second,) = trial_runs(uri, "again")  # the old run is deleted, not continued
    assert second.info.run_id != first.info.run_id
    assert MlflowClient(uri).get_run(first.info.run_id).info.lifecycle_stage == "deleted"
    assert epoch_steps(uri, second.info.run_id)["train_loss"] == [1]


# The driver, with every MLflow log-batch request held up as a slow tracking server would (the
# recorder's writer thread waits; Tune's loop goes on), so that a kill finds writes queued.
SLOW_STORE_DRIVER = """
import sys, time
from mlflow.tracking import MlflowClient
log_batch = MlflowClient.log_batch
def slow_log_batch(self, *args, **kwargs):
    time.sleep(1.0)
    return log_batch(self, *args, **kwargs)
MlflowClient.log_batch = slow_log_batch
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _reported_epochs(experiment_dir) -> dict[str, int]:
    """trial_key -> the last epoch Tune's driver received (its result.json per trial)."""
    reported = {}
    for path in experiment_dir.glob("*/result.json"):
        epochs = [json.loads(line).get("epoch", 0) for line in path.read_text().splitlines()
                  if line.strip()]
        reported[path.parent.name] = max(epochs, default=0)
    return reported


def test_a_killed_driver_with_writes_queued_resumes_with_every_epoch_logged_once(tmp_path):
    """kill -9 while the recorder's queue holds epochs Tune already received: the resume
    starts from the experiment state Tune saved, which never runs ahead of the store, so every
    epoch of every run is in MLflow once, and every run ends finished."""
    epochs = 8
    data = {**TINY_DATA, "options": {**TINY_DATA["options"], "train_size": 2000}}
    space, spec = smoke_space(tmp_path, name="killed", seeds=[0, 1], epochs=epochs,
                              model={"family": "dense", "depths": [2]}, dataset=data)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    storage = tmp_path / "results"
    driver_log = tmp_path / "driver.log"
    driver_stderr = driver_log.open("w")
    driver = subprocess.Popen(
        [sys.executable, "-c", SLOW_STORE_DRIVER, "run", str(space), "--storage-path",
         str(storage), "--max-concurrent", "2"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=driver_stderr,
        start_new_session=True)  # its embedded Ray in its group, to be killed with it
    deadline = time.monotonic() + 240
    queued, polls, store_errors = {}, 0, []
    try:
        while time.monotonic() < deadline and driver.poll() is None and not queued:
            time.sleep(0.1)
            polls += 1
            try:
                logged = _logged_epochs(uri, trial_runs(uri, "killed"))
            except Exception as error:  # the store or experiment is not there yet
                store_errors.append(repr(error)[:200])
                continue
            queued = {key: (epoch, logged.get(key, 0))
                      for key, epoch in _reported_epochs(storage / "killed").items()
                      if 2 <= epoch < epochs and epoch > logged.get(key, 0)}
    finally:
        exited = driver.poll()
        if exited is None:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver and its Ray, at once
            driver.wait(30)
        driver_stderr.close()
    assert queued, (f"no trial had an epoch received but not yet logged; driver exit {exited}, "
                    f"{polls} polls, last store errors {store_errors[-3:]}, driver stderr tail:\n"
                    + driver_log.read_text()[-3000:])

    resumed = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--resume", "killed", "--storage-path",
         str(storage)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    runs = trial_runs(uri, "killed")
    assert len(runs) == len(trial_configs(spec)) == 4  # one run per trial
    for run in runs:
        assert epoch_steps(uri, run.info.run_id) == {m: list(range(1, epochs + 1))
                                                     for m in EPOCH_METRICS}, queued
        assert run.info.status == "FINISHED" and run.data.tags["status"] == "finished"


def test_a_driver_stopped_before_tunes_first_save_starts_that_phase_afresh(tmp_path):
    from ray import tune

    from harness.study import saved_space
    from harness.study.runner import _new_tuner

    _, spec = smoke_space(tmp_path, name="early", seeds=[0])
    uri, storage = f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "results")
    configs = trial_configs(spec)
    # what a driver killed in the seconds after it built its Tuner leaves: the study's saved copy
    # and Tune's tuner.pkl, but no experiment state (seen with `kill -9` on a real driver)
    saved_space.save(spec, f"{storage}/early")
    _new_tuner(spec, configs, storage, "early", uri, None, len(configs))
    assert tune.Tuner.can_restore(f"{storage}/early")
    lines = []
    outcome = run_study(spec, tracking_uri=uri, storage_path=storage, out=lines.append)
    assert "study 'early': stopped before Tune saved any state; it starts afresh" in lines, lines
    assert f"study 'early': MLflow {uri} (experiment 'early')" in lines  # a first start
    assert outcome.finished == outcome.total == len(configs) == 4
    runs = trial_runs(uri, "early")
    assert len(runs) == 4 and {r.data.tags["status"] for r in runs} == {"finished"}
