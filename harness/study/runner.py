"""A study: the grid of a search space run as Ray Tune trials, recorded in MLflow, resumable.

`run_study` connects to a Ray cluster (`address`, or `RAY_ADDRESS`) or starts an embedded local
Ray, checks the per-trial resources against the cluster, and runs one Tune trial per config of
`space.trial_configs` with `tune.with_resources`, `max_concurrent_trials`, `FailureConfig`,
per-epoch checkpoints and the `MLflowRecorder` + `ProgressPrinter` callbacks. Results go to
`storage_path/NAME` (local `./results` by default, or a URI every node can reach).

Rerunning the same study, or `harness run --resume NAME`, restores the Tuner and runs only what
is unfinished or errored (`Tuner.restore(resume_unfinished=True, resume_errored=True)`); the
recorder reattaches every trial to its own MLflow run. A restored study keeps the tracking URI
and concurrency it started with (they live in Tune's saved state). Ctrl-C or SIGTERM (`ray job
stop`) stops a study gracefully: its open runs end KILLED and the driver prints the command that
resumes it (`harness submit`'s own command for a submitted study, `RESUME_ENV`).

A tuned study (`tuning:` block, `harness.study.tuning`) runs its phases as Tune experiments
under `storage_path/NAME`: `tune` (K trials per arm), `screen` (with `tuning.screen`: the kept
points on the screening seeds), `tune-noise` and `screen-noise` (with `tuning.langevin:
noise_only`: the Langevin arms' σ at their plain twins' choices), then — once each arm's choice
is saved in `choices.json` — `final` (the chosen points and the matched-learning-rate controls on
the fresh seeds), or `final-look1`, `final-look2`, ... when the declared decision has looks
(`harness.study.looks`: after each look the declared tests, saved in `looks.json`; no further
look once every test is decided). A tuning phase's outcomes are saved as `outcomes-PHASE.json`
once it ended. Each phase resumes like a plain study; a saved choice or look is reused, never
made again. A study carried to a new store (`carry`) skips the trials that ended in the earlier
one and takes their outcomes from its `ended-trials.json`. MLflow gets one parent run per arm (`tracking.ensure_arm_runs`) with every trial as
its child, and a study with a declared decision one design run (`tracking.record_design`).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.study import saved_space
from harness.study.memory_kills import memory_kill
from harness.study.packs import PACK_MEMBERS, member_configs, packed
from harness.study.run_schema import OUTCOMES_FILE, PHASE_FINAL, PHASE_TUNE
from harness.study.space import StudySpec, trial_configs
from harness.study.stored_text import read_text, write_text
from harness.study.tracking_uri import check_credentials, resolve_tracking_uri

# The command that resumes a study submitted as a Ray job, set by `harness submit` (on the cluster
# `harness run --resume NAME` would not find it).
RESUME_ENV = "HARNESS_RESUME_COMMAND"
# Tune's saved experiment state, `experiment_state-<time>.json` beside the tuner.pkl
TUNE_STATE_PREFIX = "experiment_state-"


@dataclass
class StudyOutcome:
    total: int
    finished: int  # ended normally (finished or diverged)
    errored: int  # failed after all retries
    stopped: bool = False  # Ctrl-C outside a Tune phase (between the phases of a tuned study)

    @property
    def interrupted(self) -> bool:
        return self.stopped or self.finished + self.errored < self.total


def resolve_storage(storage_path: str | None, spec: StudySpec | None = None) -> str:
    path = storage_path or (spec.storage_path if spec else None) or "results"
    return path if "://" in path else str(Path(path).resolve())


# What the driver sets before Tune starts. One checkpoint per epoch is the design: Tune's
# "snapshotting too often" warning is noise. MLflow is the study's record: of Tune's own copies
# of every result only result.json is kept (`study_callbacks`: its results grid reads it); the
# CSV and TensorBoard copies took most of the driver's time per result (benchmarks/README.md,
# driver load).
DRIVER_ENVIRONMENT = {"TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
                      "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}


def _init_ray(address: str | None, verbose: bool, trial_cpus: float | None = None) -> bool:
    """Connect to a cluster or start an embedded local Ray; True when embedded. `trial_cpus`
    (the CPUs of `--max-concurrent` trials) caps the embedded Ray's CPUs (rounded up, at most
    what Ray finds on the machine): Tune keeps a resumed experiment's first concurrency limit, Ray's CPUs hold
    any run to the one asked now."""
    for key, value in DRIVER_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return address is None
    if address:
        ray.init(address=address, log_to_driver=verbose)
        return False
    # "local": always a fresh embedded instance, never a stray `ray start` cluster
    cpus = None
    if trial_cpus is not None:  # never more than Ray itself finds here (cgroup limits included)
        from ray._private.utils import get_num_cpus

        cpus = min(math.ceil(trial_cpus), int(get_num_cpus()))
    ray.init(address="local", include_dashboard=False, log_to_driver=verbose, num_cpus=cpus)
    return True


def _check_resources(spec: StudySpec, where: str, embedded: bool, out=print) -> None:
    """Refuse a trial that can never be placed on the embedded local Ray; on a cluster, whose
    autoscaler may still add GPU nodes, only say what is missing now."""
    import ray

    cluster = ray.cluster_resources()
    for field, have in (("gpu", cluster.get("GPU", 0)), ("cpu", cluster.get("CPU", 0))):
        want = getattr(spec.resources, field)
        if want <= have:
            continue
        message = (f"{where}: field 'resources.{field}' is {want:g} but the cluster has "
                   f"{have:g} {field.upper()}s; allowed: up to {have:g}")
        if embedded:
            raise HarnessError(message)
        out(f"warning: {message} now; trials wait until the autoscaler adds such nodes")


def _trainable(spec: StudySpec):
    """One trial per Tune trial, or (a packed study) one pack per Tune trial: `train_pack`, which
    trains a trial that `packing: auto` left unpacked as `train_trial` does (one trainable name
    per study, as Tune's restore asks)."""
    from ray import tune

    if spec.packing:
        from harness.study.pack_trial import train_pack as trainable
    else:
        from harness.study.trial import train_trial as trainable
    return tune.with_resources(trainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})


