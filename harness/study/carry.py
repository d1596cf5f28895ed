"""A study carried to a new store: the small files that hold its progress between phases.

Between phases a study's progress lives in `storage/NAME/`, beside Tune's per-phase folders: the
copy of its space (`harness_space.yaml`), `declared.json`, each ended tuning phase's
`outcomes-PHASE.json`, `choices.json` and the finals' `looks.json`. Tune's folders serve only the
phase that is running. `save_state(study_dir, out)` copies those files into `out`;
`adopt_state(saved, study_dir)` puts them under a new store's study folder, where `harness run`
starts at the first phase that had not ended: an ended tuning phase is read back, never rerun,
and a choice or a look is never made again. The phase that was running goes on without the trials
that had ended in the earlier store (`ended-trials.json`: each one's status, the per-epoch values
of the tuning metric and its test accuracy, what the runner's choices and looks read of it); the
others run, fixed by their configs and seeds.

The MLflow runs stay in the store they were logged to: `harness export` writes them beside the
state, and `harness analyze --from` with each store's export joins the parts (`analysis.parts`).
"""

from __future__ import annotations

import fnmatch
import json

from harness.errors import HarnessError
from harness.study.looks import LOOKS_FILE
from harness.study.run_schema import OUTCOMES_FILE
from harness.study.saved_space import DECLARED_FILE, SPACE_COPY
from harness.study.stored_text import names, read_text, write_text
from harness.study.tuning import CHOICES_FILE

ENDED_FILE = "ended-trials.json"
STATE_PATTERNS = (SPACE_COPY, DECLARED_FILE, CHOICES_FILE, LOOKS_FILE, OUTCOMES_FILE.format("*"),
                  ENDED_FILE)
STATE_FOLDER = "state"  # where `harness export` puts them beside the study's runs


def state_names(folder: str) -> list[str]:
    """The state files in `folder` (a local folder or storage URI), sorted."""
    return sorted(name for name in names(folder)
                  if any(fnmatch.fnmatchcase(name, p) for p in STATE_PATTERNS))


def save_state(study_dir: str, out: str) -> list[str]:
    """Copy the study's state files from `study_dir` into `out`; returns their names (a
    HarnessError when `study_dir` holds no started study)."""
    saved = state_names(study_dir)
    if SPACE_COPY not in saved:
        raise HarnessError(f"{study_dir} holds no study ({SPACE_COPY} not found): give the "
                           "--storage-path the study ran with")
    for name in saved:
        write_text(f"{out.rstrip('/')}/{name}", read_text(f"{study_dir.rstrip('/')}/{name}"))
    return saved


def adopt_state(saved: str, study_dir: str) -> list[str]:
    """Copy the state files saved in `saved` (a `harness export` folder or its `state/`) into
    the new store's `study_dir`; returns their names. Refused in one line when `saved` holds no
    state or `study_dir` already holds a study (its own state would be overwritten)."""
    source = saved.rstrip("/")
    if SPACE_COPY not in state_names(source):
        source = f"{source}/{STATE_FOLDER}"
    files = state_names(source)
    if SPACE_COPY not in files:
        raise HarnessError(f"--state-from {saved}: no saved study state there ({SPACE_COPY} "
                           f"not found, nor under {STATE_FOLDER}/); allowed: a folder written "
                           "by `harness export`")
    if state_names(study_dir):
        raise HarnessError(f"--state-from {saved}: {study_dir} already holds a study; allowed: "
                           "a store where the study has not run (another --storage-path)")
    for name in files:
        write_text(f"{study_dir.rstrip('/')}/{name}", read_text(f"{source}/{name}"))
    return files


def read_ended(study_dir: str) -> dict[str, dict]:
    """trial key -> {"status", "values", "test_accuracy"} of the trials that ended in an earlier
    store (none when the study never moved)."""
    text = read_text(f"{study_dir.rstrip('/')}/{ENDED_FILE}")
    return json.loads(text) if text else {}


def write_ended(folder: str, ended: dict[str, dict]) -> None:
    """Save `ended` (as `read_ended` returns it) in `folder`."""
    write_text(f"{folder.rstrip('/')}/{ENDED_FILE}", json.dumps(ended, sort_keys=True))


def tuning_outcomes(ended: dict[str, dict], configs: list[dict]) -> dict[str, tuple]:
    """The ended trials among `configs` as a tuning phase's outcomes: key -> (status, values)."""
    return {c["trial_key"]: (ended[c["trial_key"]]["status"], ended[c["trial_key"]]["values"])
            for c in configs if c["trial_key"] in ended}


def final_records(ended: dict[str, dict], configs: list[dict]) -> list[dict]:
    """The ended trials among `configs` as a look's records (arm, seed, status, accuracy)."""
    return [{"trial_key": c["trial_key"], "arm": c["arm"], "seed": c["seed"],
             "status": ended[c["trial_key"]]["status"],
             "test_accuracy": ended[c["trial_key"]]["test_accuracy"]}
            for c in configs if c["trial_key"] in ended]
