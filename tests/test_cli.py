"""The command line: every command answers --help, and `harness ui` serves the MLflow UI."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from harness.cli import build_parser, main

COMMANDS = ["demo", "run", "analyze", "ui", "data", "data prepare"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command.split(), "--help"])
    assert exit_info.value.code == 0
    assert "usage: harness " + command in capsys.readouterr().out


def test_top_level_help_lists_the_commands():
    text = build_parser().format_help()
    for command in ("demo", "run", "analyze", "ui", "data"):
        assert command in text


def test_run_needs_a_file_or_resume(capsys):
    assert main(["run"]) == 2
    assert "give a search-space file (e.g. search_spaces/smoke.yaml) or --resume NAME" in \
        capsys.readouterr().err
    assert main(["run", "search_spaces/smoke.yaml", "--resume", "smoke"]) == 2
    assert "either a search-space file or --resume NAME, not both" in capsys.readouterr().err


def test_the_resume_line_keeps_where_the_study_lives_and_tuning_only(monkeypatch):
    """A --tuning-only run resumed without --tuning-only would run its finals before their
    decision is declared; the printed command keeps it, and the store it ran in."""
    import shlex

    from harness.study.cli import _resume_told, resume_command
    from harness.study.runner import RESUME_ENV, _resume_command

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/a store/mlflow.db")
    monkeypatch.delenv(RESUME_ENV, raising=False)
    args = build_parser().parse_args(["run", "search_spaces/smoke.yaml", "--tuning-only",
                                      "--storage-path", "/tmp/a store", "--max-concurrent", "1"])
    line = resume_command(args, "smoke")
    again = build_parser().parse_args(shlex.split(line)[1:])
    assert (again.resume, again.space, again.tuning_only, again.storage_path,
            again.tracking_uri, again.max_concurrent) == \
        ("smoke", None, True, "/tmp/a store", "sqlite:////tmp/a store/mlflow.db", 1)
    spec = type("Spec", (), {"name": "smoke"})
    with _resume_told(args, "smoke"):
        assert _resume_command(spec) == line
    assert RESUME_ENV not in os.environ
    monkeypatch.setenv(RESUME_ENV, "harness submit space.yaml --address A")  # a submitted job's
    with _resume_told(args, "smoke"):
        assert _resume_command(spec) == "harness submit space.yaml --address A"
    plain = build_parser().parse_args(["run", "--resume", "smoke"])
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resume_command(plain, "smoke") == "harness run --resume smoke"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ui_serves_the_store_on_loopback(tmp_path):
    port = _free_port()
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        ui = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "ui", "--port", str(port)], cwd=tmp_path,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, status = time.monotonic() + 180, None
        while time.monotonic() < deadline and status != 200:
            time.sleep(1)
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status
            except OSError:
                continue
        assert status == 200, log.read_text()[-2000:]
        assert f"http://127.0.0.1:{port}" in log.read_text()
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)


# what a command imported, from a fresh process (this one has imported everything already)
IMPORTED = """
import sys
import threading
from harness.cli import main
code = main(sys.argv[1:])
heavy = ("tensorflow", "keras", "ray", "mlflow", "matplotlib")
print("CODE", code, "IMPORTED", *[m for m in heavy if m in sys.modules])
"""


def _imported(*argv: str, cwd) -> tuple[int, set[str], str]:
    done = subprocess.run([sys.executable, "-c", IMPORTED, *argv], capture_output=True,
                          text=True, cwd=cwd, timeout=120)
    lines = [x for x in done.stdout.splitlines() if x.startswith("CODE")]
    assert lines, done.stdout + done.stderr
    line = lines[0]
    words = line.split()
    return int(words[1]), set(words[3:]), done.stderr


def test_a_refused_study_file_and_an_unknown_study_answer_without_tensorflow(tmp_path):
    """Validation, the typo hint, an unknown study and a taken UI port come before any import of
    TensorFlow, Ray or MLflow's server (they take seconds to import)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nepoch: 3\n")
    code, imported, err = _imported("run", str(bad), "--dry-run", cwd=tmp_path)
    assert code == 2 and "did you mean 'epochs'" in err
    assert imported == set(), imported
    code, imported, err = _imported("analyze", "nosuchstudy", "--tracking-uri",
                                    f"sqlite:///{tmp_path}/none.db", cwd=tmp_path)
    assert code == 2 and "no MLflow store" in err
    assert imported == set(), imported  # the missing file is refused before MLflow's import
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, imported, err = _imported("ui", "somestudy", "--port", str(taken.getsockname()[1]),
                                        cwd=tmp_path)
    assert code == 2 and "is in use" in err
    assert imported == set(), imported