def study_callbacks(tracking_uri: str, experiment_name: str, study: str, total: int, epochs: int,
                    stream=None, blind: bool = False) -> list:
    """The driver's Tune callbacks: the MLflow record, the progress line (`blind`: without the
    best result, for a declared study's finals), and Tune's result.json per trial (what its
    results grid reads)."""
    from ray.tune.logger import JsonLoggerCallback

    from harness.study.progress import ProgressPrinter
    from harness.study.tracking import MLflowRecorder

    return [MLflowRecorder(tracking_uri, experiment_name, study),
            ProgressPrinter(total, epochs, stream=stream, blind=blind), JsonLoggerCallback()]


def _new_tuner(spec: StudySpec, configs: list[dict], storage: str, name: str,
               tracking_uri: str, max_concurrent: int | None, total: int):
    from ray import tune

    def trial_name(trial):
        return trial.config["trial"]["trial_key"]

    return tune.Tuner(
        _trainable(spec),
        param_space={"trial": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent or spec.max_concurrent_trials,
            # keep worker processes (TensorFlow imported) between trials: the trial resets
            # Keras' session, dtype policy and seeds itself. Not for packs: a worker that trained
            # pack after pack grew (dense-40/50 packs of 16 on MNIST: 5.8-6.2 GB resident after
            # its first pack, 7.6-8.0 GB half an hour later), so each pack gets a fresh process
            # (seconds of TensorFlow start against minutes of training)
            reuse_actors=not any(PACK_MEMBERS in config for config in configs),
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=study_callbacks(tracking_uri, spec.experiment_name, spec.name, total,
                                      spec.epochs, blind=spec.decision is not None
                                      and name.startswith(PHASE_FINAL)),
            verbose=0,
        ),
    )


