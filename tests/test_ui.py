"""`harness ui`: a stop signal ends the server with it (no orphan, port free); its output goes
to a log, not the console; NAME opens a study's runs table (trials only), RUN a run's charts."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness.cli import main
from harness.errors import HarnessError
from harness.study.run_schema import (
    RUN_KIND_ANALYSIS,
    RUN_KIND_ARM,
    RUN_KIND_DESIGN,
    RUN_KIND_TRIAL,
    TAG_RUN_KIND,
)
from harness.study.tracking import EXPERIMENT_KIND, ensure_experiment
from harness.ui import LOG_NAME, LOG_TAIL_LINES, VIEW_TAG, run_path, serve, study_path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Nothing listens: a new server could bind it (SO_REUSEADDR, as uvicorn binds)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def group_members(pgid: int) -> list[int]:
    """Live processes (zombies excluded) whose process group is `pgid`."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def start_ui(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, int, str]:
    """(process, port, URL it printed) of `harness ui` in tmp_path on a free port, once its
    server answers /health."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ui = subprocess.Popen([sys.executable, "-m", "harness.cli", "ui", *args, "--port", str(port)],
                          cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    printed = ""
    while "MLflow UI for" not in printed:  # TensorFlow may log a few lines first
        printed = ui.stdout.readline()
        assert printed or ui.poll() is None, "harness ui ended before printing its URL"
    url = re.search(r"http://\S+", printed).group(0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert ui.poll() is None, ui.stdout.read()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return ui, port, url
        except OSError:
            time.sleep(1)
    ui.kill()
    raise AssertionError("harness ui did not answer /health in 120 s")


@pytest.mark.slow  # the MLflow server takes 10-30 s to answer
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_the_server_and_frees_the_port(tmp_path, signum):
    ui, port, url = start_ui(tmp_path)
    children = Path(f"/proc/{ui.pid}/task/{ui.pid}/children").read_text().split()
    assert len(children) == 1, children
    server = int(children[0])
    assert len(group_members(server)) >= 2  # mlflow ui and its uvicorn worker

    ui.send_signal(signum)  # to harness ui only, as `kill` or a supervisor would
    assert ui.wait(timeout=30) == 128 + signum
    assert ui.stdout.read() == ""  # the server's lines went to its log
    assert '"GET /health HTTP/1.1" 200' in (tmp_path / LOG_NAME).read_text()
    deadline = time.monotonic() + 5
    while group_members(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert group_members(server) == []
    assert port_is_free(port)
    assert url == f"http://127.0.0.1:{port}/"


def test_an_unknown_study_is_one_line_naming_the_studies(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ensure_experiment(MlflowClient(uri), "smoke", uri)
    assert main(["ui", "nope", "--tracking-uri", uri, "--port", str(free_port())]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after MLflow's own store set-up
    assert err == f"harness ui: error: no study named 'nope' in {uri}; allowed: smoke"


def test_a_study_opens_on_its_runs_table_with_accuracy_columns(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("old")  # made before the harness tagged kinds
    assert study_path(uri, "old") == (f"#/experiments/{experiment_id}/runs?"
                                      "viewStateShareKey=harness&workflowType=machine_learning")
    tags = client.get_experiment(experiment_id).tags
    assert {k: tags[k] for k in EXPERIMENT_KIND} == EXPERIMENT_KIND
    view = json.loads(tags[VIEW_TAG])
    assert view["selectedColumns"][:3] == ["metrics.`test_accuracy`", "metrics.`val_accuracy`",
                                           "metrics.`train_accuracy`"]
    assert view["orderByKey"] == "metrics.`test_accuracy`" and view["orderByAsc"] is False
    new_id = ensure_experiment(client, "new", uri)
    assert client.get_experiment(new_id).tags["mlflow.experimentKind"] == \
        "custom_model_development"


def test_the_server_output_goes_to_the_log_and_its_end_to_stderr_when_it_fails(tmp_path, capfd):
    log = tmp_path / LOG_NAME
    log.write_text("an earlier session\n")
    talk = "import sys; print('GET / 200 OK', flush=True); print('INFO: started', file=sys.stderr)"
    assert serve([sys.executable, "-c", talk], log) == 0
    assert capfd.readouterr() == ("", "")
    assert log.read_text() == "an earlier session\nGET / 200 OK\nINFO: started\n"

    fail = "import sys; [print('line', i) for i in range(30)]; sys.exit(3)"
    assert serve([sys.executable, "-c", fail], log) == 3
    out, err = capfd.readouterr()
    assert out == ""
    assert err.splitlines() == [f"the MLflow server exited with status 3; the end of {log}:",
                                *(f"line {i}" for i in range(30 - LOG_TAIL_LINES, 30))]


def _study_with_runs(tmp_path, *names: str) -> tuple[str, MlflowClient, str, dict[str, str]]:
    """(store URI, client, experiment id, {run name: run id}) of a study "s" whose runs are
    `names`, each of the run kind its name gives."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, "s", uri)
    ids = {name: client.create_run(experiment_id, run_name=name,
                                   tags={TAG_RUN_KIND: name}).info.run_id for name in names}
    return uri, client, experiment_id, ids


def test_the_runs_table_leaves_out_the_analysis_and_design_runs(tmp_path):
    uri, client, experiment_id, _ = _study_with_runs(
        tmp_path, RUN_KIND_TRIAL, RUN_KIND_ARM, RUN_KIND_ANALYSIS, RUN_KIND_DESIGN)
    study_path(uri, "s")
    view = json.loads(client.get_experiment(experiment_id).tags[VIEW_TAG])
    shown = client.search_runs([experiment_id], view["searchFilter"])  # as the UI asks
    assert sorted(r.info.run_name for r in shown) == [RUN_KIND_ARM, RUN_KIND_TRIAL]


def test_a_run_opens_on_its_metric_charts_in_the_model_training_view(tmp_path, monkeypatch,
                                                                     capsys):
    uri, _, experiment_id, ids = _study_with_runs(tmp_path, RUN_KIND_TRIAL, RUN_KIND_ARM)
    route = f"#/experiments/{experiment_id}/runs/{ids[RUN_KIND_TRIAL]}/model-metrics?" \
            "workflowType=machine_learning"
    assert run_path(uri, "s", RUN_KIND_TRIAL) == run_path(uri, "s", ids[RUN_KIND_TRIAL]) == route

    served = []
    monkeypatch.setattr("harness.ui.serve", lambda command, log: served.append(log) or 0)
    port = free_port()
    assert main(["ui", "s", RUN_KIND_TRIAL, "--tracking-uri", uri, "--port", str(port)]) == 0
    assert served == [tmp_path / LOG_NAME]
    assert capsys.readouterr().out == (f"MLflow UI for {uri}: http://127.0.0.1:{port}/{route}  "
                                       f"(Ctrl-C stops it; server log: {tmp_path / LOG_NAME})\n")


def test_a_run_name_that_is_not_one_run_is_refused_with_the_ids(tmp_path):
    uri, client, experiment_id, ids = _study_with_runs(tmp_path, RUN_KIND_TRIAL)
    twin = client.create_run(experiment_id, run_name=RUN_KIND_TRIAL).info.run_id
    with pytest.raises(HarnessError, match="^no runs named 'nope' in study 's'; allowed"):
        run_path(uri, "s", "nope")
    with pytest.raises(HarnessError, match=f"^2 runs named 'trial' in study 's': "
                       f"{min(twin, ids[RUN_KIND_TRIAL])}, {max(twin, ids[RUN_KIND_TRIAL])};"):
        run_path(uri, "s", RUN_KIND_TRIAL)
