"""Load a study (one MLflow experiment) into tidy pandas tables.

`Study.trials`: one row per trial run (tag run_kind = "trial"; analysis and arm runs are ignored)
    with run_id, trial_key, status, variant, pair, every param (the typed ones converted), the last
    logged value of every metric (for a per-epoch metric: its value at the last epoch), two derived
    columns best_val_accuracy = max over epochs of val_accuracy, epochs_done = last epoch logged,
    and for a tuned study `phase` ("tune" / "final"), `arm_id` (the stable arm name of its tag) and
    `point` (the tuning point's index); untuned studies have phase = arm_id = None.
`Study.epochs`: one row per (trial, epoch) with the trial's key columns and one column per
    per-epoch metric. A value logged twice for one epoch (a resumed trial) keeps the later one.
`Study.arms`: a tuned study's parent runs (run_kind = "arm"), one row per arm: arm_id, pair,
    variant, budget, the `chosen.*` tags and every param (ranges `range.<hyper>.low/high/log`,
    sampler, seeds...); empty for an untuned study.

What is compared is keyed by every hyperparameter that differs, so that two settings never pool
into one arm or cross-pair:
- `shared_config`: the shared hyperparameters (learning rate, epochs, batch size, any param but the
  Langevin-only `sigma`, `sigma_schedule.*`, `layer_fraction`) that take more than one value in
  some (dataset, model, depth, pair) group of the study, as "lr=0.005, epochs=10" ("" when none);
  a Langevin arm pairs only with the baseline of the same shared_config;
- `arm`: the optimizer's display name ("Adam", "L-Adam", "LL-Adam") followed by the shared_config
  and, on Langevin arms, the Langevin-only hyperparameters that take more than one value among one
  optimizer's noisy trials at one depth: "L-Adam (lr=0.005, σ=0.001)".
In a tuned study the tuned hyperparameters (those with a `range.*` on an arm run) vary by design
and are left out of both: its arm is its `arm_id`, and the tuning trials are analysed apart from
the finals (see `harness.analysis.report`).
A trial without a status tag never reported an outcome and counts as failed.

A run of the same seeds with more epochs (a rerun asked for more) is a continuation, not a
replication: its first epochs are the shorter run's. `continuations` finds such runs: two runs
that agree in CONTINUATION_KEYS and seed but not in `epochs`, whose learning metrics (losses and
accuracies, not timings) agree, to float32 rounding (relative AGREE_RTOL), from the first epoch
on: `shared_epochs` counts the leading epochs they agree on (all those both logged when only
the epoch count differs; fewer when a schedule stretched with the epochs parts them later).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.study.run_schema import (
    DESIGN_DECLARED,
    DESIGN_FILES,
    EPOCH_METRICS,
    RANGE_PREFIX,
    RUN_KIND_ARM,
    RUN_KIND_DESIGN,
    RUN_KIND_TRIAL,
    STATUS_FAILED,
    TAG_ARM,
    TAG_DECLARED,
    TAG_PACK,
    TAG_PAIR,
    TAG_PHASE,
    TAG_RUN_KIND,
    TAG_STATUS,
    TAG_TRIAL_KEY,
    TAG_VARIANT,
    VARIANT_BASELINE,
    variant_of,
)
from harness.study.tracking_uri import default_tracking_uri, find_experiment, mlflow_client

INT_PARAMS = ("depth", "seed", "epochs", "batch_size", "point")
FLOAT_PARAMS = ("sigma", "layer_fraction", "learning_rate")
TEXT_PARAMS = ("dataset", "model", "optimizer", "base_optimizer")
BEST_VAL_ACCURACY = "best_val_accuracy"
PACK_COLUMN = "pack"  # the Tune trial (pack) that trained a packed run; None when unpacked
EPOCHS_DONE = "epochs_done"
# Params that say which trial it is, not how it was configured.
IDENTITY_PARAMS = frozenset(
    {
        "dataset", "model", "depth", "optimizer", "base_optimizer", "variant", "seed",
        "trial_key", "study", "experiment", "data_dir", "phase", "arm", "point", "stage",
        "control", "control_of",
    }
)  # fmt: skip
LANGEVIN_ONLY = ("sigma", "layer_fraction", "sigma_schedule")
SHORT_NAMES = {"learning_rate": "lr", "sigma": "σ", "layer_fraction": "f", "batch_size": "batch"}
# What a compared group is: one arm at one depth of one (dataset, model).
ARM_KEYS = ["dataset", "model", "depth", "arm"]
# Trial columns repeated on every epoch row.
EPOCH_KEYS = ["run_id", *ARM_KEYS, "optimizer", "pair", "variant", "seed", "status", "phase"]
# What two runs share when one continues the other (besides their seed): all but `epochs`.
CONTINUATION_KEYS = [
    "dataset", "model", "depth", "optimizer", "pair", "variant", *FLOAT_PARAMS, "batch_size",
]  # fmt: skip
LEARNING_METRICS = ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]
AGREE_RTOL = 1e-5
CONTINUATION_COLUMNS = ["dataset", "model", "depth", "arms", "epochs", "seeds", "shared_epochs"]


@dataclass(frozen=True)
class Study:
    name: str
    experiment_id: str
    tracking_uri: str
    trials: pd.DataFrame
    epochs: pd.DataFrame
    metric_names: tuple[str, ...]
    arms: pd.DataFrame  # a tuned study's arm runs; empty when untuned
    # a study with a declared decision: its design run's files (run_schema.DESIGN_*), as text
    design: dict[str, str] | None = None

    @property
    def tuned(self) -> bool:
        """A tuned study: its trials carry a phase tag."""
        return bool(self.trials["phase"].notna().any())

    def require_metric(self, metric: str) -> None:
        """Raise a one-line HarnessError naming the logged metrics when `metric` is not one."""
        if metric not in self.metric_names:
            raise HarnessError(
                f"metric {metric!r} is not logged in study {self.name!r}; "
                f"logged: {', '.join(self.metric_names) or '(none)'}"
            )


def load_study(study: str, tracking_uri: str | None = None,
               per_arm: tuple[str, ...] = ()) -> Study:
    """Read every trial run (and, for a tuned study, every arm run) of the experiment named (or
    numbered) `study`. `per_arm` names params each arm chose for itself (e.g. a rerun of a tuned
    study's choices): like a tuned study's tuned params they are left out of arms and
    shared_config; a name that is no logged param is a one-line HarnessError."""
    tracking_uri = tracking_uri or default_tracking_uri()
    client = mlflow_client(tracking_uri)
    experiment = find_experiment(client, study, tracking_uri)
    runs = _search_all(
        client, experiment.experiment_id, f"tags.{TAG_RUN_KIND} = '{RUN_KIND_TRIAL}'"
    )
    if not runs:
        raise HarnessError(
            f"study {experiment.name!r} (experiment {experiment.experiment_id}) has no trial runs"
        )
    arms = _arms_frame(
        _search_all(client, experiment.experiment_id, f"tags.{TAG_RUN_KIND} = '{RUN_KIND_ARM}'")
    )
    logged_params = {key for run in runs for key in run.data.params}
    unknown = sorted(set(per_arm) - logged_params)
    if unknown:
        raise HarnessError(f"--per-arm {', '.join(unknown)}: not a param of study "
                           f"{experiment.name!r}; allowed: {', '.join(sorted(logged_params))}")
    trials = _trials_frame(runs, tuned_hypers(arms) + tuple(per_arm))
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
        arms=arms,
        design=_design_files(client, experiment.experiment_id),
    )


def _design_files(client, experiment_id: str) -> dict[str, str] | None:
    """The design run's files (spec, choices, looks) as text, and when its decision was declared
    (`DESIGN_DECLARED`, from its tag, when recorded); None without a design run."""
    import tempfile

    runs = _search_all(client, experiment_id, f"tags.{TAG_RUN_KIND} = '{RUN_KIND_DESIGN}'")
    if not runs:
        return None
    from mlflow.exceptions import MlflowException

    run_id = runs[0].info.run_id
    with tempfile.TemporaryDirectory() as folder:
        files = {}
        for name in DESIGN_FILES:
            try:
                path = client.download_artifacts(run_id, name, folder)
            except MlflowException:
                raise HarnessError(
                    f"the study's design run {run_id} has no {name} (recorded by an older "
                    "harness): resume the study with `harness run` once more to record it"
                ) from None
            files[name] = Path(path).read_text(encoding="utf-8")
    if TAG_DECLARED in runs[0].data.tags:
        files[DESIGN_DECLARED] = runs[0].data.tags[TAG_DECLARED]
    return files


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


def _arms_frame(runs: list) -> pd.DataFrame:
    rows = [
        {
            "run_id": run.info.run_id,
            **run.data.params,
            **{k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
            "arm_id": run.data.tags.get(TAG_ARM),
        }
        for run in runs
    ]
    return pd.DataFrame(rows).drop(columns=[TAG_ARM], errors="ignore")


def tuned_hypers(arms: pd.DataFrame) -> tuple[str, ...]:
    """The hyperparameters a tuned study searched: the <hyper> of its `range.<hyper>.low` params."""
    suffix = ".low"
    return tuple(
        sorted(
            {
                c[len(RANGE_PREFIX) : -len(suffix)]
                for c in arms.columns
                if c.startswith(RANGE_PREFIX) and c.endswith(suffix)
            }
        )
    )


def _trials_frame(runs: list, tuned: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for run in runs:
        params, tags = run.data.params, run.data.tags
        rows.append(
            {
                **params,
                "run_id": run.info.run_id,
                "trial_key": tags.get(TAG_TRIAL_KEY, run.info.run_name),
                "status": tags.get(TAG_STATUS, STATUS_FAILED),
                "pair": tags.get(TAG_PAIR, params.get("base_optimizer")),
                "variant": tags.get(TAG_VARIANT),
                "phase": tags.get(TAG_PHASE),
                "arm_id": tags.get(TAG_ARM),
                PACK_COLUMN: tags.get(TAG_PACK),
                "start_time": run.info.start_time,
                "end_time": run.info.end_time,
                **run.data.metrics,
            }
        )
    trials = pd.DataFrame(rows).drop(columns=["arm"], errors="ignore")
    logged = {key for run in runs for key in run.data.params}
    config = [c for c in trials.columns if c in logged and c not in IDENTITY_PARAMS]
    trials = trials.reindex(
        columns=trials.columns.union(TEXT_PARAMS + INT_PARAMS + FLOAT_PARAMS, sort=False)
    )
    for name in INT_PARAMS:
        trials[name] = pd.to_numeric(trials[name], errors="coerce").astype("Int64")
    for name in FLOAT_PARAMS:
        trials[name] = pd.to_numeric(trials[name], errors="coerce")
    untagged = trials["variant"].isna()
    trials.loc[untagged, "variant"] = [
        variant_of(s, f)
        for s, f in zip(trials.sigma[untagged], trials.layer_fraction[untagged], strict=True)
    ]
    return label_arms(trials, [c for c in config if not _is_tuned(c, tuned)])


def _is_tuned(param: str, tuned: tuple[str, ...]) -> bool:
    return param in tuned or param.removeprefix("hyper.") in tuned


def _langevin_only(param: str) -> bool:
    return param.split(".")[0] in LANGEVIN_ONLY


def _differing(trials: pd.DataFrame, params: list[str], by: list[str]) -> list[str]:
    """The params that take more than one value within some group of `by`."""
    if trials.empty:
        return []
    counts = trials[[*by, *params]].astype(str).groupby(by)[params].nunique()
    return [p for p in params if (counts[p] > 1).any()]


def _setting(trials: pd.DataFrame, params: list[str]) -> pd.Series:
    """ "lr=0.005, epochs=10" per trial, from the raw values of `params` ("" when none)."""

    def show(value) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    return pd.Series(
        [
            ", ".join(f"{SHORT_NAMES.get(p, p)}={show(row[p])}" for p in params)
            for _, row in trials[params].iterrows()
        ]
        if params
        else [""] * len(trials),
        index=trials.index,
        dtype=object,
    )


def label_arms(trials: pd.DataFrame, config: list[str]) -> pd.DataFrame:
    """Add `shared_config` and `arm` (see the module docstring) from the `config` params."""
    shared = [p for p in config if not _langevin_only(p)]
    shared = _differing(trials, shared, ["dataset", "model", "depth", "pair"])
    noisy = trials["variant"] != VARIANT_BASELINE
    langevin = [p for p in config if _langevin_only(p)]
    langevin = _differing(trials[noisy], langevin, ["dataset", "model", "depth", "optimizer"])
    trials = trials.assign(shared_config=_setting(trials, shared))
    own = _setting(trials, langevin).where(noisy, "")
    suffix = trials["shared_config"].str.cat(own, sep=", ").str.strip(", ")
    arm = trials["optimizer"].where(suffix == "", trials["optimizer"] + " (" + suffix + ")")
    return trials.assign(arm=arm)


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


def continuations(trials: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """CONTINUATION_COLUMNS: per pair of arms whose runs of the same seeds continue one another
    (see the module docstring), the two arms, their epoch counts, the seeds and the fewest
    leading epochs the runs of one seed share."""
    curves = {run: own.set_index("epoch") for run, own in epochs.groupby("run_id")}
    found = []
    for _, runs in trials.groupby([*CONTINUATION_KEYS, "seed"], dropna=False, sort=False):
        for short, long in itertools.combinations(runs.sort_values("epochs").itertuples(), 2):
            if short.epochs == long.epochs:
                continue
            shared = _shared_epochs(curves.get(short.run_id), curves.get(long.run_id))
            if shared:
                found.append(
                    {
                        "dataset": short.dataset,
                        "model": short.model,
                        "depth": short.depth,
                        "arms": f"{short.arm}; {long.arm}",
                        "epochs": f"{short.epochs}, {long.epochs}",
                        "seed": short.seed,
                        "shared_epochs": shared,
                    }
                )
    if not found:
        return pd.DataFrame(columns=CONTINUATION_COLUMNS)
    by = CONTINUATION_COLUMNS[:5]
    return (
        pd.DataFrame(found)
        .sort_values([*by, "seed"])
        .groupby(by, sort=False)
        .agg(
            seeds=("seed", lambda seeds: ", ".join(map(str, seeds))),
            shared_epochs=("shared_epochs", "min"),
        )
        .reset_index()
    )


def _shared_epochs(short: pd.DataFrame | None, long: pd.DataFrame | None) -> int:
    """How many leading epochs (from epoch 1) both runs logged with agreeing learning metrics."""
    if short is None or long is None:
        return 0
    metrics = [m for m in LEARNING_METRICS if m in short and m in long]
    epochs = short.index.intersection(long.index).sort_values()
    if not metrics or not len(epochs) or epochs[0] != 1:
        return 0
    agree = np.isclose(
        short.loc[epochs, metrics].to_numpy(dtype=float),
        long.loc[epochs, metrics].to_numpy(dtype=float),
        rtol=AGREE_RTOL,
        atol=0.0,
        equal_nan=True,
    ).all(axis=1)
    return int(np.cumprod(agree).sum())