def _resumable(experiment_dir: str) -> bool:
    """Whether Tune can restore `experiment_dir`: a Tuner was built there and Tune saved its
    experiment state. A Tuner writes its tuner.pkl when built; a driver stopped before Tune's
    first state save leaves that file alone, and a restore from it fails inside Tune (its
    trials have no config)."""
    import pyarrow.fs
    from ray import tune

    if not tune.Tuner.can_restore(experiment_dir):
        return False
    filesystem, path = pyarrow.fs.FileSystem.from_uri(experiment_dir)  # resolve_storage's
    return any(Path(info.path).name.startswith(TUNE_STATE_PREFIX)
               for info in filesystem.get_file_info(pyarrow.fs.FileSelector(path)))


def _fit(spec: StudySpec, configs: list[dict], storage: str, name: str, tracking_uri: str,
         max_concurrent: int | None, out, label: str, ended: dict[str, dict] | None = None):
    """Run (or resume) one Tune experiment `storage/name`; returns (outcome, Tune results). The
    trials in `ended` (ended in an earlier store, `carry.read_ended`) are not run: they count as
    ended, and the caller takes their outcomes from `ended`."""
    from ray import tune

    from harness.study.run_schema import ENDED_NORMALLY, STATUS_FAILED
    from harness.study.tracking import finished_trial_keys, trial_statuses

    carried = {c["trial_key"] for c in configs} & set(ended or {})
    keys = {c["trial_key"] for c in configs} - carried
    experiment_dir = f"{storage.rstrip('/')}/{name}"
    restorable = _resumable(experiment_dir)
    if not restorable and tune.Tuner.can_restore(experiment_dir):
        out(f"{label}: stopped before Tune saved any state; it starts afresh")
    if restorable:
        done = len(carried) + len(finished_trial_keys(tracking_uri, spec.experiment_name) & keys)
        out(f"resuming {label}: {done} of {len(configs)} trials finished, "
            f"{len(configs) - done} to go")
        tuner = tune.Tuner.restore(experiment_dir, trainable=_trainable(spec),
                                   resume_unfinished=True, resume_errored=True)
    else:
        runs = [c for c in configs if c["trial_key"] not in carried]
        if carried:
            out(f"{label}: {len(carried)} of {len(configs)} trials ended in an earlier store "
                f"(carried), {len(runs)} to run")
        if not runs:
            return StudyOutcome(len(configs), len(carried), 0), []
        out(f"{label}: {len(runs)} trials, results in {experiment_dir}")
        if spec.packing:
            runs, lines = packed(spec, runs)
            for line in lines:
                out(f"{label}: {line}")
        tuner = _new_tuner(spec, runs, storage, name, tracking_uri, max_concurrent, len(configs))
    in_main_thread = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if in_main_thread else None
    try:
        results = tuner.fit()
    except RuntimeError as error:
        memory = memory_kill(error)
        if memory is None:
            raise
        raise HarnessError(
            f"{label}: Ray's memory monitor killed a trial's worker ({memory}) and Tune stopped; "
            f"every ended run is kept: resume with {_resume_command(spec)} once memory is free "
            "(or with fewer trials at once: --max-concurrent 1)"
        ) from None
    finally:
        # Tune leaves its own SIGINT handler installed after fit(): a Ctrl-C between two
        # phases would then be swallowed; restore the driver's so it stops the study.
        if in_main_thread:
            signal.signal(signal.SIGINT, handler)
    # Stopped by Ctrl-C, Tune marks the unfinished trials TERMINATED too: what ended normally
    # is what the recorder closed as finished or diverged, what failed it closed as failed (a
    # trial whose worker died before its first result has no config in Tune's results).
    statuses = trial_statuses(tracking_uri, spec.experiment_name)
    finished = len(carried) + sum(statuses.get(k) in ENDED_NORMALLY for k in keys)
    errored = sum(statuses.get(k) == STATUS_FAILED for k in keys)
    return StudyOutcome(len(configs), finished, errored), results


