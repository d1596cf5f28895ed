"""A tuned study carried to a new store end to end (slow), on a real embedded Ray and real SQLite
MLflow stores. Whole: the study run in one store W and exported. Carried between phases: its
tuning in store A, `harness export`, `harness run FILE --state-from` runs only the finals in a
fresh store B, and `harness analyze --from` on the two exports gives W's tables number for
number. Carried mid-phase: a store left with half of each phase's trials ended goes on in store C
with the other half only, and makes W's choices and W's look."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
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


def _run(store: str, *more: str) -> list[str]:
    return ["run", "space.yaml", "--max-concurrent", "1", "--storage-path", store, *more]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The folder where the study ran whole in store W, analysed and exported (`exW`)."""
    folder = tmp_path_factory.mktemp("carry")
    shutil.copy(tiny_tuned_space(folder), folder / "space.yaml")
    uri = f"sqlite:///{folder}/w.db"
    _harness(_run("W"), uri, folder)
    _harness(["analyze", "tiny_tuned", "--out", "whole"], uri, folder)
    said = _harness(["export", "tiny_tuned", "--out", "exW", "--storage-path", "W"], uri, folder)
    assert "12 runs (final 4, tune 8)" in said and "12 ended trials" in said
    return folder


def test_tuning_in_one_store_finals_in_another_equal_the_study_run_whole(whole):
    first, second = f"sqlite:///{whole}/a.db", f"sqlite:///{whole}/b.db"
    _harness(_run("A", "--tuning-only"), first, whole)
    said = _harness(["export", "tiny_tuned", "--out", "exA", "--storage-path", "A"], first, whole)
    assert "8 runs (tune 8)" in said and "outcomes-tune.json" in said

    carried = _harness(["run", "exA/state/harness_space.yaml", "--state-from", "exA",
                        "--max-concurrent", "1", "--storage-path", "B"], second, whole)
    assert "state carried from exA" in carried and "choices read from" in carried
    assert sorted(r.data.tags["phase"] for r in trial_runs(second, "tiny_tuned")) == ["final"] * 4
    _harness(["export", "tiny_tuned", "--out", "exB", "--storage-path", "B"], second, whole)
    joined = _harness(["analyze", "--from", "exA", "--from", "exB", "--out", "joined"], second,
                      whole)
    assert "2 parts joined (12 runs)" in joined
    for name in COMPARED:
        assert filecmp.cmp(whole / "joined" / name, whole / "whole" / name, shallow=False), name


def test_a_store_left_mid_phase_goes_on_with_the_trials_it_had_not_ended(whole):
    """The state of a store left while its tuning ran (no outcomes, no choices yet), with half of
    the tuning trials and half of the finals ended there (the finals' key order: two of four)."""
    state = whole / "exMid" / "state"
    state.mkdir(parents=True)
    shutil.copy(whole / "exW" / "state" / "harness_space.yaml", state)
    ended = json.loads((whole / "exW" / "state" / "ended-trials.json").read_text())
    runs = {r.data.tags["trial_key"]: r.data.tags["phase"]
            for r in trial_runs(f"sqlite:///{whole}/w.db", "tiny_tuned")}
    tune, final = (sorted(k for k in ended if runs[k] == phase) for phase in ("tune", "final"))
    kept = tune[::2] + final[::2]
    (state / "ended-trials.json").write_text(json.dumps({k: ended[k] for k in kept}))

    uri = f"sqlite:///{whole}/c.db"
    said = _harness(_run("C", "--state-from", "exMid"), uri, whole)
    assert "4 of 8 trials ended in an earlier store (carried), 4 to run" in said
    assert "2 of 4 trials ended in an earlier store (carried), 2 to run" in said
    ran = {r.data.tags["trial_key"] for r in trial_runs(uri, "tiny_tuned")}
    assert ran == set(runs) - set(kept)  # the others, each once
    for name in ("choices.json", "looks.json"):
        assert json.loads((whole / "C" / "tiny_tuned" / name).read_text()) == \
            json.loads((whole / "W" / "tiny_tuned" / name).read_text()), name
