"""`--per-arm`: a rerun of a tuned study's choices, where each twin has its own learning rate,
still pairs the Langevin twin with its plain twin seed by seed (a real sqlite MLflow store)."""

from __future__ import annotations

import time

import pytest
from analysis_store import row, sqlite_store
from mlflow.entities import Metric, Param

from harness.analysis.load import load_study
from harness.analysis.report import analyze
from harness.errors import HarnessError
from harness.study.run_schema import (
    RUN_KIND_TRIAL,
    STATUS_FINISHED,
    TAG_PAIR,
    TAG_RUN_KIND,
    TAG_STATUS,
    TAG_TRIAL_KEY,
    TAG_VARIANT,
)

STUDY = "rerun"
SEEDS = (1, 2, 3, 4)
# (display, sigma, learning rate, test accuracy of seed s = base + 0.01 s)
TWINS = (("Adam", 0.0, 5e-4, 0.90), ("L-Adam", 1e-3, 1.7e-4, 0.95))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri, client, ids = sqlite_store(tmp_path_factory.mktemp("per_arm"), STUDY)
    now = int(time.time() * 1000)
    for display, sigma, lr, base in TWINS:
        for seed in SEEDS:
            variant = "langevin" if sigma else "baseline"
            tags = {TAG_RUN_KIND: RUN_KIND_TRIAL, TAG_TRIAL_KEY: f"{display}-{seed}",
                    TAG_STATUS: STATUS_FINISHED, TAG_PAIR: "adam", TAG_VARIANT: variant}
            run_id = client.create_run(ids[STUDY], tags=tags).info.run_id
            params = {"dataset": "mnist", "model": "dense", "depth": 40, "optimizer": display,
                      "base_optimizer": "adam", "sigma": sigma, "layer_fraction": 1.0,
                      "learning_rate": lr, "seed": seed, "epochs": 1, "batch_size": 512}
            accuracy = base + 0.01 * seed
            metrics = [Metric(k, accuracy, now, 1) for k in ("val_accuracy", "train_accuracy",
                                                              "test_accuracy")]
            metrics += [Metric(k, 1 - accuracy, now, 1) for k in ("val_loss", "train_loss")]
            client.log_batch(run_id, metrics=metrics,
                             params=[Param(k, str(v)) for k, v in params.items()])
            client.set_terminated(run_id, "FINISHED")
    return uri


def test_twins_with_their_own_learning_rates_pair_only_with_per_arm(store):
    alone = analyze(load_study(STUDY, store), "test_accuracy", None)
    # the learning rate splits the twins into arms that cannot pair
    assert (alone.gains["n_pairs"] == 0).all() and "Adam" not in set(alone.gains["baseline_arm"])
    paired = analyze(load_study(STUDY, store, per_arm=("learning_rate",)), "test_accuracy", None)
    gain = row(paired.gains, arm="L-Adam", depth=40)
    assert gain["baseline_arm"] == "Adam" and gain["n_pairs"] == len(SEEDS)
    assert gain["mean_gain"] == pytest.approx(0.05) and gain["n_wins"] == len(SEEDS)


def test_a_per_arm_name_that_is_no_param_is_refused_in_one_line(store):
    with pytest.raises(HarnessError, match=r"--per-arm lr: not a param of study 'rerun'; "
                       r"allowed: .*learning_rate"):
        load_study(STUDY, store, per_arm=("lr",))