def _member_frames(results):
    """(trial config, its per-epoch frame or None when it errored) for every trial of a phase's
    Tune results (a pack's result: one entry per member, from its columns `members/KEY/...`).
    An epoch re-reported after a restore keeps its first value (as in MLflow)."""
    for result in results:
        config = result.config["trial"]
        for member in member_configs(config):
            frame = result.metrics_dataframe if result.error is None else None
            prefix = f"{PACK_MEMBERS}/{member['trial_key']}/" if PACK_MEMBERS in config else ""
            if frame is not None and prefix:
                frame = frame.filter(like=prefix)
                frame.columns = [c[len(prefix):] for c in frame.columns]
            if frame is not None and "epoch" in frame:
                frame = frame.dropna(subset=["epoch"]).drop_duplicates("epoch", keep="first")
                frame = frame.sort_values("epoch")
            else:
                frame = None
            yield member, frame


def _status(frame) -> str:
    from harness.study.run_schema import STATUS_FINISHED

    statuses = frame["status"].dropna() if "status" in frame else []
    return statuses.iloc[-1] if len(statuses) else STATUS_FINISHED


def _tuning_outcomes(results, metric: str) -> dict[str, tuple[str, list[float]]]:
    """trial_key -> (status, per-epoch values of `metric`) of a tuning phase."""
    from harness.study.run_schema import STATUS_FAILED

    outcomes = {}
    for member, frame in _member_frames(results):
        if frame is None or metric not in frame:
            outcomes[member["trial_key"]] = (STATUS_FAILED, [])
        else:
            outcomes[member["trial_key"]] = (_status(frame), [float(v) for v in frame[metric]])
    return outcomes


def _final_outcomes(results) -> list[dict]:
    """One record per final trial: arm, seed, status and test accuracy (None when none)."""
    from harness.study.run_schema import STATUS_FAILED

    records = []
    for member, frame in _member_frames(results):
        status, accuracy = STATUS_FAILED, None
        if frame is not None:
            status = _status(frame)
            values = frame["test_accuracy"].dropna() if "test_accuracy" in frame else []
            accuracy = float(values.iloc[-1]) if len(values) else None
        records.append({"trial_key": member["trial_key"], "arm": member["arm"],
                        "seed": member["seed"], "status": status, "test_accuracy": accuracy})
    return records


def _choices_table(spec: StudySpec, choices) -> str:
    from harness.study import tuning

    lines = []
    for name, choice in choices.items():
        values = ", ".join(f"{k}={v:g}" for k, v in choice.values.items())
        mean = "mean " if spec.tuning.screen else ""
        if choice.point == tuning.GIVEN_POINT:
            lines.append(f"  {name}: {values} (given)")
            continue
        scored = f"{mean}{spec.tuning.metric} {choice.score:.4f}" if choice.trained else \
            "no tuning trial finished"
        lines.append(f"  {name}: point {choice.point} ({values}), {scored}")
    return "\n".join(lines)


def _tuning_phase(spec: StudySpec, configs: list[dict], study_dir: str, phase: str,
                  tracking_uri: str, max_concurrent: int | None, out):
    """Run (or resume) one tuning phase; its outcomes are saved beside the study once it ended,
    so a later phase never needs its Tune state again. Returns (StudyOutcome, outcomes)."""
    import json

    from harness.study import carry

    uri = f"{study_dir}/{OUTCOMES_FILE.format(phase)}"
    saved = read_text(uri)
    if saved is not None:
        return StudyOutcome(len(configs), len(configs), 0), {
            k: tuple(v) for k, v in json.loads(saved).items()}
    ended = carry.read_ended(study_dir)
    outcome, results = _fit(spec, configs, study_dir, phase, tracking_uri, max_concurrent, out,
                            f"study {spec.name!r} phase {phase}", ended)
    if outcome.interrupted:
        return outcome, None
    outcomes = {**carry.tuning_outcomes(ended, configs),
                **_tuning_outcomes(results, spec.tuning.metric)}
    write_text(uri, json.dumps(outcomes))
    return outcome, outcomes


