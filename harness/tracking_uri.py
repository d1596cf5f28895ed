"""Where MLflow runs are stored when the user does not say: the one place that default lives."""

from __future__ import annotations

import os

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def default_tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` from the environment, else `sqlite:///mlflow.db` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
