"""Shared by the runner tests: synthetic search spaces and what a study left in MLflow."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from harness.study.run_schema import EPOCH_METRICS
from harness.study.space import parse_space

REPO = Path(__file__).resolve().parent.parent
TINY_DATA = {"name": "synthetic", "batch_size": 32, "validation_size": 60,
             "options": {"train_size": 300, "test_size": 100, "shape": [8, 8, 1]}}


def smoke_space(tmp_path: Path, **overrides) -> tuple[Path, object]:
    """search_spaces/smoke.yaml with its dataset swapped for tiny synthetic data (no files)."""
    data = yaml.safe_load((REPO / "search_spaces" / "smoke.yaml").read_text())
    data["dataset"] = dict(TINY_DATA)
    data.update(overrides)
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, parse_space(data, path)


def trial_runs(tracking_uri: str, experiment: str) -> list:
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    return client.search_runs([exp.experiment_id], "tags.run_kind = 'trial'", max_results=1000)


def epoch_steps(tracking_uri: str, run_id: str) -> dict[str, list[int]]:
    """For every per-epoch metric, the list of steps logged (duplicates would show twice)."""
    client = MlflowClient(tracking_uri)
    return {m: [p.step for p in client.get_metric_history(run_id, m)] for m in EPOCH_METRICS}


def interrupt_when(command: list[str], env: dict, cwd: Path, until: Path | str,
                   timeout: float) -> tuple[int, str]:
    """Start the driver `command`, send it Ctrl-C (SIGINT) once `until` holds (a file that
    exists, or a text the driver has printed), and return its exit code and output."""
    driver = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(driver.stdout), daemon=True)
    reader.start()

    def done() -> bool:
        return until.exists() if isinstance(until, Path) else any(until in line for line in lines)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done() and driver.poll() is None:
        time.sleep(0.5)
    assert done(), f"{until} did not come in time:\n{''.join(lines)}"
    driver.send_signal(signal.SIGINT)
    driver.wait(timeout=180)
    reader.join(timeout=30)
    return driver.returncode, "".join(lines)