def _add(a: StudyOutcome, b: StudyOutcome) -> StudyOutcome:
    return StudyOutcome(a.total + b.total, a.finished + b.finished, a.errored + b.errored)


def _tune(spec: StudySpec, study_dir: str, tracking_uri: str, max_concurrent: int | None, out):
    """Every round of tuning (and screening) not yet chosen; returns (StudyOutcome, choices),
    choices None when interrupted. A saved choice is never made again."""
    from harness.study import tuning

    choices_uri = f"{study_dir}/{tuning.CHOICES_FILE}"
    saved = read_text(choices_uri)
    if spec.tuning.chosen is not None:
        choices = tuning.given_choices(spec)
        if not saved:
            write_text(choices_uri, tuning.choices_to_json(choices))
        out(f"study {spec.name!r}: no tuning, the choices are given (tuning.chosen, from "
            f"{spec.tuning.chosen_from}), saved in {choices_uri}\n" +
            _choices_table(spec, choices))
        return StudyOutcome(0, 0, 0), choices
    choices = tuning.choices_from_json(saved) if saved else {}
    total = StudyOutcome(0, 0, 0)
    for index, round_arms in enumerate(tuning.rounds(spec)):
        suffix = "" if index == 0 else "-noise"
        trials = len(round_arms) * spec.tuning.trials_per_arm
        if all(arm.name in choices for arm in round_arms):
            total = _add(total, StudyOutcome(trials, trials, 0))  # counted when it ran
            out(f"study {spec.name!r}: tuning{suffix} done ({trials} trials), choices read "
                f"from {choices_uri}")
            continue
        stage_one = tuning.tune_configs(spec, round_arms, choices)
        outcome, outcomes = _tuning_phase(spec, stage_one, study_dir, PHASE_TUNE + suffix,
                                          tracking_uri, max_concurrent, out)
        total = _add(total, outcome)
        if outcomes is None:
            return total, None
        screened = []
        if spec.tuning.screen:
            screened = tuning.screen_configs(spec, stage_one, outcomes, tuning.failed_score(spec))
            outcome, more = _tuning_phase(spec, screened, study_dir, tuning.STAGE_SCREEN + suffix,
                                          tracking_uri, max_concurrent, out)
            total = _add(total, outcome)
            if more is None:
                return total, None
            outcomes = {**outcomes, **more}
        chosen = tuning.choose(spec, outcomes, stage_one, screened)
        choices = {**choices, **chosen}
        write_text(choices_uri, tuning.choices_to_json(choices))
        out(f"study {spec.name!r}: chosen by {spec.tuning.metric} "
            f"({spec.tuning.score_epoch} epoch, {spec.tuning.mode}"
            f"{', mean over the screening seeds' if screened else ''}), saved in "
            f"{choices_uri}\n" + _choices_table(spec, chosen))
    return total, choices


def _trained_summary(spec: StudySpec, study_dir: str, choices) -> list[str]:
    """How often each arm's tuning trials trained (`tuning.trained_lines`), from the saved
    outcomes of every tuning round."""
    import json

    from harness.study import looks, tuning

    threshold = looks.success_threshold(spec)
    lines = []
    for index, round_arms in enumerate(tuning.rounds(spec)):
        suffix = "" if index == 0 else "-noise"
        saved = [read_text(f"{study_dir}/{OUTCOMES_FILE.format(stage + suffix)}")
                 for stage in (PHASE_TUNE, tuning.STAGE_SCREEN)]
        if saved[0] is None:
            continue
        outcomes = {k: tuple(v) for text in saved if text for k, v in json.loads(text).items()}
        stage_one = tuning.tune_configs(spec, round_arms, choices)
        screened = tuning.screen_configs(spec, stage_one, outcomes, tuning.failed_score(spec)) \
            if spec.tuning.screen else []
        lines += tuning.trained_lines(spec, stage_one, screened, outcomes, choices, threshold)
    if not lines:
        return []
    return [f"tuning outcomes (trained: {spec.tuning.metric} above {threshold:.4f} at the last "
            "epoch):", *lines]


