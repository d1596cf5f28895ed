"""The command line: every command answers --help, and `harness ui` serves the MLflow UI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

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
    assert not imported & {"tensorflow", "keras", "ray", "matplotlib"}, imported
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, imported, err = _imported("ui", "somestudy", "--port", str(taken.getsockname()[1]),
                                        cwd=tmp_path)
    assert code == 2 and "is in use" in err
    assert imported == set(), imported
