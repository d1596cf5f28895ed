"""Where MLflow runs are stored when the user does not say: the one place that default lives."""

from __future__ import annotations

import os
from pathlib import Path

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