def _run_tuned(spec: StudySpec, storage: str, tracking_uri: str, max_concurrent: int | None,
               out, tuning_only: bool = False) -> StudyOutcome:
    """The phases of a tuned study (see the module docstring); with `tuning_only`, the tuning
    phases only (the finals wait for a decision declared from their outcomes)."""
    from harness.study import carry, looks
    from harness.study.tracking import (
        ensure_arm_runs,
        finish_arm_runs,
        record_choices,
        record_design,
    )

    study_dir = f"{storage.rstrip('/')}/{spec.name}"
    ensure_arm_runs(tracking_uri, spec)
    total, choices = _tune(spec, study_dir, tracking_uri, max_concurrent, out)
    if choices is None:
        return total
    record_choices(tracking_uri, spec, choices)
    if tuning_only:
        for line in _trained_summary(spec, study_dir, choices):
            out(f"study {spec.name!r}: {line}")
        return total
    for line in looks.control_lines(spec, choices):
        out(f"study {spec.name!r}: {line}")
    state_uri = f"{study_dir}/{looks.LOOKS_FILE}"
    saved = read_text(state_uri)
    state = looks.LookState.from_json(saved) if saved else looks.LookState()
    if state.looks and spec.decision is not None:  # a stop inside the last record is mended
        record_design(tracking_uri, spec, state, choices, saved_space.declared(study_dir))
    plan = looks.seed_counts(spec)
    ended = carry.read_ended(study_dir)
    for index, count in enumerate(plan):
        earlier = plan[index - 1] if index else 0
        configs = looks.look_configs(spec, choices, earlier, count,
                                     looks.decided_before(state, index))
        if index < len(state.looks):
            total = _add(total, StudyOutcome(len(configs), len(configs), 0))
            continue
        if state.stopped:
            break
        phase = PHASE_FINAL if len(plan) == 1 else f"{PHASE_FINAL}-look{index + 1}"
        label = f"study {spec.name!r} phase {phase}"
        if len(plan) > 1:
            label += f" (seeds {earlier + 1}-{count} of at most {plan[-1]} per arm)"
        outcome, results = _fit(spec, configs, study_dir, phase, tracking_uri, max_concurrent,
                                out, label, ended)
        total = _add(total, outcome)
        if outcome.interrupted:
            return total
        order = {c["trial_key"]: i for i, c in enumerate(configs)}
        records = sorted(carry.final_records(ended, configs) + _final_outcomes(results),
                         key=lambda record: order[record["trial_key"]])
        state = looks.add_look(spec, choices, state, count, records)
        write_text(state_uri, state.to_json())
        for line in looks.look_lines(spec, state):
            out(f"study {spec.name!r}: {line}")
        if spec.decision is not None:
            record_design(tracking_uri, spec, state, choices, saved_space.declared(study_dir))
    finish_arm_runs(tracking_uri, spec)
    return total


def _resume_command(spec: StudySpec) -> str:
    return os.environ.get(RESUME_ENV) or f"harness run --resume {spec.name}"


def _stop_as_interrupt(signum, frame) -> None:
    """SIGTERM (`ray job stop`, `kill`) stops the study as Ctrl-C does: inside a Tune phase Tune's
    own SIGINT handler ends it gracefully, between phases a KeyboardInterrupt. (A Ray job's driver
    has SIGINT blocked, so the signal itself could not be sent on.)"""
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):  # SIGINT ignored, as in a background job of a script
        raise KeyboardInterrupt
    handler(signal.SIGINT, frame)


