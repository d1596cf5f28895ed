"""The console of `harness run`: progress as [mm:ss] and a bar, plain lines off a terminal, no
library chatter (it goes to the study's log), a resumed study says what it found."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from study_helpers import TINY_DATA

from harness.console import stderr_to
from harness.study.console import LOG_NAME, study_log
from harness.study.progress import ProgressPrinter, bar, clock

REPO = Path(__file__).resolve().parent.parent


class Trial:
    """What the printer reads of a Tune trial."""

    def __init__(self, seed, status="RUNNING", epoch=0, error=""):
        self.config = {"trial": {"trial_key": f"dense3-Adam-s{seed}", "optimizer": "Adam",
                                 "model": "dense", "depth": 3, "seed": seed}}
        self.status, self.last_result, self.error = status, {"epoch": epoch}, error
        self.trial_id = f"trial{seed}"
        self.num_failures = 1
        self.error_file = None

    def get_error(self):
        return self.error


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_clock_and_bar():
    assert [clock(s) for s in (0, 17, 61, 3599, 3723)] == ["00:00", "00:17", "01:01", "59:59",
                                                            "1:02:03"]
    assert bar(0.5, 10) == "#####-----" and bar(0, 4) == "----" and bar(1.2, 4) == "####"


def test_off_a_terminal_plain_lines_count_what_tune_holds():
    out = io.StringIO()
    printer = ProgressPrinter(4, epochs=2, interval_s=3600, stream=out)
    # resumed: seed 0 finished in an earlier session, seed 1 restored after its epoch 1
    trials = [Trial(0, "TERMINATED", 2), Trial(1, "RUNNING", 1), Trial(2, "PENDING")]
    trials[0].last_result["val_accuracy"] = 0.75  # reported in the earlier session
    printer.on_trial_result(0, trials, trials[1], {"epoch": 2, "val_accuracy": 0.5})
    printer.on_trial_complete(0, trials, trials[1])
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the first result, then the trial's end (the interval holds others)
    assert re.fullmatch(r"\[00:00\] #{10}-{10} 2/4 trials done, 0 running, 0 failed, 0 diverged"
                        r" \| best val_accuracy 0\.7500 \(Adam dense3 seed 0\) \| ETA \?",
                        lines[1]), lines[1]
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def test_a_blind_line_names_no_result_even_after_a_resume():
    import pickle

    out = io.StringIO()
    printer = pickle.loads(pickle.dumps(ProgressPrinter(4, epochs=2, interval_s=0, blind=True)))
    printer.stream = out  # Tune restores its callbacks from the experiment state
    trials = [Trial(0, "RUNNING", 1), Trial(1, "PENDING")]
    printer.on_trial_result(0, trials, trials[0], {"epoch": 1, "val_accuracy": 0.875})
    line = out.getvalue().splitlines()[-1]
    assert "| best val_accuracy hidden until the declared looks |" in line, line
    assert "0.875" not in out.getvalue() and "seed 0" not in out.getvalue()


def test_the_first_line_comes_when_the_first_trial_starts_not_at_its_first_epoch():
    out = io.StringIO()
    printer = ProgressPrinter(4, epochs=2, interval_s=3600, stream=out)
    # Tune calls on_trial_start before it marks the trial RUNNING
    trials = [Trial(0, "PENDING"), Trial(1, "RUNNING"), Trial(2, "PENDING")]
    printer.on_trial_start(0, trials, trials[0])
    printer.on_trial_start(0, trials, trials[1])  # within the interval: no second line
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[00:00] -------------------- 0/4 trials "
                                                   "done, 2 running, 0 failed"), lines


class Pack(Trial):
    """A pack of three seeds as Tune holds it: one trial, results per member."""

    def __init__(self, status="RUNNING", results=None):
        super().__init__(0, status)
        members = [Trial(seed).config["trial"] for seed in (0, 1, 2)]
        self.config = {"trial": {"trial_key": "pack-dense3-Adam-x3", "members": members}}
        self.last_result = {"members": results or {}}


def test_a_pack_counts_as_its_members():
    out = io.StringIO()
    printer = ProgressPrinter(4, epochs=2, interval_s=3600, stream=out)
    pack, alone = Pack(), Trial(3, "PENDING")
    result = {"epoch": 1, "members": {"dense3-Adam-s0": {"epoch": 1, "val_accuracy": 0.5},
                                      "dense3-Adam-s1": {"epoch": 1, "val_accuracy": 0.25,
                                                         "status": "diverged"},
                                      "dense3-Adam-s2": {"epoch": 1, "val_accuracy": 0.625}}}
    pack.last_result = result
    printer.on_trial_result(0, [pack, alone], pack, result)
    # epochs left: 1 + 1 (members 0 and 2) + 2 (the pending trial) of 8; member 1 ended
    assert re.fullmatch(r"\[00:00\] #{10}-{10} 1/4 trials done, 2 running, 0 failed, 1 diverged"
                        r" \| best val_accuracy 0\.6250 \(Adam dense3 seed 2\) \| ETA \?",
                        out.getvalue().splitlines()[-1]), out.getvalue()
    pack.status = "ERROR"
    printer.on_trial_error(0, [pack, alone], pack)
    assert "3/4 trials done, 0 running, 2 failed, 1 diverged" in out.getvalue().splitlines()[-1]
    assert "pack-dense3-Adam-x3 (3 trials) failed after 1 tries" in out.getvalue()


def test_on_a_terminal_one_line_redrawn_and_events_kept(monkeypatch):
    monkeypatch.setenv("COLUMNS", "61")
    out = Terminal()
    printer = ProgressPrinter(2, epochs=3, redraw_s=0, stream=out)
    trials = [Trial(0), Trial(1)]
    printer.on_trial_result(0, trials, trials[0], {"epoch": 1, "val_accuracy": 0.25})
    trials[1].last_result = {"epoch": 2}
    trials[1].error = "Traceback ...\nray.exceptions.ActorDiedError: The actor died."
    printer.on_trial_recover(0, trials, trials[1])
    printer.on_experiment_end(trials)
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 1 and text.endswith("\n")
    assert len(text.split("\r\x1b[K")[1].splitlines()[-1]) == 60  # COLUMNS - 1: no wrap
    assert ("\r\x1b[KAdam dense3 seed 1 stopped (ray.exceptions.ActorDiedError: The actor "
            "died.); it resumes after epoch 2 (try 2)\n[") in text


def test_stderr_goes_to_the_log_and_comes_back(tmp_path, capfd):
    log = tmp_path / LOG_NAME
    with stderr_to(log):
        os.write(2, b"from C\n")
        subprocess.run(["sh", "-c", "echo from a child process >&2"], check=True)
    os.write(2, b"after\n")
    assert log.read_text() == "from C\nfrom a child process\n"
    assert capfd.readouterr().err == "after\n"


def test_a_log_deleted_meanwhile_is_written_again(tmp_path):
    log = tmp_path / "study" / LOG_NAME
    log.parent.mkdir()
    with stderr_to(log):
        os.write(2, b"before restart\n")
        log.unlink()  # as --restart clears the study's folder
        os.write(2, b"after restart\n")
    assert log.read_text() == "before restart\nafter restart\n"


def test_a_remote_study_gets_its_log_appended_at_the_end(tmp_path):
    study = f"file://{tmp_path}/bucket/results/remote"  # a URI, as s3:// or gs:// would be
    for session in (b"first session\n", b"second session\n"):
        with study_log(study, verbose=False) as where:
            os.write(2, session)
        assert where == f"{study}/{LOG_NAME}"
    assert (tmp_path / "bucket/results/remote" / LOG_NAME).read_text() == \
        "first session\nsecond session\n"


NOISE = ("\x1b", "Traceback", "TensorBoard", "Configuration for experiment",
         "Started a local Ray instance", "Token authentication", "absl", "oneDNN",
         "Creating initial MLflow database tables")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_study_killed_and_resumed_reads_clean(tmp_path):
    space = {"name": "quiet", "dataset": TINY_DATA, "model": {"family": "dense", "depths": [2, 3]},
             "optimizers": [{"base": "adam", "learning_rate": 1e-3},
                            {"base": "adam", "learning_rate": 1e-3, "sigma": 1e-3}],
             "seeds": 2, "epochs": 3, "resources": {"cpu": 1, "gpu": 0}}
    (tmp_path / "quiet.yaml").write_text(yaml.safe_dump(space))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "harness.cli", "run", "quiet.yaml"]

    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in first.stdout:  # stop the driver once a trial has ended
        lines.append(line)
        if re.search(r"[1-7]/8 trials done", line):
            first.send_signal(signal.SIGINT)
            break
    lines += first.stdout.readlines()
    first.wait(timeout=120)
    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    for console in ("".join(lines), second.stdout + second.stderr):
        assert not [n for n in NOISE if n in console], console
    log = tmp_path / "results" / "quiet" / LOG_NAME
    assert f"Ray, Tune and MLflow detail in {log}" in second.stdout
    resumed = re.search(r"resuming study 'quiet': (\d) of 8 trials finished, (\d) to go",
                        second.stdout)
    assert resumed and int(resumed[1]) >= 1 and int(resumed[1]) + int(resumed[2]) == 8
    progress = [line for line in second.stdout.splitlines() if line.startswith("[")]
    assert progress and all(re.match(r"\[\d\d:\d\d\] [#-]{20} \d/8 trials done", p)
                            for p in progress)
    assert progress[-1].split("]")[1].startswith(" " + "#" * 20 + " 8/8")
    assert "Started a local Ray instance" in log.read_text()  # the detail is kept


def test_the_eta_is_this_sessions_training_rate_not_its_start(monkeypatch):
    """Resumed with 3 of 4 trials' 10 epochs left, after 100 s of start-up the first report comes
    at t = 100 and the next two at t = 110 and 120: 10 s per epoch, 27 epochs left after the
    third report: ETA 270 s (not 120 s / 3 epochs × 27 = 1080 s)."""
    from harness.study import progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    printer = ProgressPrinter(4, epochs=10, interval_s=0, stream=out)
    trials = [Trial(0, "TERMINATED", 10), Trial(1, "RUNNING", 0), Trial(2, "PENDING"),
              Trial(3, "PENDING")]
    for t, epoch in ((100.0, 1), (110.0, 2), (120.0, 3)):
        now[0] = t
        trials[1].last_result = {"epoch": epoch}
        printer.on_trial_result(0, trials, trials[1], {"epoch": epoch, "val_accuracy": 0.5})
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("ETA ?")  # one report: no rate yet
    assert lines[1].endswith(f"ETA {clock(10 * 28)}")
    assert lines[2].endswith(f"ETA {clock(10 * 27)}") and lines[2].startswith("[02:00]")
