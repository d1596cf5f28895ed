"""Running a trial's or a pack's trainable as Tune's worker does, without Tune's driver loop.

`train_trial` / `train_pack` run in a Ray worker process (an actor, as Tune's trials do) inside
Ray's own function-trainable wrapper (`ray.tune.trainable.wrap_function`, the class Tune's trial
actors run): `tune.report` and `tune.get_checkpoint` are the real session calls, checkpoints are
persisted to a real `StorageContext`, and a restore goes through `Trainable.restore` as Tune's
does. The tests pass the results to the MLflow recorder's hooks themselves, with a stand-in for
Tune's `Trial` (`.config`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import ray
from ray.train._internal.storage import StorageContext
from ray.tune.trainable import wrap_function

from harness.study.pack_trial import train_pack
from harness.study.packs import member_configs
from harness.study.trial import train_trial

DUPLICATE = "__duplicate__"  # Tune's marker of the result a function trainable ends with


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


def start_worker():
    """One local Ray and one worker process (it imports the tests' modules: PYTHONPATH)."""
    tests = str(Path(__file__).resolve().parent)
    # the trial stays in the test's working directory (Tune would chdir to the trial's folder):
    # `make mutate`'s instrumented code reads its configuration from there
    ray.init(address="local", include_dashboard=False, num_cpus=1, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": tests, "RAY_CHDIR_TO_TRIAL_DIR": "0"}})
    return TrialWorker.remote(os.getcwd())


@ray.remote(num_cpus=1)
class TrialWorker:
    """Runs trials in a Ray worker process, as Tune's trial actors do, in the test's working
    directory."""

    def __init__(self, cwd: str):
        os.chdir(cwd)

    def run(self, config: dict, workdir: Path, attempt: str, restore=None) -> Reported:
        return run_in_this_process(config, workdir, attempt, restore)


def run_in_this_process(config: dict, workdir: Path, attempt: str, restore=None) -> Reported:
    """Drive `train_trial` (or `train_pack` for a pack's config) as Tune's worker does: train()
    per report, save() when it checkpoints."""
    trainable = train_pack if "members" in config else train_trial
    study = member_configs(config)[0]["study"]
    storage = StorageContext(str(workdir / "storage"), study, trial_dir_name=attempt)
    wrapped = wrap_function(trainable)({"trial": config}, storage=storage)
    if restore is not None:
        wrapped.restore(restore)
    reported = Reported()
    try:
        while DUPLICATE not in (result := wrapped.train()):
            reported.results.append(result)
            reported.checkpoints.append(
                wrapped.save().checkpoint if result.get("should_checkpoint") else None)
    finally:
        wrapped.stop()
    return reported


def run_trial(worker, config: dict, workdir: Path, attempt: str, restore=None) -> Reported:
    return ray.get(worker.run.remote(config, workdir, attempt, restore))
