"""MLflow record of a study, written from the Ray Tune driver: one experiment, one run per trial.

`MLflowRecorder` is a Tune callback, so every MLflow write comes from one process (no "database
is locked" with the default SQLite store, however many trials run at once). A trial finds its
run by the tag `trial_key` (a stable id of its config), so a retried trial, a trial restored
after a node died and a study resumed with `harness run --resume` all continue their own run;
an epoch already logged for that run is never logged again (a trial restored from an older
checkpoint re-reports epochs: the first value stays). Names follow `run_schema`. A packed
study's Tune trial is a pack (`packs`): each member still gets its own run, tagged `pack` and
`pack_size`, ended as soon as the member ends; a run that ended normally is never reopened.

The recorder never makes Tune wait on the store: its hooks only queue the write (`SerialWriter`,
one background thread, writes in order; an epoch's metrics of many runs, queued while the store
was busy, go out as one `log-batch` per run). Everything queued is written before Tune saves its
experiment state (`get_state`, called inside that save, before the state is copied to the storage
path a resume reads), and when the experiment ends or is stopped (`on_experiment_end`). So a
driver killed with writes still queued loses only reports newer than the state a resume starts
from: those epochs are trained and reported again, and logged once.

A tuned study also has one parent run per arm (`ensure_arm_runs`, made by the runner before the
first trial; found again by its `arm` tag): every trial of the arm, tuning and final, is its
child (`mlflow.parentRunId`), so the UI shows the study as arms to expand. The arm's chosen
config becomes tags of the parent (`record_choices`).
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
from ray import tune

from harness.study.packs import PACK_MEMBERS, member_configs, member_results
from harness.study.run_schema import (
    CHOSEN_PREFIX,
    DESIGN_CHOICES,
    DESIGN_LOOKS,
    DESIGN_SPEC,
    ENDED_NORMALLY,
    EPOCH_METRICS,
    EXPERIMENT_KIND,
    FINAL_METRICS,
    RANGE_PREFIX,
    RUN_KIND_ARM,
    RUN_KIND_DESIGN,
    RUN_KIND_TRIAL,
    STATUS_FAILED,
    STATUS_FINISHED,
    STATUS_INTERRUPTED,
    STATUS_RUNNING,
    TAG_ARM,
    TAG_BUDGET,
    TAG_CONTROL,
    TAG_CONTROL_OF,
    TAG_DECISION,
    TAG_DECLARED,
    TAG_LOOKS,
    TAG_PACK,
    TAG_PACK_SIZE,
    TAG_PAIR,
    TAG_PARENT_RUN,
    TAG_PHASE,
    TAG_RUN_KIND,
    TAG_STAGE,
    TAG_STATUS,
    TAG_STUDY,
    TAG_TRIAL_KEY,
    TAG_VARIANT,
)
from harness.study.space import flatten
from harness.study.tracking_uri import artifact_location
from harness.study.writer import SerialWriter

MAX_TAG_CHARS = 8000  # MLflow's longest tag value
# MLflow's limits for one log-batch request
BATCH_METRICS, BATCH_TAGS = 1000, 100
# Values a trial reports with its first epoch (again after each restore): tags of its run.
PROVENANCE_KEYS = ("devices", "tensorflow_version", "replicas", "ray_gpu_ids", "node_id",
                   "gpu_memory_limit_mb", "resumed_from_epoch")
# and a pack's members: how the pack's step runs (graph mode or XLA, and why)
PACK_PROVENANCE_KEYS = ("pack_step",)


# The run tags of the code's provenance, and the variables `harness submit` sends them in (a Ray
# job's copy of the checkout has no .git to read them from).
GIT_TAGS = {"git_commit": "HARNESS_GIT_COMMIT", "git_dirty": "HARNESS_GIT_DIRTY"}


def checkout_provenance(folder: Path) -> dict[str, str]:
    """The `GIT_TAGS` of the git checkout holding `folder`: its commit (short hash) and whether its
    files differ from it ("true" when a tracked file changed or a file git does not ignore is
    untracked, else "false"); "unknown" outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=folder, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return dict.fromkeys(GIT_TAGS, "unknown")
    return {"git_commit": commit, "git_dirty": "true" if dirty else "false"}