def test_an_unknown_study_in_a_sqlite_store_is_refused_before_mlflow_as_mlflow_would(tmp_path):
    """The standard library's read of the store refuses with find_experiment's own line (active
    names listed, Default left out), knows what MLflow finds (a name, an id, a deleted one), and
    no MLflow is imported for it."""
    from mlflow.tracking import MlflowClient

    from harness.errors import HarnessError
    from harness.study.tracking_uri import find_experiment, mlflow_client, refuse_unknown_study

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    kept = client.create_experiment("kept")
    client.delete_experiment(client.create_experiment("deleted"))
    for known, name in (("kept", "kept"), (kept, "kept"), ("deleted", "deleted")):
        refuse_unknown_study(uri, known)
        assert find_experiment(mlflow_client(uri), known, uri).name == name
    refusals = []
    for refuse in (lambda: refuse_unknown_study(uri, "absent"),
                   lambda: find_experiment(mlflow_client(uri), "absent", uri)):
        with pytest.raises(HarnessError) as refused:
            refuse()
        refusals.append(str(refused.value))
    assert refusals[0] == refusals[1] == f"unknown study 'absent' in {uri}; studies: kept"
    code, imported, err = _imported("analyze", "absent", "--tracking-uri", uri, cwd=tmp_path)
    assert code == 2 and refusals[0] in err
    assert imported == set(), imported


@pytest.mark.parametrize("argv", [["smoke.yaml", "--depths", "3"], ["smoke_tuned.yaml"],
                                  ["smoke_decided.yaml"]])
def test_a_dry_run_of_a_good_file_answers_without_tensorflow(argv, tmp_path):
    """The trial table, packing, power and looks need no TensorFlow; the run builds each
    optimizer and network before its first trial."""
    space = Path(__file__).parent.parent / "search_spaces" / argv[0]
    code, imported, err = _imported("run", str(space), *argv[1:], "--dry-run", cwd=tmp_path)
    assert code == 0, err
    assert imported == set(), imported


def test_a_dry_run_of_a_saved_study_answers_without_tensorflow(tmp_path):
    """`harness run --resume NAME --dry-run` reads the study's saved copy as a file's dry run
    does."""
    from harness.study import saved_space
    from harness.study.space import load_space

    space = Path(__file__).parent.parent / "search_spaces" / "smoke_decided.yaml"
    saved_space.save(load_space(space, build=False), str(tmp_path / "results" / "smoke_decided"))
    code, imported, err = _imported("run", "--resume", "smoke_decided", "--storage-path",
                                    str(tmp_path / "results"), "--dry-run", cwd=tmp_path)
    assert code == 0, err
    assert imported == set(), imported


class Refusing(http.server.BaseHTTPRequestHandler):
    """A tracking server that refuses every request as MLflow's basic auth does."""

    def _refuse(self):
        body = b"You are not authenticated. Please provide valid credentials."
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args):
        pass


def test_a_refused_mlflow_password_is_one_line_naming_what_to_set(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "someone")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert main(["analyze", "somestudy", "--tracking-uri", uri]) == 2
        _, err = capsys.readouterr()
        assert err.count("\n") == 1 and "Traceback" not in err
        assert (f"harness analyze: error: the MLflow server at {uri} did not accept these "
                "credentials (HTTP 401): set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD, or write them to ~/.mlflow/credentials") in err
        # a study refused the same way before Ray starts
        monkeypatch.chdir(tmp_path)
        smoke = Path(__file__).resolve().parent.parent / "search_spaces" / "smoke.yaml"
        assert main(["run", str(smoke), "--tracking-uri", uri, "--storage-path",
                     str(tmp_path / "results")]) == 2
        _, err = capsys.readouterr()
        assert err.startswith(f"harness run: error: the MLflow server at {uri} did not accept")
        assert err.count("\n") == 1
    finally:
        server.shutdown()
