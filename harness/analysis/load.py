"""Load a study (one MLflow experiment) into two tidy pandas tables.

`Study.trials`: one row per trial run (tag run_kind = "trial"; analysis runs are ignored) with
    run_id, trial_key, status, variant, pair, arm, the typed config params, the last logged value of
    every metric (for a per-epoch metric: its value at the last epoch), and two derived columns:
    best_val_accuracy = max over epochs of val_accuracy, epochs_done = last epoch logged.
`Study.epochs`: one row per (trial, epoch) with the trial's key columns and one column per
    per-epoch metric. A value logged twice for one epoch (a resumed trial) keeps the later one.

`arm` names what is compared: the optimizer's display name ("Adam", "L-Adam", "LL-Adam"); when a
Langevin optimizer ran with several (sigma, layer_fraction) settings they are appended to it.
A trial without a status tag never reported an outcome and counts as failed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.study.run_schema import (
    EPOCH_METRICS,
    RUN_KIND_TRIAL,
    STATUS_FAILED,
    TAG_PAIR,
    TAG_RUN_KIND,
    TAG_STATUS,
    TAG_TRIAL_KEY,
    TAG_VARIANT,
    VARIANT_BASELINE,
    variant_of,
)
from harness.study.tracking_uri import default_tracking_uri

INT_PARAMS = ("depth", "seed", "epochs", "batch_size")
FLOAT_PARAMS = ("sigma", "layer_fraction", "learning_rate")
TEXT_PARAMS = ("dataset", "model", "optimizer", "base_optimizer")
BEST_VAL_ACCURACY = "best_val_accuracy"
EPOCHS_DONE = "epochs_done"
# What a compared group is: one arm at one depth of one (dataset, model).
ARM_KEYS = ["dataset", "model", "depth", "arm"]
# Trial columns repeated on every epoch row.
EPOCH_KEYS = ["run_id", *ARM_KEYS, "optimizer", "pair", "variant", "seed", "status"]


@dataclass(frozen=True)
class Study:
    name: str
    experiment_id: str
    tracking_uri: str
    trials: pd.DataFrame
    epochs: pd.DataFrame
    metric_names: tuple[str, ...]

    def require_metric(self, metric: str) -> None:
        """Raise a one-line HarnessError naming the logged metrics when `metric` is not one."""
        if metric not in self.metric_names:
            raise HarnessError(
                f"metric {metric!r} is not logged in study {self.name!r}; "
                f"logged: {', '.join(self.metric_names) or '(none)'}"
            )


def mlflow_client(tracking_uri: str):
    """An MlflowClient on `tracking_uri` (telemetry off); refuses a sqlite file that does not exist
    instead of letting MLflow create an empty store there."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient
    from sqlalchemy.engine import make_url

    if tracking_uri.startswith("sqlite:"):
        database = make_url(tracking_uri).database
        if not database or not Path(database).is_file():
            raise HarnessError(f"no MLflow store at {tracking_uri} (pass --tracking-uri)")
    return MlflowClient(tracking_uri)


def load_study(study: str, tracking_uri: str | None = None) -> Study:
    """Read every trial run of the experiment named (or numbered) `study`."""
    tracking_uri = tracking_uri or default_tracking_uri()
    client = mlflow_client(tracking_uri)
    experiment = _find_experiment(client, study, tracking_uri)
    runs = _search_all(
        client, experiment.experiment_id, f"tags.{TAG_RUN_KIND} = '{RUN_KIND_TRIAL}'"
    )
    if not runs:
        raise HarnessError(
            f"study {experiment.name!r} (experiment {experiment.experiment_id}) has no trial runs"
        )
    trials = _trials_frame(runs)
    epochs = _epochs_frame(client, runs, trials)
    per_trial = epochs.groupby("run_id").agg(
        **{BEST_VAL_ACCURACY: ("val_accuracy", "max"), EPOCHS_DONE: ("epoch", "max")}
    )
    trials = trials.join(per_trial, on="run_id")
    logged = sorted({key for run in runs for key in run.data.metrics})
    return Study(
        name=experiment.name,
        experiment_id=experiment.experiment_id,
        tracking_uri=tracking_uri,
        trials=trials,
        epochs=epochs,
        metric_names=(*logged, *([BEST_VAL_ACCURACY] if "val_accuracy" in logged else [])),
    )


def _find_experiment(client, study: str, tracking_uri: str):
    experiment = client.get_experiment_by_name(study)
    if experiment is None and study.isdigit():
        from mlflow.exceptions import MlflowException

        try:
            experiment = client.get_experiment(study)
        except MlflowException:
            experiment = None
    if experiment is None:
        names = sorted(e.name for e in client.search_experiments())
        raise HarnessError(
            f"unknown study {study!r} in {tracking_uri}; studies: {', '.join(names) or '(none)'}"
        )
    return experiment


def _search_all(client, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _trials_frame(runs: list) -> pd.DataFrame:
    rows = []
    for run in runs:
        params, tags = run.data.params, run.data.tags
        rows.append(
            {
                "run_id": run.info.run_id,
                "trial_key": tags.get(TAG_TRIAL_KEY, run.info.run_name),
                "status": tags.get(TAG_STATUS, STATUS_FAILED),
                "pair": tags.get(TAG_PAIR, params.get("base_optimizer")),
                "variant": tags.get(TAG_VARIANT),
                **{name: params.get(name) for name in (*TEXT_PARAMS, *INT_PARAMS, *FLOAT_PARAMS)},
                **run.data.metrics,
            }
        )
    trials = pd.DataFrame(rows)
    for name in INT_PARAMS:
        trials[name] = pd.to_numeric(trials[name], errors="coerce").astype("Int64")
    for name in FLOAT_PARAMS:
        trials[name] = pd.to_numeric(trials[name], errors="coerce")
    untagged = trials["variant"].isna()
    trials.loc[untagged, "variant"] = [
        variant_of(s, f)
        for s, f in zip(trials.sigma[untagged], trials.layer_fraction[untagged], strict=True)
    ]
    trials["arm"] = _arm_labels(trials)
    return trials


def _arm_labels(trials: pd.DataFrame) -> pd.Series:
    noisy = trials["variant"] != VARIANT_BASELINE
    settings = trials[noisy].groupby("optimizer")[["sigma", "layer_fraction"]].nunique()
    ambiguous = trials["optimizer"].isin(settings.index[(settings > 1).any(axis=1)]) & noisy
    suffix = (
        " (σ="
        + trials["sigma"].map("{:g}".format)
        + ", f="
        + trials["layer_fraction"].map("{:g}".format)
        + ")"
    )
    return trials["optimizer"].where(~ambiguous, trials["optimizer"] + suffix)


def _epochs_frame(client, runs: list, trials: pd.DataFrame) -> pd.DataFrame:
    history = [
        (run.info.run_id, key, m.step, m.timestamp, m.value)
        for run in runs
        for key in EPOCH_METRICS
        if key in run.data.metrics
        for m in client.get_metric_history(run.info.run_id, key)
    ]
    long = pd.DataFrame(history, columns=["run_id", "key", "epoch", "timestamp", "value"])
    long = long.sort_values("timestamp").drop_duplicates(["run_id", "key", "epoch"], keep="last")
    wide = long.pivot(index=["run_id", "epoch"], columns="key", values="value")
    wide = wide.reindex(columns=list(EPOCH_METRICS)).reset_index()
    wide.columns.name = None
    wide["epoch"] = wide["epoch"].astype(int)
    return (
        trials[EPOCH_KEYS]
        .merge(wide, on="run_id")
        .sort_values(["run_id", "epoch"], ignore_index=True)
    )
