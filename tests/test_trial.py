"""A trial's guarantees, fast: a restored trial continues where its checkpoint left it, and a
diverged trial ends (and is recorded) as `diverged`.

`train_trial` runs in a Ray worker inside Ray's own function-trainable wrapper
(`trainable_helpers`); the tests pass the trial's results to the MLflow recorder's hooks
themselves (a real SQLite store). One local Ray and one worker serve the whole module.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import ray
import tensorflow as tf
from study_helpers import epoch_steps, smoke_space, trial_runs
from trainable_helpers import FakeTrial, Reported, run_trial

from harness.study.run_schema import EPOCH_METRICS, PHASE_TUNE
from harness.study.space import trial_configs
from harness.study.tracking import PROVENANCE_KEYS, MLflowRecorder

TINY = {"name": "synthetic", "batch_size": 32, "validation_size": 60,
        "options": {"train_size": 300, "test_size": 100, "shape": [8, 8, 1]}}


def trial_config(workdir: Path, name: str, **overrides) -> dict:
    defaults = dict(seeds=[0], epochs=3, model={"family": "dense", "depths": [2]}, dataset=TINY,
                    optimizers=[{"base": "adam", "learning_rate": 1.0e-3, "sigma": 1.0e-3}])
    _, spec = smoke_space(workdir, name=name, **{**defaults, **overrides})
    (config,) = trial_configs(spec)
    return config


def record(uri: str, config: dict, *attempts: Reported) -> str:
    """Pass every attempt's results to one recorder, as Tune's driver would; the run id."""
    trial = FakeTrial({"trial": config})
    recorder = MLflowRecorder(uri, config["experiment"], config["study"])
    recorder.on_trial_start(0, [], trial)
    for attempt in attempts:
        for result in attempt.results:
            recorder.on_trial_result(0, [], trial, result)
    recorder.on_trial_complete(0, [], trial)
    recorder.flush()  # the hooks only queue the writes
    (run,) = trial_runs(uri, config["experiment"])
    return run.info.run_id


@pytest.fixture(scope="module")
def uri(workdir) -> str:
    return f"sqlite:///{workdir}/mlflow.db"


@pytest.fixture(scope="module")
def resumed_study(worker, workdir):
    """One L-Adam trial run through 3 epochs, and the same trial restored from epoch 1."""
    config = trial_config(workdir, "resume")
    whole = run_trial(worker, config, workdir, "whole")
    restored = run_trial(worker, config, workdir, "restored", restore=whole.checkpoints[0])
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
    first = whole.results[0]
    assert (first["devices"], first["replicas"], first["ray_gpu_ids"]) == ("CPU", 1, "none")
    assert first["node_id"] == ray.get_runtime_context().get_node_id()
    assert first["tensorflow_version"] == tf.__version__
    for result in whole.results:  # 240 training images (300 - 60 for validation) per epoch
        assert 0 < 240 / result["images_per_s"] <= result["epoch_time_s"]  # training only
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
def test_a_nan_loss_ends_the_trial_as_diverged_and_its_run_says_so(case, worker, workdir, uri):
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
    reported = run_trial(worker, config, workdir, case)
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


def test_the_seed_sets_the_start_and_sigma_alone_separates_adam_from_l_adam(resumed_study,
                                                                            worker, workdir):
    """Adam and L-Adam with one seed start from the same weights and batches (σ = 1e-3 is a
    nudge); another seed starts elsewhere; the same seed repeats exactly."""
    config, whole, _ = resumed_study
    l_adam = whole.results[0]["train_loss"]
    adam = trial_config(workdir, "adam", epochs=1,
                        optimizers=[{"base": "adam", "learning_rate": 1.0e-3}])
    adam_loss = run_trial(worker, adam, workdir, "adam").results[0]["train_loss"]
    again = run_trial(worker, {**config, "epochs": 1}, workdir, "again").results[0]["train_loss"]
    other = run_trial(worker, {**config, "epochs": 1, "seed": 1}, workdir, "seed1").results[0]
    assert again == l_adam
    assert adam_loss != l_adam and abs(adam_loss - l_adam) < 1e-2
    assert abs(other["train_loss"] - l_adam) > abs(adam_loss - l_adam)


def test_a_tuning_trial_never_evaluates_on_the_test_split(worker, workdir):
    config = {**trial_config(workdir, "tuning", epochs=1), "phase": PHASE_TUNE}
    (last,) = run_trial(worker, config, workdir, "tuning").results
    assert last["status"] == "finished"
    assert "test_loss" not in last and "test_accuracy" not in last
    assert math.isfinite(last["val_accuracy"])


@pytest.mark.parametrize("change", [{"hyper": {"beta_1": 0.5}}, {"augment": True},
                                    {"layer_fraction": 0.5}], ids=["hyper", "augment", "layers"])
def test_what_the_study_file_sets_reaches_the_training(change, resumed_study, worker, workdir):
    """Optimizer hyper-parameters, augmentation (off by default on synthetic data) and a Layer
    Langevin fraction each change the first epoch of the same seed."""
    config, whole, _ = resumed_study
    (changed,) = run_trial(worker, {**config, "epochs": 1, **change}, workdir,
                           "-".join(change)).results
    assert changed["status"] == "finished"
    assert changed["train_loss"] != whole.results[0]["train_loss"]
