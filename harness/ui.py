"""`harness ui [NAME [RUN]]`: the MLflow UI for the study records, on 127.0.0.1 (not reachable
by others).

    harness ui                 # every study in ./mlflow.db (or MLFLOW_TRACKING_URI)
    harness ui smoke           # opens on the runs table of the study (MLflow experiment) smoke
    harness ui smoke "Adam dense2 seed 0"   # opens on that run's per-epoch metric charts

Both open in MLflow's model-training view. MLflow's own run links (the table's) carry no view:
a run clicked there opens on its Overview tab (the charts are under "Model metrics"), in the
view the browser last chose with the sidebar's switch, GenAI until "Model training" is chosen
there once.

The server runs in its own process group; SIGINT, SIGTERM and SIGHUP sent to `harness ui` are
passed on to that group and waited for, so no server is left holding the port. Its output (the
access log of every request, MLflow's start-up lines) is appended to LOG_NAME beside a SQLite
store (else in this directory); the console shows the URL, and the log's end if the server fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from harness.errors import HarnessError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_TIMEOUT_S = 15
LOG_NAME = "mlflow-ui.log"
LOG_TAIL_LINES = 20  # of the server's output, shown when it fails


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("ui", help="start the MLflow UI on 127.0.0.1 and print its URL",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", nargs="?", metavar="NAME",
                        help="a study (MLflow experiment) to open on; default: the list")
    parser.add_argument("run", nargs="?", metavar="RUN",
                        help="a run of the study (its name, as the table shows it, or its ID) "
                             "to open on its metric charts")
    parser.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else "
                        "sqlite:///mlflow.db in this directory")
    parser.add_argument("--port", type=int, default=5000)
    parser.set_defaults(func=run)


# The runs table `harness ui NAME` opens on: MLflow's shared-view state (an experiment tag read
# by the URL's viewStateShareKey), with the final accuracies and the arm's settings as columns,
# and only the runs that train (trials, and a tuned study's arm runs that group them).
VIEW_KEY = "harness"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_METRICS = ("test_accuracy", "val_accuracy", "train_accuracy")
VIEW_PARAMS = ("optimizer", "depth", "learning_rate", "sigma", "seed")

# MLflow 3.17's UI shows a page in its model-training or its GenAI view by the URL parameter
# workflowType, else by what the browser stored from the sidebar's switch (GenAI until then);
# the experiment's kind tag (EXPERIMENT_KIND) no longer decides it.
ML_VIEW = "workflowType=machine_learning"
RUN_CHARTS_TAB = "model-metrics"  # the run page's tab of per-epoch metric charts


def runs_view() -> str:
    """The shared-view JSON: columns as MLflow keys them (metrics.`name`), best test first,
    and a search filter leaving out the runs that hold an analysis or a design (no training)."""
    from harness.study.run_schema import (
        RUN_KIND_ANALYSIS,
        RUN_KIND_DESIGN,
        TAG_RUN_KIND,
        TAG_STATUS,
    )

    columns = [f"metrics.`{m}`" for m in VIEW_METRICS] + [f"params.`{p}`" for p in VIEW_PARAMS]
    search = " AND ".join(f"tags.{TAG_RUN_KIND} != '{kind}'"
                          for kind in (RUN_KIND_ANALYSIS, RUN_KIND_DESIGN))
    return json.dumps({"selectedColumns": [*columns, f"tags.`{TAG_STATUS}`"],
                       "orderByKey": f"metrics.`{VIEW_METRICS[0]}`", "orderByAsc": False,
                       "searchFilter": search})


def _experiment(client, tracking_uri: str, name: str):
    """Study `name`'s MLflow experiment; a HarnessError naming the studies if there is none."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        raise HarnessError(f"no study named {name!r} in {tracking_uri}; allowed: "
                           f"{', '.join(known) or 'none yet (run one with harness run)'}")
    return experiment


def study_path(tracking_uri: str, name: str) -> str:
    """The UI route of study `name`'s runs table. Tags the experiment with the harness' runs
    view and, when it was made before the harness set one, its kind (EXPERIMENT_KIND, which
    `harness run` gives a new study)."""
    from mlflow.tracking import MlflowClient

    from harness.study.run_schema import EXPERIMENT_KIND

    client = MlflowClient(tracking_uri)
    experiment = _experiment(client, tracking_uri, name)
    tags = {**EXPERIMENT_KIND, **experiment.tags, VIEW_TAG: runs_view()}
    for key, value in tags.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return f"#/experiments/{experiment.experiment_id}/runs?viewStateShareKey={VIEW_KEY}&{ML_VIEW}"


def run_path(tracking_uri: str, name: str, run: str) -> str:
    """The UI route of run `run` (its name or ID) of study `name`: its per-epoch metric charts,
    in the model-training view. A HarnessError if no run or several answer to `run`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = _experiment(client, tracking_uri, name).experiment_id
    quoted = json.dumps(run)
    found = sorted({r.info.run_id for field in ("run_name", "run_id")
                    for r in client.search_runs([experiment_id], f"attributes.{field} = {quoted}")})
    if len(found) != 1:
        raise HarnessError(f"{len(found) or 'no'} runs named {run!r} in study {name!r}"
                           f"{': ' + ', '.join(found) if found else ''}; allowed: one run's name "
                           "(as the runs table shows it) or ID")
    return f"#/experiments/{experiment_id}/runs/{found[0]}/{RUN_CHARTS_TAB}?{ML_VIEW}"


def server_log(tracking_uri: str) -> Path:
    """Where the server's output goes: LOG_NAME beside a SQLite store, else in this directory."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).parent / LOG_NAME
    return Path(LOG_NAME).resolve()


def _check_port(port: int) -> None:
    with socket.socket() as probe:
        # as the server binds: a closed connection's TIME_WAIT does not hold the port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise HarnessError(f"--port {port} is in use on 127.0.0.1; allowed: a free port, "
                               "e.g. --port 5001") from None


def serve(command: list[str], log: Path) -> int:
    """Run `command` in its own process group, its output appended to `log`, until it exits
    or we are told to stop; a stop signal goes to the whole group, which gets STOP_TIMEOUT_S to
    exit before SIGKILL. If it fails by itself, the end of its output goes to stderr."""
    # MLflow's job runner (a dozen huey consumers) serves GenAI scorers only: not started.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    with open(log, "ab") as output:
        start = output.tell()
        server = subprocess.Popen(command, start_new_session=True, env=env, stdout=output,
                                  stderr=subprocess.STDOUT)
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
            if status != 0:
                _show_failure(log, start, status)
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


def _show_failure(log: Path, start: int, status: int) -> None:
    """The last LOG_TAIL_LINES lines the server wrote to `log` (from byte `start`), on stderr."""
    with open(log, "rb") as output:
        output.seek(start)
        lines = output.read().decode(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    print(f"the MLflow server exited with status {status}; the end of {log}:", *lines,
          sep="\n", file=sys.stderr)


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
    if args.run:
        url += run_path(uri, args.study, args.run)
    elif args.study:
        url += study_path(uri, args.study)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"]
    location = artifact_location(uri)
    if location:
        command += ["--default-artifact-root", location]
    log = server_log(uri)
    print(f"MLflow UI for {uri}: {url}  (Ctrl-C stops it; server log: {log})", flush=True)
    return serve(command, log)
