"""The MLflow store: where runs are stored when the user does not say (the one place that default
lives), and opening it with one-line refusals (no such file, credentials refused, no such
study) before anything slow."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import HarnessError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def default_tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` from the environment, else `sqlite:///mlflow.db` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def resolve_tracking_uri(uri: str | None) -> str:
    """`uri` or the default, with a relative SQLite path made absolute (trials change dirs)."""
    uri = uri or default_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return uri


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts beside a local SQLite store (`mlartifacts/` next to the .db); a server decides."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts")
    return None


def check_credentials(tracking_uri: str) -> None:
    """A tracking server (http, https) that refuses this client's credentials: one line naming
    what to set, before anything starts. One cheap request (the first experiment); a store that
    is not a server is not asked."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri).search_experiments(max_results=1)
    except MlflowException as error:
        status = error.get_http_status_code()
        if status not in (401, 403):
            raise
        refused = "did not accept" if status == 401 else "does not allow"
        raise HarnessError(
            f"the MLflow server at {tracking_uri} {refused} these credentials (HTTP {status}): "
            "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or write them to "
            "~/.mlflow/credentials ([mlflow] mlflow_tracking_username = ..., "
            "mlflow_tracking_password = ...; cluster/mlflow-server.sh writes it on the head)"
        ) from None


def _sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a sqlite:// URI (None for an in-memory one)."""
    from sqlalchemy.engine import make_url

    database = make_url(tracking_uri).database
    return Path(database) if database else None


def mlflow_client(tracking_uri: str):
    """An MlflowClient on `tracking_uri` (telemetry off); refuses a sqlite file that does not exist
    instead of letting MLflow create an empty store there."""
    if tracking_uri.startswith("sqlite:"):  # before MLflow's import: a second's work
        database = _sqlite_file(tracking_uri)
        if not database or not database.is_file():
            raise HarnessError(f"no MLflow store at {tracking_uri} (pass --tracking-uri)")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    check_credentials(tracking_uri)
    return MlflowClient(tracking_uri)


def find_experiment(client, study: str, tracking_uri: str):
    """The experiment named (or numbered) `study`, or a one-line HarnessError listing the
    studies there (MLflow's empty `Default` experiment left out)."""
    experiment = client.get_experiment_by_name(study)
    if experiment is None and study.isdigit():
        from mlflow.exceptions import MlflowException

        try:
            experiment = client.get_experiment(study)
        except MlflowException:
            experiment = None
    if experiment is None:
        raise _unknown_study(study, tracking_uri, [e.name for e in client.search_experiments()])
    return experiment


def _unknown_study(study: str, tracking_uri: str, names) -> HarnessError:
    names = sorted(name for name in names if name != "Default")
    return HarnessError(
        f"unknown study {study!r} in {tracking_uri}; studies: {', '.join(names) or '(none)'}")


def refuse_unknown_study(tracking_uri: str, study: str) -> None:
    """`find_experiment`'s refusal of a study a SQLite store does not hold, read with the
    standard library from MLflow's `experiments` table (names and ids), so it answers
    before MLflow's import (two seconds). Any other store, or a table this query cannot read,
    is left to `find_experiment`."""
    import contextlib
    import sqlite3

    database = _sqlite_file(tracking_uri) if tracking_uri.startswith("sqlite:") else None
    if not database or not database.is_file():
        return  # another store, or none: find_experiment or mlflow_client says so
    try:
        with contextlib.closing(sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro",
                                                uri=True)) as store:
            rows = store.execute("SELECT experiment_id, name, lifecycle_stage "
                                 "FROM experiments").fetchall()
    except sqlite3.Error:
        return
    # MLflow finds a deleted experiment by name or id too; it lists only the active ones
    if not any(study in (str(experiment_id), name) for experiment_id, name, _ in rows):
        raise _unknown_study(study, tracking_uri,
                             [name for _, name, stage in rows if stage == "active"])
