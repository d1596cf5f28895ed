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
