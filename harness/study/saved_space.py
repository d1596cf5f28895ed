"""The copy of a study's search space kept beside its Tune state, and what a rerun may change.

A study saves its space as `storage_path/NAME/harness_space.yaml` when it starts (`save`);
`harness run --resume NAME` reads it back (`load`). Rerunning the study from a file compares the
file with that copy (`amend`): the description may always change; the fields that only shape the
finals — `decision` and `tuning.final_seeds` — may change until the first final trial exists,
which is how a decision is declared from the tuning outcomes and before any final data
(`harness run FILE --tuning-only`, then the file with its `decision:` block). Any other change
is refused in one line naming the fields: the trials already run would no longer be the study
the file describes.

Every file lives beside Tune's state, on local disk or the storage URI (`stored_text`). A
decision declared that way is recorded beside the study (`declared.json`: when, and the
sha256 of the choices it was declared after), and on the study's design run in MLflow.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import HarnessError
from harness.study.space import StudySpec, parse_space
from harness.study.stored_text import delete, names, read_text, write_text

SPACE_COPY = "harness_space.yaml"
DECLARED_FILE = "declared.json"
ALWAYS_FREE = ("description",)
UNTIL_FINALS = ("decision", "tuning.final_seeds")
DECLARED_WITH_THE_FILE = "with the study file, before any trial"


def save(spec: StudySpec, experiment_dir: str) -> None:
    """Keep the fields the file set (defaults stay defaults: a tuned study refuses an explicit
    `seeds`), on local disk or the storage URI."""
    import yaml

    write_text(f"{experiment_dir}/{SPACE_COPY}",
               yaml.safe_dump(spec.model_dump(mode="json", exclude_unset=True), sort_keys=False))


def read(experiment_dir: str, build: bool = True) -> StudySpec | None:
    """The saved copy under `experiment_dir` (a folder or storage URI); None when there is none."""
    import yaml

    uri = f"{experiment_dir}/{SPACE_COPY}"
    text = read_text(uri)
    return None if text is None else parse_space(yaml.safe_load(text), Path(uri), build)


def load(name: str, storage: str, build: bool = True) -> StudySpec:
    """The search space of the study started before under `storage/name` (for --resume);
    without `build`, checked without TensorFlow (a dry run)."""
    spec = read(f"{storage.rstrip('/')}/{name}", build)
    if spec is None:
        known = sorted(folder for folder in names(storage)
                       if read_text(f"{storage.rstrip('/')}/{folder}/{SPACE_COPY}") is not None)
        raise HarnessError(
            f"no study named {name!r} under {storage}; studies there: {', '.join(known) or 'none'}"
        )
    return spec


def changed_fields(saved: StudySpec, given: StudySpec) -> list[str]:
    """The fields whose values differ, dotted (`tuning.final_seeds`), in the file's order."""
    old, new = saved.model_dump(mode="json"), given.model_dump(mode="json")
    changed = []
    for key in new:
        if old.get(key) == new[key]:
            continue
        if isinstance(old.get(key), dict) and isinstance(new[key], dict):
            changed += [f"{key}.{k}" for k in new[key] if old[key].get(k) != new[key][k]]
        else:
            changed.append(key)
    return changed


def finals_started(experiment_dir: str) -> bool:
    """Whether any final trial of the study exists: a final phase's Tune folder or a look."""
    return any(name == "looks.json" or name.startswith("final") for name in names(experiment_dir))


def amend(given: StudySpec, experiment_dir: str, where: str, out=print) -> None:
    """Check a rerun's space against the saved copy; save the allowed changes (see the module
    docstring). A one-line HarnessError for any other change."""
    saved = read(experiment_dir, build=False)
    if saved is None:
        return
    changed = changed_fields(saved, given)
    if not changed:
        return
    fixed = [name for name in changed if name not in ALWAYS_FREE + UNTIL_FINALS]
    if fixed:
        raise HarnessError(
            f"{where}: field {', '.join(fixed)} differs from the study {given.name!r} started "
            f"under {experiment_dir} (its {SPACE_COPY}); allowed changes: description, and "
            "decision or tuning.final_seeds before the finals start; start over with --restart "
            "or give the study a new name")
    finals = [name for name in changed if name in UNTIL_FINALS]
    if finals and finals_started(experiment_dir):
        raise HarnessError(
            f"{where}: field {', '.join(finals)}: the finals of study {given.name!r} have "
            "started, and a declared decision cannot change once final data exist; allowed: "
            "the file as the study started it (or --resume NAME)")
    record_uri = f"{experiment_dir}/{DECLARED_FILE}"
    if "decision" in changed and given.decision is None:
        delete(record_uri)
    elif "decision" in changed:
        from harness.study.tuning import CHOICES_FILE

        choices = read_text(f"{experiment_dir}/{CHOICES_FILE}")
        record = {
            "declared": "during tuning, before the finals" if choices is None
            else "after tuning, before the finals",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "choices_sha256": None if choices is None
            else hashlib.sha256(choices.encode()).hexdigest(),
        }
        write_text(record_uri, json.dumps(record, indent=1) + "\n")
        out(f"study {given.name!r}: decision declared {record['declared']} ({record['at']}"
            + (f", choices sha256 {record['choices_sha256'][:12]}" if choices else "")
            + f"); recorded in {DECLARED_FILE}")
    save(given, experiment_dir)
    out(f"study {given.name!r}: {', '.join(changed)} changed since it started; saved in "
        f"{SPACE_COPY}")


def declared(experiment_dir: str) -> str:
    """When the study's decision was declared, in words (for its design run)."""
    text = read_text(f"{experiment_dir}/{DECLARED_FILE}")
    if text is None:
        return DECLARED_WITH_THE_FILE
    record = json.loads(text)
    sha = record.get("choices_sha256")
    return f"{record['declared']}, at {record['at']}" + (
        f" (choices.json sha256 {sha})" if sha else "")
