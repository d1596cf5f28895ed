"""A trial's guarantees, fast: a restored trial continues where its checkpoint left it, and a
diverged trial ends (and is recorded) as `diverged`.

`train_trial` runs in this process inside Ray's own function-trainable wrapper
(`ray.tune.trainable.wrap_function`, the class Tune's worker actors run): `tune.report` and
`tune.get_checkpoint` are the real session calls, checkpoints are persisted to a real
`StorageContext` in `tmp_path`, and a restore goes through `Trainable.restore` as Tune's does.
Only Tune's driver loop is left out: the tests pass the trial's results to the MLflow recorder's
hooks themselves (a real SQLite store), with a stand-in for Tune's `Trial` (`.config`). A local
Ray is started once for the module: the trial asks Ray for its node id and GPU ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import ray
from ray.train._internal.storage import StorageContext
from ray.tune.trainable import wrap_function
from study_helpers import epoch_steps, smoke_space, trial_runs

from harness.study.run_schema import EPOCH_METRICS
from harness.study.space import trial_configs
from harness.study.tracking import PROVENANCE_KEYS, MLflowRecorder
from harness.study.trial import train_trial

DUPLICATE = "__duplicate__"  # Tune's marker of the result a function trainable ends with
TINY = {"name": "synthetic", "batch_size": 32, "validation_size": 60,
        "options": {"train_size": 300, "test_size": 100, "shape": [8, 8, 1]}}


@dataclass
class Reported:
    """What a trial reported, in order: the results and the checkpoint saved with each."""

    results: list[dict] = field(default_factory=list)
    checkpoints: list = field(default_factory=list)

    @property
    def epochs(self) -> list[int]:
        return [r["epoch"] for r in self.results]


@dataclass
class FakeTrial:
    config: dict
    error_msg: str | None = None


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", include_dashboard=False, num_cpus=1, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("trial")


def trial_config(workdir: Path, name: str, **overrides) -> dict:
    defaults = dict(seeds=[0], epochs=3, model={"family": "dense", "depths": [2]}, dataset=TINY,
                    optimizers=[{"base": "adam", "learning_rate": 1.0e-3, "sigma": 1.0e-3}])
    _, spec = smoke_space(workdir, name=name, **{**defaults, **overrides})
    (config,) = trial_configs(spec)
    return config


def run_trial(config: dict, workdir: Path, attempt: str, restore=None) -> Reported:
    """Drive `train_trial` as Tune's worker does: train() per report, save() when it checkpoints."""
    storage = StorageContext(str(workdir / "storage"), config["study"], trial_dir_name=attempt)
    trainable = wrap_function(train_trial)({"trial": config}, storage=storage)
    if restore is not None:
        trainable.restore(restore)
    reported = Reported()
    try:
        while DUPLICATE not in (result := trainable.train()):
            reported.results.append(result)
            reported.checkpoints.append(
                trainable.save().checkpoint if result.get("should_checkpoint") else None)
    finally:
        trainable.stop()
    return reported


def record(uri: str, config: dict, *attempts: Reported) -> str:
    """Pass every attempt's results to one recorder, as Tune's driver would; the run id."""
    trial = FakeTrial({"trial": config})
    recorder = MLflowRecorder(uri, config["experiment"], config["study"])
    recorder.on_trial_start(0, [], trial)
    for attempt in attempts:
        for result in attempt.results:
            recorder.on_trial_result(0, [], trial, result)
    recorder.on_trial_complete(0, [], trial)
    (run,) = trial_runs(uri, config["experiment"])
    return run.info.run_id


@pytest.fixture(scope="module")
def uri(workdir) -> str:
    return f"sqlite:///{workdir}/mlflow.db"


@pytest.fixture(scope="module")
def resumed_study(workdir):
    """One L-Adam trial run through 3 epochs, and the same trial restored from epoch 1."""
    config = trial_config(workdir, "resume")
    whole = run_trial(config, workdir, "whole")
    restored = run_trial(config, workdir, "restored", restore=whole.checkpoints[0])
    return config, whole, restored


def test_a_trial_restored_at_epoch_k_reports_k_plus_1_first_and_the_same_numbers(resumed_study):
    _, whole, restored = resumed_study
    assert whole.epochs == [1, 2, 3]
    assert whole.results[0]["resumed_from_epoch"] == 0
    assert restored.epochs == [2, 3]
    assert restored.results[0]["resumed_from_epoch"] == 1
    for results in (whole.results, restored.results):  # provenance with the first epoch only
        assert all(key in results[0] for key in PROVENANCE_KEYS)
        assert not any(key in result for result in results[1:] for key in PROVENANCE_KEYS)
    assert [r.get("status") for r in restored.results] == [None, "finished"]
    # same weights, optimizer state, noise stream and data order as the uninterrupted run
    for metric in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert [r[metric] for r in restored.results] == pytest.approx(
            [r[metric] for r in whole.results[1:]], rel=1e-6), metric
    for metric in ("test_loss", "test_accuracy"):
        assert restored.results[-1][metric] == pytest.approx(whole.results[-1][metric], rel=1e-6)


def test_a_restore_from_an_older_checkpoint_is_tagged_and_logged_once(resumed_study, uri):
    """The trial died after logging epoch 2 and was restored from its checkpoint of epoch 1."""
    config, whole, restored = resumed_study
    first_attempt = Reported(whole.results[:2], whole.checkpoints[:2])
    run_id = record(uri, config, first_attempt, restored)
    (run,) = trial_runs(uri, config["experiment"])
    assert run.data.tags["resumed_from_epoch"] == "1"
    assert run.data.tags["status"] == "finished"
    assert epoch_steps(uri, run_id) == {m: [1, 2, 3] for m in EPOCH_METRICS}


@pytest.mark.parametrize("case", ["training", "test"])
def test_a_nan_loss_ends_the_trial_as_diverged_and_its_run_says_so(case, workdir, uri):
    """A NaN training loss stops the trial at that epoch (no checkpoint of NaN weights); a NaN
    test loss after a finite last epoch (one step at lr 1e38) marks that last epoch diverged."""
    if case == "training":
        config = trial_config(workdir, "nan-train",
                              optimizers=[{"base": "sgd", "learning_rate": 1.0e12}])
    else:
        config = trial_config(workdir, "nan-test", epochs=1,
                              optimizers=[{"base": "sgd", "learning_rate": 1.0e38}],
                              dataset={**TINY, "validation_size": 0,
                                       "options": {**TINY["options"], "train_size": 32}})
    reported = run_trial(config, workdir, case)
    assert reported.epochs == [1]  # training stops at the diverged epoch
    (last,) = reported.results
    assert last["status"] == "diverged"
    if case == "training":
        assert math.isnan(last["train_loss"]) and reported.checkpoints == [None]
    else:
        assert math.isfinite(last["train_loss"]) and not math.isfinite(last["test_loss"])

    run_id = record(uri, config, reported)
    (run,) = trial_runs(uri, config["experiment"])
    assert run.info.run_id == run_id
    assert run.data.tags["status"] == "diverged"
