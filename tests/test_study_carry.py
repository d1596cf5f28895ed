"""A tuned study carried to a new store end to end (slow): its tuning runs in store A, `harness
export` saves A's runs and state, `harness run FILE --state-from` runs only the finals in a fresh
store B (a new MLflow database, a new storage path), and `harness analyze --from` on the two
exports gives the tables of the same study run whole in one store, number for number."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys

import pytest
from study_helpers import trial_runs
from test_study_tuned import tiny_tuned_space

pytestmark = pytest.mark.slow

COMPARED = ("summary.csv", "gains.csv", "paired_seeds.csv", "success.csv", "chosen.csv",
            "protocol.csv")


def _harness(args: list[str], uri: str, cwd) -> str:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_tuning_in_one_store_finals_in_another_equal_the_study_run_whole(tmp_path):
    space = str(tiny_tuned_space(tmp_path))
    first, second = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    run = ["run", space, "--max-concurrent", "1", "--storage-path"]
    _harness([*run, str(tmp_path / "A"), "--tuning-only"], first, tmp_path)
    said = _harness(["export", "tiny_tuned", "--out", "exA", "--storage-path", "A"], first,
                    tmp_path)
    assert "8 runs (tune 8)" in said and "outcomes-tune.json" in said

    carried = _harness(["run", "exA/state/harness_space.yaml", "--state-from", "exA",
                        "--max-concurrent", "1", "--storage-path", "B"], second, tmp_path)
    assert "state carried from exA" in carried and "choices read from" in carried
    assert sorted(r.data.tags["phase"] for r in trial_runs(second, "tiny_tuned")) == ["final"] * 4
    _harness(["export", "tiny_tuned", "--out", "exB", "--storage-path", "B"], second, tmp_path)
    joined = _harness(["analyze", "--from", "exA", "--from", "exB", "--out", "joined"], second,
                      tmp_path)
    assert "2 parts joined (12 runs)" in joined

    _harness([*run, str(tmp_path / "A")], first, tmp_path)  # the same study, whole, in store A
    _harness(["analyze", "tiny_tuned", "--out", "whole"], first, tmp_path)
    for name in COMPARED:
        assert filecmp.cmp(tmp_path / "joined" / name, tmp_path / "whole" / name,
                           shallow=False), name
