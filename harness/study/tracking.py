"""MLflow record of a study, written from the Ray Tune driver: one experiment, one run per trial.

`MLflowRecorder` is a Tune callback, so every MLflow write comes from one process (no "database
is locked" with the default SQLite store, however many trials run at once). A trial finds its
run by the tag `trial_key` (a stable id of its config), so a retried trial, a trial restored
after a node died and a study resumed with `harness run --resume` all continue their own run;
an epoch already logged for that run is never logged again (a trial restored from an older
checkpoint re-reports epochs: the first value stays). Names follow `run_schema`.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
from ray import tune

from harness.study.run_schema import (
    EPOCH_METRICS,
    FINAL_METRICS,
    RUN_KIND_TRIAL,
    STATUS_FAILED,
    STATUS_FINISHED,
    STATUS_INTERRUPTED,
    STATUS_RUNNING,
    TAG_PAIR,
    TAG_RUN_KIND,
    TAG_STATUS,
    TAG_STUDY,
    TAG_TRIAL_KEY,
    TAG_VARIANT,
)
from harness.study.space import flatten
from harness.study.tracking_uri import artifact_location

# Values a trial reports with its first epoch (again after each restore): tags of its run.
PROVENANCE_KEYS = ("devices", "tensorflow_version", "replicas", "ray_gpu_ids", "node_id",
                   "resumed_from_epoch")


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def ensure_experiment(client, name: str, tracking_uri: str) -> str:
    """The id of experiment `name`, created (with local artifacts for SQLite) when missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = artifact_location(tracking_uri)
    return client.create_experiment(name, artifact_location=location and Path(location).as_uri())


def close_running_runs(tracking_uri: str, experiment_name: str) -> int:
    """End the runs a stopped driver left RUNNING as FAILED, status tag `interrupted`.

    A later `harness run --resume` reopens them (same trial_key) and finishes them.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return 0
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
    for run in runs:
        client.set_tag(run.info.run_id, TAG_STATUS, STATUS_INTERRUPTED)
        client.set_terminated(run.info.run_id, status="FAILED")
    return len(runs)


def discard_trial_runs(tracking_uri: str, experiment_name: str) -> int:
    """Soft-delete a study's trial runs (MLflow keeps them in its trash) for `--restart`, so the
    restarted trials open new runs instead of continuing the old ones."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return 0
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.{TAG_RUN_KIND} = '{RUN_KIND_TRIAL}'", max_results=50000)
    for run in runs:
        client.delete_run(run.info.run_id)
    return len(runs)


class MLflowRecorder(tune.Callback):
    """Tune callback that mirrors every trial into its own MLflow run (see module docstring)."""

    def __init__(self, tracking_uri: str, experiment_name: str, study: str):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.study = study
        self._reset()

    def _reset(self):
        self._client = None
        self._experiment_id = None
        self._runs: dict[str, str] = {}  # trial_key → run_id
        self._last_epoch: dict[str, int] = {}  # run_id → last logged epoch
        self._status: dict[str, str] = {}  # run_id → status reported by the trial

    def __getstate__(self):  # Tune pickles callbacks with the experiment state
        return {k: self.__dict__[k] for k in ("tracking_uri", "experiment_name", "study")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
            self._experiment_id = ensure_experiment(self._client, self.experiment_name,
                                                    self.tracking_uri)
        return self._client

    # -- runs ------------------------------------------------------------------------------------
    def _run_id(self, trial) -> str:
        config = trial.config["trial"]
        key = config["trial_key"]
        if key in self._runs:
            return self._runs[key]
        client = self.client
        found = client.search_runs([self._experiment_id], f"tags.{TAG_TRIAL_KEY} = '{key}'",
                                   max_results=1)
        if found:
            run_id = found[0].info.run_id
            client.update_run(run_id, status="RUNNING")
            history = client.get_metric_history(run_id, "train_loss")
            self._last_epoch[run_id] = max((m.step for m in history), default=0)
        else:
            run_id = self._create_run(config)
            self._last_epoch[run_id] = 0
        self._runs[key] = run_id
        return run_id

    def _create_run(self, config: dict) -> str:
        import ray
        from mlflow.entities import Param

        tags = {
            TAG_RUN_KIND: RUN_KIND_TRIAL,
            TAG_STUDY: self.study,
            TAG_TRIAL_KEY: config["trial_key"],
            TAG_STATUS: STATUS_RUNNING,
            TAG_PAIR: config["base_optimizer"],
            TAG_VARIANT: config["variant"],
            "optimizer": config["optimizer"],
            "dataset": config["dataset"],
            "model": config["model"],
            "depth": str(config["depth"]),
            "seed": str(config["seed"]),
            "git_commit": _git_commit(),
            "ray_version": ray.__version__,
            "mlflow.runName": config["trial_key"],
        }
        run = self.client.create_run(self._experiment_id, tags=tags,
                                     run_name=config["trial_key"])
        params = [Param(k, str(v)[:6000]) for k, v in flatten(config).items()]
        for start in range(0, len(params), 100):
            self.client.log_batch(run.info.run_id, params=params[start:start + 100])
        return run.info.run_id

    # -- Tune hooks ------------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        self._run_id(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        from mlflow.entities import Metric

        run_id = self._run_id(trial)
        epoch = int(result.get("epoch", 0))
        if epoch <= self._last_epoch.get(run_id, 0):
            return  # re-reported after a restore from an older checkpoint: keep the first value
        now = int(time.time() * 1000)
        names = EPOCH_METRICS + tuple(m for m in FINAL_METRICS if m in result)
        metrics = [Metric(n, float(result[n]), now, epoch) for n in names if n in result]
        self.client.log_batch(run_id, metrics=metrics)
        self._last_epoch[run_id] = epoch
        for key in PROVENANCE_KEYS:
            if key in result:
                self.client.set_tag(run_id, key, str(result[key]))
        if "status" in result:
            self._status[run_id] = result["status"]

    def on_trial_complete(self, iteration, trials, trial, **info):
        run_id = self._run_id(trial)
        self._finish(trial, run_id, self._status.get(run_id, STATUS_FINISHED), "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        run_id = self._run_id(trial)
        error = getattr(trial, "error_msg", None) or ""
        if error:
            self.client.set_tag(run_id, "error", str(error).strip().splitlines()[-1][:500])
        self._finish(trial, run_id, STATUS_FAILED, "FAILED")

    def _finish(self, trial, run_id: str, status: str, mlflow_status: str) -> None:
        client = self.client
        client.set_tag(run_id, TAG_STATUS, status)
        with tempfile.TemporaryDirectory() as directory:
            config_path = Path(directory) / "config.json"
            pd.Series(trial.config["trial"]).to_json(config_path, indent=2)
            history = pd.DataFrame({
                name: {m.step: m.value for m in client.get_metric_history(run_id, name)}
                for name in EPOCH_METRICS
            }).rename_axis("epoch")
            history.to_csv(Path(directory) / "history.csv")
            client.log_artifact(run_id, str(config_path))
            client.log_artifact(run_id, str(Path(directory) / "history.csv"))
        client.set_terminated(run_id, status=mlflow_status)
