"""Helpers of the analysis tests: a fresh sqlite MLflow store and picking one row of a table."""

from __future__ import annotations


def sqlite_store(root, *names: str):
    """(tracking URI, MlflowClient, {name: experiment id}) of a new sqlite store under `root`."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    artifacts = (root / "artifacts").as_uri()
    ids = {name: client.create_experiment(name, artifact_location=artifacts) for name in names}
    return uri, client, ids


def row(frame, **keys):
    """The one row of `frame` whose columns equal `keys` (fails unless exactly one matches)."""
    selected = frame
    for key, value in keys.items():
        selected = selected[selected[key] == value]
    assert len(selected) == 1, keys
    return selected.iloc[0]