@contextlib.contextmanager
def _sigterm_stops_the_study():
    if threading.current_thread() is not threading.main_thread():  # no signals there
        yield
        return
    previous = signal.signal(signal.SIGTERM, _stop_as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_study(
    spec: StudySpec,
    *,
    where: str = "search space",
    address: str | None = None,
    tracking_uri: str | None = None,
    storage_path: str | None = None,
    max_concurrent: int | None = None,
    restart: bool = False,
    tuning_only: bool = False,
    verbose: bool = False,
    out=print,
) -> StudyOutcome:
    """Run (or resume) the whole study; returns how many trials ended and how. With
    `tuning_only`, a tuned study stops once every arm's choice is saved."""
    import shutil

    from harness.study.tracking import close_running_runs, discard_trial_runs

    tracking_uri = resolve_tracking_uri(tracking_uri)
    check_credentials(tracking_uri)  # a refused password: one line, before Ray starts
    storage = resolve_storage(storage_path, spec)
    experiment_dir = f"{storage.rstrip('/')}/{spec.name}"
    if tuning_only and spec.tuning is None:
        raise HarnessError(f"{where}: --tuning-only: study {spec.name!r} has no tuning block "
                           "(allowed for tuned studies only)")
    if not restart:  # what a rerun may change: one line, before Ray starts
        saved_space.amend(spec, experiment_dir, where, out)
    embedded = _init_ray(address, verbose, None if max_concurrent is None
                         else max_concurrent * spec.resources.cpu)
    _check_resources(spec, where, embedded, out)
    if not embedded:  # trials on other nodes, and a job's working directory that goes away
        from harness.study.limits import check_cluster_storage

        check_cluster_storage(storage_path or spec.storage_path, where, out)

    if restart:
        if "://" in experiment_dir:
            raise HarnessError("--restart needs local storage; delete the study's folder on "
                               f"{experiment_dir} yourself")
        shutil.rmtree(experiment_dir, ignore_errors=True)
        discarded = discard_trial_runs(tracking_uri, spec.experiment_name)
        out(f"restart: old Tune state removed, {discarded} old MLflow runs moved to MLflow's trash")
    if not any(_resumable(d) for d in (experiment_dir, f"{experiment_dir}/{PHASE_TUNE}")):
        out(f"study {spec.name!r}: MLflow {tracking_uri} (experiment {spec.experiment_name!r})")
        saved_space.save(spec, experiment_dir)
    elif max_concurrent is not None and not embedded:
        out(f"warning: --max-concurrent {max_concurrent} holds the phases not yet started; on a "
            "cluster the phase being resumed keeps the limit it started with")

    try:
        with _sigterm_stops_the_study():
            if spec.tuning is None:
                from harness.study.carry import read_ended

                outcome, _ = _fit(spec, trial_configs(spec), storage, spec.name, tracking_uri,
                                  max_concurrent, out, f"study {spec.name!r}",
                                  read_ended(experiment_dir))
            else:
                outcome = _run_tuned(spec, storage, tracking_uri, max_concurrent, out,
                                     tuning_only)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM outside Tune's own handling (between phases)
        outcome = None
    finally:
        closed = close_running_runs(tracking_uri, spec.experiment_name)
    if outcome is None:
        out(f"study {spec.name!r} interrupted between phases; resume with: "
            f"{_resume_command(spec)}")
        return StudyOutcome(0, 0, 0, stopped=True)
    total = outcome.total
    if outcome.interrupted or closed:
        out(f"study {spec.name!r} interrupted: {outcome.finished + outcome.errored}/{total} trials "
            f"ended; resume with: {_resume_command(spec)}")
    elif tuning_only:
        out(f"study {spec.name!r}: tuning done ({outcome.finished} trials ended, "
            f"{outcome.errored} failed); the finals have not started. Declare the decision from "
            f"the outcomes above in the file's decision: block, then `harness run {where}` runs "
            "the finals (the file may change only there and in tuning.final_seeds)")
    else:
        out(f"study {spec.name!r} done: {outcome.finished} trials ended, {outcome.errored} failed; "
            f"analyse with: harness analyze {spec.experiment_name}")
    return outcome
