"""A trial's worker killed by Ray's memory monitor: the trial is recorded as failed and the progress
line says why with the node's memory use; where Tune itself gives up (it has no handler for Ray's
OutOfMemoryError from a running trial and raises it as a RuntimeError) the driver stops with one
line and the resume command, never a traceback, and the study resumes.

The real monitor is made to kill every worker by a threshold of 0.1 % of the node's memory;
Tune's giving up is Ray's own exception shape, raised when a real study's fit has saved its state.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import ray
from ray import tune
from study_helpers import smoke_space, trial_runs

from harness.errors import HarnessError
from harness.study.memory_kills import memory_kill, memory_usage
from harness.study.runner import run_study

RAY_TEXT = (
    "1 worker(s) were killed due to the node running low on memory. Memory on the node "
    "(IP: 192.0.2.2, ID: 43d6f44e) was 22.81GB used / 23.54GB limit (0.969130)\n"
    "OOM kill reason: Memory usage 24158367744B exceeded threshold of 24012384256B\n"
    "Refer to the documentation on how to address the out of memory issue: https://docs.ray.io"
)


def _tune_gives_up() -> RuntimeError:
    """What Ray's actor manager raises when a running trial's task ends in OutOfMemoryError."""
    try:
        raise RuntimeError("Caught unexpected exception: ...") from ray.exceptions.OutOfMemoryError(
            RAY_TEXT)
    except RuntimeError as error:
        return error


def test_the_memory_use_is_read_from_rays_message():
    assert memory_usage(RAY_TEXT) == "22.81GB used / 23.54GB limit"
    assert memory_usage("Traceback ... ValueError: shapes (3,) and (4,)") is None
    assert memory_kill(_tune_gives_up()) == "22.81GB used / 23.54GB limit"
    other = RuntimeError("Caught unexpected exception")
    assert memory_kill(other) is None
    try:
        raise RuntimeError("x") from ValueError("y")
    except RuntimeError as error:
        assert memory_kill(error) is None


@pytest.mark.slow
def test_workers_killed_for_memory_are_failed_trials_and_the_driver_says_so(tmp_path):
    space, _ = smoke_space(tmp_path, max_failures=0)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "RAY_memory_usage_threshold": "0.001",
           "RAY_memory_monitor_refresh_ms": "100"}
    driver = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(space), "--storage-path",
         str(tmp_path / "results")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    output = driver.stdout + driver.stderr
    assert driver.returncode == 1, output
    assert "Traceback" not in output
    assert "killed by Ray's memory monitor (" in output and "GB used / " in output
    assert "0 trials ended, 12 failed" in output
    runs = trial_runs(uri, "smoke")
    assert len(runs) == 12 and {r.data.tags["status"] for r in runs} == {"failed"}


@pytest.mark.slow
def test_tune_giving_up_on_a_memory_kill_stops_in_one_line_and_the_study_resumes(
        tmp_path, monkeypatch):
    _, spec = smoke_space(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = str(tmp_path / "results")

    real_fit = tune.Tuner.fit

    def fit(self):  # Tune gives up after its state was saved, as it did in a real study
        real_fit(self)
        raise _tune_gives_up()

    with monkeypatch.context() as patch:
        patch.setattr(tune.Tuner, "fit", fit)
        with pytest.raises(HarnessError) as error:
            run_study(spec, tracking_uri=uri, storage_path=storage)
    message = str(error.value)
    assert "\n" not in message
    assert "memory monitor killed a trial's worker (22.81GB used / 23.54GB limit)" in message
    assert "resume with harness run --resume smoke" in message
    outcome = run_study(spec, tracking_uri=uri, storage_path=storage)
    assert (outcome.total, outcome.finished, outcome.errored) == (12, 12, 0)
    ray.shutdown()
