"""`harness ui [NAME]`: the MLflow UI for the study records, on 127.0.0.1 (not reachable by others).

    harness ui                 # every study in ./mlflow.db (or MLFLOW_TRACKING_URI)
    harness ui smoke           # opens on the runs table of the study (MLflow experiment) smoke

The server runs in its own process group; SIGINT, SIGTERM and SIGHUP sent to `harness ui` are
passed on to that group and waited for, so no server is left holding the port.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys

from harness.errors import HarnessError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_TIMEOUT_S = 15


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("ui", help="start the MLflow UI on 127.0.0.1 and print its URL",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", nargs="?", metavar="NAME",
                        help="a study (MLflow experiment) to open on; default: the list")
    parser.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else "
                        "sqlite:///mlflow.db in this directory")
    parser.add_argument("--port", type=int, default=5000)
    parser.set_defaults(func=run)


# The runs table `harness ui NAME` opens on: MLflow's shared-view state (an experiment tag read
# by the URL's viewStateShareKey), with the final accuracies and the arm's settings as columns.
VIEW_KEY = "harness"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_METRICS = ("test_accuracy", "val_accuracy", "train_accuracy")
VIEW_PARAMS = ("optimizer", "depth", "learning_rate", "sigma", "seed")


def runs_view() -> str:
    """The shared-view JSON: columns as MLflow keys them (metrics.`name`), best test first."""
    from harness.study.run_schema import TAG_STATUS

    columns = [f"metrics.`{m}`" for m in VIEW_METRICS] + [f"params.`{p}`" for p in VIEW_PARAMS]
    return json.dumps({"selectedColumns": [*columns, f"tags.`{TAG_STATUS}`"],
                       "orderByKey": f"metrics.`{VIEW_METRICS[0]}`", "orderByAsc": False})


def study_path(tracking_uri: str, name: str) -> str:
    """The UI route of study `name`'s runs table. Tags the experiment with the harness' runs
    view and, when it was made before the harness set one, its kind (so it opens on runs)."""
    from mlflow.tracking import MlflowClient

    from harness.study.run_schema import EXPERIMENT_KIND

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        raise HarnessError(f"no study named {name!r} in {tracking_uri}; allowed: "
                           f"{', '.join(known) or 'none yet (run one with harness run)'}")
    tags = {**EXPERIMENT_KIND, **experiment.tags, VIEW_TAG: runs_view()}
    for key, value in tags.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return (f"#/experiments/{experiment.experiment_id}/runs?viewStateShareKey={VIEW_KEY}"
            "&workflowType=machine_learning")


def _check_port(port: int) -> None:
    with socket.socket() as probe:
        # as the server binds: a closed connection's TIME_WAIT does not hold the port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise HarnessError(f"--port {port} is in use on 127.0.0.1; allowed: a free port, "
                               "e.g. --port 5001") from None


def serve(command: list[str]) -> int:
    """Run `command` in its own process group until it exits or we are told to stop; a stop
    signal goes to the whole group, which gets STOP_TIMEOUT_S to exit before SIGKILL."""
    # MLflow's job runner (a dozen huey consumers) serves GenAI scorers only: not started.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    server = subprocess.Popen(command, start_new_session=True, env=env)
    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        try:
            os.killpg(server.pid, signum)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
    try:
        status = server.wait()
        if not received:
            return status
    finally:
        try:
            server.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        try:  # workers the server started outlive it unless the group goes too
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 + received[0]


def run(args: argparse.Namespace) -> int:
    from harness.study.tracking_uri import (
        artifact_location,
        check_credentials,
        resolve_tracking_uri,
    )

    _check_port(args.port)  # before anything slow
    uri = resolve_tracking_uri(args.tracking_uri)
    check_credentials(uri)
    url = f"http://127.0.0.1:{args.port}/"
    if args.study:
        url += study_path(uri, args.study)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"]
    location = artifact_location(uri)
    if location:
        command += ["--default-artifact-root", location]
    print(f"MLflow UI for {uri}: {url}  (Ctrl-C stops it)", flush=True)
    return serve(command)