@functools.cache
def _package_provenance() -> dict[str, str]:
    return checkout_provenance(Path(__file__).parent)


def git_provenance() -> dict[str, str]:
    """Every run's `GIT_TAGS`: as `harness submit` read them from the laptop's checkout, else
    those of the checkout this package runs from."""
    if GIT_TAGS["git_commit"] in os.environ:
        return {tag: os.environ.get(variable, "unknown") for tag, variable in GIT_TAGS.items()}
    return _package_provenance()


def ensure_experiment(client, name: str, tracking_uri: str) -> str:
    """The id of experiment `name`, created (with local artifacts for SQLite) when missing,
    tagged as a machine-learning experiment (`EXPERIMENT_KIND`)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = artifact_location(tracking_uri)
    return client.create_experiment(name, artifact_location=location and Path(location).as_uri(),
                                    tags=EXPERIMENT_KIND)


def run_name(config: dict) -> str:
    """The name the MLflow runs table shows: "L-Adam dense10 seed 2" (tuned: "L-Adam dense6
    tune3 seed 0", "L-Adam dense6 final seed 1"); the unique id stays in the tag trial_key."""
    phase = f" {config['phase']}{config['point'] if config['phase'] == 'tune' else ''}" \
        if "phase" in config else ""
    return f"{config['optimizer']} {config['model']}{config['depth']}{phase} seed {config['seed']}"


def close_running_runs(tracking_uri: str, experiment_name: str) -> int:
    """End the trial runs a stopped driver left RUNNING as KILLED (stopped, not broken), status
    tag `interrupted`.

    A later `harness run --resume` reopens them (same trial_key) and finishes them. Arm runs
    stay RUNNING until their study's final phase is done.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return 0
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING' and "
                              f"tags.{TAG_RUN_KIND} = '{RUN_KIND_TRIAL}'", max_results=50000)
    for run in runs:
        client.set_tag(run.info.run_id, TAG_STATUS, STATUS_INTERRUPTED)
        client.set_terminated(run.info.run_id, status="KILLED")
    return len(runs)


def discard_trial_runs(tracking_uri: str, experiment_name: str) -> int:
    """Soft-delete a study's trial and arm runs (MLflow keeps them in its trash) for
    `--restart`, so the restarted trials open new runs instead of continuing the old ones."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return 0
    runs = [run for kind in (RUN_KIND_TRIAL, RUN_KIND_ARM)  # MLflow's search has no tag IN
            for run in client.search_runs([experiment.experiment_id],
                                          f"tags.{TAG_RUN_KIND} = '{kind}'", max_results=50000)]
    for run in runs:
        client.delete_run(run.info.run_id)
    return len(runs)


def trial_statuses(tracking_uri: str, experiment_name: str) -> dict[str, str | None]:
    """trial key -> the status tag of its run (None while it runs) in the study's experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return {}
    runs = client.search_runs([experiment.experiment_id], f"tags.{TAG_RUN_KIND} = "
                              f"'{RUN_KIND_TRIAL}'", max_results=50000)
    return {run.data.tags[TAG_TRIAL_KEY]: run.data.tags.get(TAG_STATUS) for run in runs}


def finished_trial_keys(tracking_uri: str, experiment_name: str) -> set[str]:
    """The trial keys whose run ended normally (status finished or diverged): what a resumed
    study will not run again."""
    return {key for key, status in trial_statuses(tracking_uri, experiment_name).items()
            if status in ENDED_NORMALLY}


def _arm_runs(client, experiment_id: str) -> dict[str, str]:
    """arm name -> run id of the study's arm (parent) runs."""
    runs = client.search_runs([experiment_id], f"tags.{TAG_RUN_KIND} = '{RUN_KIND_ARM}'",
                              max_results=50000)
    return {run.data.tags[TAG_ARM]: run.info.run_id for run in runs}


def ensure_arm_runs(tracking_uri: str, spec) -> dict[str, str]:
    """One parent run per arm of a tuned study, made once (a resumed study finds them)."""
    import json

    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    from harness.study.tuning import arms

    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(client, spec.experiment_name, tracking_uri)
    existing = _arm_runs(client, experiment_id)
    tuning = spec.tuning
    for arm in arms(spec):
        if arm.name in existing:
            continue
        tags = {TAG_RUN_KIND: RUN_KIND_ARM, TAG_STUDY: spec.name, TAG_ARM: arm.name,
                TAG_PAIR: arm.optimizer.base, TAG_BUDGET: str(tuning.budget),
                TAG_VARIANT: arm.optimizer.variant,
                "optimizer": arm.optimizer.display, "depth": str(arm.depth),
                **git_provenance()}
        run = client.create_run(experiment_id, tags=tags, run_name=arm.name)
        params = {"budget": tuning.budget, "sampler": tuning.sampler, "sampler_seed": tuning.seed,
                  "metric": tuning.metric, "mode": tuning.mode,
                  "score_epoch": tuning.score_epoch, "tuning_seeds": json.dumps(tuning.seeds),
                  "final_seeds": json.dumps(tuning.final_seed_list), "depth": arm.depth,
                  "langevin_mode": tuning.langevin,
                  "screen": f"top {tuning.kept} on seeds {tuning.screen_seed_list}"
                  if tuning.screen else "none",
                  "matched_lr_controls": tuning.matched_lr_controls,
                  "base_optimizer": arm.optimizer.base,
                  "layer_fraction": arm.optimizer.layer_fraction}
        for name in arm.tuned:
            bounds = arm.ranges[name]
            params.update({f"{RANGE_PREFIX}{name}.low": bounds.low,
                           f"{RANGE_PREFIX}{name}.high": bounds.high,
                           f"{RANGE_PREFIX}{name}.log": bounds.log})
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        existing[arm.name] = run.info.run_id
    return existing


def record_choices(tracking_uri: str, spec, choices) -> None:
    """Tag each arm's parent run with its chosen point, score and hyper-parameter values."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = ensure_arm_runs(tracking_uri, spec)
    for name, choice in choices.items():
        tags = {f"{CHOSEN_PREFIX}point": choice.point, f"{CHOSEN_PREFIX}score": choice.score,
                f"{CHOSEN_PREFIX}trial_key": choice.trial_key,
                **{f"{CHOSEN_PREFIX}{k}": v for k, v in choice.values.items()}}
        for key, value in tags.items():
            client.set_tag(runs[name], key, str(value))


def record_design(tracking_uri: str, spec, state, choices, declared: str) -> str:
    """The study's declared decision and its looks so far, on one run tagged run_kind =
    "design" (made once, updated after every look): tag `decision` (the study file's block as
    JSON), tag `decision_declared` (when: `saved_space.declared`), tag `looks` (per look: seeds, each hypothesis' estimate and p, the family's
    decision), and the artifacts `looks.json` (the whole state), `spec.json` (the study as
    validated) and `choices.json` (each arm's choice), from which `harness analyze` redoes the
    declared tests."""
    import json
    import tempfile
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(client, spec.experiment_name, tracking_uri)
    runs = client.search_runs([experiment_id], f"tags.{TAG_RUN_KIND} = '{RUN_KIND_DESIGN}'")
    if runs:
        run_id = runs[0].info.run_id
    else:
        run_id = client.create_run(experiment_id, run_name=f"{spec.name}-design", tags={
            TAG_RUN_KIND: RUN_KIND_DESIGN, TAG_STUDY: spec.name}).info.run_id
    decision = spec.decision.model_dump(mode="json") if spec.decision else None
    taken = state.decision.get("looks") or [{} for _ in state.looks]
    summary = [{"count": look["count"], "alpha_spent": row.get("alpha_spent"),
                "decided": row.get("rejected", []), "results": {
                    name: {k: r[k] for k in ("estimate", "p_value", "n")}
                    for name, r in look.get("results", {}).items()}}
               for look, row in zip(state.looks, taken)]
    client.set_tag(run_id, TAG_DECISION, json.dumps(decision))
    client.set_tag(run_id, TAG_DECLARED, declared)
    rest = {k: v for k, v in state.decision.items() if k not in ("verdicts", "looks")}
    text = json.dumps({"looks": summary, **rest})
    if len(text) > MAX_TAG_CHARS:  # too many hypotheses for a tag: the results stay in looks.json
        text = json.dumps({"looks": [{k: v for k, v in look.items() if k != "results"}
                                     for look in summary], **rest})
    client.set_tag(run_id, TAG_LOOKS, text[:MAX_TAG_CHARS])
    from harness.study.tuning import choices_to_json

    with tempfile.TemporaryDirectory() as folder:
        for name, text in ((DESIGN_LOOKS, state.to_json()), (DESIGN_CHOICES, choices_to_json(
                choices)), (DESIGN_SPEC, spec.model_dump_json(indent=1))):
            (Path(folder) / name).write_text(text)
            client.log_artifact(run_id, str(Path(folder) / name))
    return run_id


def finish_arm_runs(tracking_uri: str, spec) -> None:
    """End the arm runs once the final phase is done."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    for run_id in ensure_arm_runs(tracking_uri, spec).values():
        client.set_terminated(run_id, status="FINISHED")


class MLflowRecorder(tune.Callback):
    """Tune callback that mirrors every trial into its own MLflow run (see module docstring).

    Requests are few, because a secured tracking server checks the password on every one:
    per trial one `create` (every tag known up front) and one `log-batch` of params; per epoch
    at most one `log-batch` (metrics, plus the provenance tags when the trial reports them; fewer
    when epochs queue up); at the end one `log-batch` (status tag), the artifacts and one
    `update`. The study's existing runs are looked up once per driver (one search), and a run's
    metric history is read only when a resumed run continues one that an earlier driver logged.
    Every write happens in the writer's thread (module docstring); the Tune hooks only queue.
    """

    def __init__(self, tracking_uri: str, experiment_name: str, study: str):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.study = study
        self._reset()

    def _reset(self):
        self._client = None
        self._experiment_id = None
        # trial_key → (run_id, status tag) of the runs earlier drivers made
        self._existing: dict[str, tuple[str, str]] | None = None
        self._runs: dict[str, str] = {}  # trial_key → run_id
        self._last_epoch: dict[str, int] = {}  # run_id → last logged epoch
        self._logged: dict[str, dict[int, dict[str, float]]] = {}  # run_id → epoch → metrics
        self._status: dict[str, str] = {}  # run_id → status reported by the trial
        self._ended: set[str] = set()  # run_ids closed (finished, diverged or failed)
        self._arm_runs: dict[str, str] = {}  # arm → parent run_id (tuned studies)
        self._unsent: dict[str, tuple[list, list]] = {}  # run_id → (metrics, tags) to send
        self._writer: SerialWriter | None = None

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
    def _existing_runs(self) -> dict[str, tuple[str, str]]:
        """trial_key → (run_id, status tag) of the trial runs already in the study (one search
        per driver)."""
        if self._existing is None:
            runs = self.client.search_runs([self._experiment_id],
                                           f"tags.{TAG_RUN_KIND} = '{RUN_KIND_TRIAL}'",
                                           max_results=50000)
            self._existing = {r.data.tags[TAG_TRIAL_KEY]: (r.info.run_id, r.data.tags.get(
                TAG_STATUS, "")) for r in runs if TAG_TRIAL_KEY in r.data.tags}
        return self._existing

    def _run_id(self, config: dict, pack: dict | None = None) -> str:
        """The run of the trial `config` (a member of `pack`, if packed): made on first sight,
        reopened when an earlier driver's run did not end normally; a run that ended normally
        stays closed (its trial, re-reported after a restore, adds nothing)."""
        key = config["trial_key"]
        if key in self._runs:
            return self._runs[key]
        client = self.client
        run_id, status = self._existing_runs().get(key, (None, None))
        if status in ENDED_NORMALLY:
            self._ended.add(run_id)
        elif run_id is not None:  # a resumed or retried trial continues its own run
            client.update_run(run_id, status="RUNNING")
            history = client.get_metric_history(run_id, "train_loss")
            self._last_epoch[run_id] = max((m.step for m in history), default=0)
        else:
            run_id = self._create_run(config, pack)
            self._last_epoch[run_id] = 0
        self._runs[key] = run_id
        self._logged[run_id] = {}
        return run_id

    def _create_run(self, config: dict, pack: dict | None) -> str:
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
            **git_provenance(),
            "ray_version": ray.__version__,
            "mlflow.runName": run_name(config),
        }
        if pack is not None:
            tags.update({TAG_PACK: pack["trial_key"], TAG_PACK_SIZE: str(len(pack[PACK_MEMBERS]))})
        if "arm" in config:  # a tuned study: the trial is a child of its arm's run
            if config.get("control_of", config["arm"]) not in self._arm_runs:
                self._arm_runs.update(_arm_runs(self.client, self._experiment_id))
            parent = config.get("control_of") or config["arm"]  # a control: its arm's child
            tags.update({TAG_PHASE: config["phase"], TAG_ARM: config["arm"],
                         TAG_PARENT_RUN: self._arm_runs[parent]})
            if "control" in config:
                tags.update({TAG_CONTROL: config["control"], TAG_CONTROL_OF: config["control_of"]})
            if "stage" in config:
                tags[TAG_STAGE] = config["stage"]
        run = self.client.create_run(self._experiment_id, tags=tags,
                                     run_name=run_name(config))
        params = [Param(k, str(v)[:6000]) for k, v in flatten(config).items()]
        for start in range(0, len(params), 100):
            self.client.log_batch(run.info.run_id, params=params[start:start + 100])
        return run.info.run_id

    def _log(self, run_id: str, result: dict) -> None:
        """One epoch's report of one trial: metrics (an epoch logged before keeps its first
        value) and provenance tags, gathered for the next `_send`."""
        from mlflow.entities import Metric, RunTag

        # provenance and status follow the latest report, even of an epoch logged before: a
        # trial restored from an older checkpoint tags where and from which epoch it resumed
        tags = [RunTag(key, str(result[key])) for key in PROVENANCE_KEYS + PACK_PROVENANCE_KEYS
                if key in result]
        if "status" in result:
            self._status[run_id] = result["status"]
        epoch = int(result.get("epoch", 0))
        metrics = []
        if epoch > self._last_epoch.get(run_id, 0):  # a re-reported epoch keeps its first value
            now = int(time.time() * 1000)
            names = EPOCH_METRICS + tuple(m for m in FINAL_METRICS if m in result)
            metrics = [Metric(n, float(result[n]), now, epoch) for n in names if n in result]
            self._last_epoch[run_id] = epoch
            self._logged[run_id][epoch] = {m.key: m.value for m in metrics}
        if metrics or tags:
            unsent_metrics, unsent_tags = self._unsent.setdefault(run_id, ([], []))
            unsent_metrics += metrics
            unsent_tags += tags

    def _send(self, run_id: str) -> None:
        """What `_log` gathered for the run, in as few `log-batch` requests as MLflow allows
        (a tag reported twice: its latest value)."""
        metrics, tags = self._unsent.pop(run_id, ([], []))
        tags = list({tag.key: tag for tag in tags}.values())
        while metrics or tags:
            self.client.log_batch(run_id, metrics=metrics[:BATCH_METRICS], tags=tags[:BATCH_TAGS])
            metrics, tags = metrics[BATCH_METRICS:], tags[BATCH_TAGS:]

    def _send_all(self) -> None:
        for run_id in list(self._unsent):
            self._send(run_id)

    # -- what the writer's thread does for each Tune hook -----------------------------------------
    def _start(self, config: dict) -> None:
        pack = config if PACK_MEMBERS in config else None
        for member in member_configs(config):
            self._run_id(member, pack)

    def _result(self, config: dict, reports: list[tuple[dict, dict]]) -> None:
        pack = config if PACK_MEMBERS in config else None
        for member, reported in reports:
            run_id = self._run_id(member, pack)
            if run_id in self._ended:
                continue
            self._log(run_id, reported)
            if pack is not None and "status" in reported:  # a member ends before its pack
                self._finish(member, run_id, reported["status"], "FINISHED")

    def _complete(self, config: dict) -> None:
        for member in member_configs(config):
            run_id = self._run_id(member)
            if run_id not in self._ended:
                self._finish(member, run_id, self._status.get(run_id, STATUS_FINISHED), "FINISHED")

    def _error(self, config: dict, error: str) -> None:
        for member in member_configs(config):
            run_id = self._run_id(member)
            if run_id not in self._ended:
                self._finish(member, run_id, STATUS_FAILED, "FAILED",
                             error=error.splitlines()[-1][:500] if error else None)

    # -- Tune hooks: each only queues its write ---------------------------------------------------
    @property
    def writer(self) -> SerialWriter:
        if self._writer is None:
            self._writer = SerialWriter(self._send_all, name="mlflow-recorder")
        return self._writer

    def on_trial_start(self, iteration, trials, trial, **info):
        self.writer.submit(self._start, trial.config["trial"])

    def on_trial_result(self, iteration, trials, trial, result, **info):
        config = trial.config["trial"]
        # copies: Tune reuses the result dict after the hook returns
        reports = [(member, dict(reported)) for member, reported in member_results(config, result)]
        self.writer.submit(self._result, config, reports)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.writer.submit(self._complete, trial.config["trial"])

    def on_trial_error(self, iteration, trials, trial, **info):
        error = str(getattr(trial, "error_msg", None) or "").strip()
        self.writer.submit(self._error, trial.config["trial"], error)

    def flush(self) -> None:
        """Return once every queued write is in the store."""
        if self._writer is not None:
            self._writer.flush()

    def get_state(self):
        """Called by Tune while it saves its experiment state: the store first catches up, so
        that state never names a checkpoint whose epochs are not logged. Nothing to restore."""
        self.flush()
        return None

    def on_experiment_end(self, trials, **info):
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def _history(self, run_id: str) -> pd.DataFrame:
        """The run's per-epoch metrics: what this driver logged, plus (for a run an earlier
        driver began) what the store holds."""
        logged = self._logged.get(run_id, {})
        if len(logged) < self._last_epoch.get(run_id, 0):
            return pd.DataFrame({
                name: {m.step: m.value for m in self.client.get_metric_history(run_id, name)}
                for name in EPOCH_METRICS
            }).rename_axis("epoch")
        frame = pd.DataFrame.from_dict(logged, orient="index")
        return frame.reindex(columns=list(EPOCH_METRICS)).sort_index().rename_axis("epoch")

    def _finish(self, config: dict, run_id: str, status: str, mlflow_status: str,
                error: str | None = None) -> None:
        from mlflow.entities import RunTag

        self._send(run_id)
        client = self.client
        tags = [RunTag(TAG_STATUS, status)] + ([RunTag("error", error)] if error else [])
        client.log_batch(run_id, tags=tags)
        with tempfile.TemporaryDirectory() as directory:
            pd.Series(config).to_json(Path(directory) / "config.json", indent=2)
            self._history(run_id).to_csv(Path(directory) / "history.csv")
            client.log_artifacts(run_id, directory)
        client.set_terminated(run_id, status=mlflow_status)
        self._ended.add(run_id)
