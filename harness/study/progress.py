"""Progress of a study on the console: elapsed time, a bar, trials done/running/failed, best, ETA.

    [01:17] ########------------ 5/12 trials done, 2 running, 0 failed, 0 diverged
            | best val_accuracy 0.9412 (L-Adam dense10 seed 2) | ETA 01:48

A Tune callback. On a terminal the line is redrawn in place (at most every `redraw_s`); when
the output is a file or a pipe it is printed as a plain line (no escape codes) when the first
trial starts, when a trial ends and at most every `interval_s` in between. Counts come from Tune's own trial list, so a resumed
study counts the trials it finished before. ETA = seconds since this driver's first report /
epochs reported since then × epochs left in the grid (a trial that ended early has none left):
the rate of this session's training only, not of Ray's and the workers' start or the first
epoch's compile, nor of epochs an earlier driver ran ("?" until a second report). A trial that Tune retries (its
worker or node was lost, or it crashed and `max_failures` allows another try) gets one line
naming it and the epoch it resumes after. In a packed study every count is of trials (the
members), not of packs. A declared study's finals run `blind`: the line names no best result
(`best hidden until the declared looks`), so no one reads an interim outcome the decision's
looks have not spent α on.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from ray import tune

from harness.study.memory_kills import memory_usage
from harness.study.packs import PACK_MEMBERS, member_configs, member_results
from harness.study.run_schema import STATUS_DIVERGED
from harness.study.tracking import run_name

BAR_WIDTH = 20
ENDED = ("TERMINATED", "ERROR")


def clock(seconds: float) -> str:
    """[hh:]mm:ss, e.g. 00:17, 12:05, 1:02:03."""
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = min(width, max(0, round(fraction * width)))
    return "#" * filled + "-" * (width - filled)


def _members(trial) -> list[dict]:
    return member_configs(trial.config["trial"])


def _reports(trial, result) -> list[tuple[dict, dict]]:
    return member_results(trial.config["trial"], result or {})


def _name(trial) -> str:
    """A trial's run name, or a pack's key and size."""
    config = trial.config["trial"]
    if PACK_MEMBERS in config:
        return f"{config['trial_key']} ({len(config[PACK_MEMBERS])} trials)"
    return run_name(config)


class ProgressPrinter(tune.Callback):
    def __init__(self, total_trials: int, epochs: int, metric: str = "val_accuracy",
                 interval_s: float = 10.0, redraw_s: float = 1.0, stream=None,
                 blind: bool = False):
        self.total, self.epochs, self.metric, self.blind = total_trials, epochs, metric, blind
        self.interval_s, self.redraw_s = interval_s, redraw_s
        self.stream = stream
        self._reset()

    def _reset(self):
        self.started = time.monotonic()
        self.last_print = float("-inf")
        self.session_epochs = 0  # epochs reported in this session (the ETA's rate)
        self.rate_from: tuple[float, int] | None = None  # (time, session_epochs) at 1st report
        self.epochs_done: dict[str, int] = {}
        self.ended: set[str] = set()  # ended in this session, before Tune updates their status
        self.launched: set[str] = set()  # Tune trial ids started, before Tune says RUNNING
        self.failed = self.diverged = 0
        self.best: tuple[float, str] | None = None
        self.drawn = False  # a redrawable line is on the terminal

    def __getstate__(self):  # Tune pickles callbacks with the experiment state
        return {k: self.__dict__[k] for k in ("total", "epochs", "metric", "interval_s",
                                              "redraw_s", "blind")}

    def __setstate__(self, state):
        self.__dict__.update(state, stream=None)
        self._reset()

    @property
    def out(self):
        return self.stream or sys.stdout

    @property
    def terminal(self) -> bool:
        return self.out.isatty()

    def line(self, trials) -> str:
        ended = {m["trial_key"] for t in trials if t.status in ENDED for m in _members(t)}
        ended |= self.ended
        running = sum((t.status == "RUNNING" or t.trial_id in self.launched)
                      and t.status not in ENDED and m["trial_key"] not in ended
                      for t in trials for m in _members(t))
        reported = {m["trial_key"]: r for t in trials for m, r in _reports(t, t.last_result)}
        left = 0
        known = 0
        for trial in trials:
            for member in _members(trial):
                key = member["trial_key"]
                known += 1
                if key not in ended:
                    done = max(self.epochs_done.get(key, 0),
                               int(reported.get(key, {}).get("epoch", 0)))
                    left += self.epochs - done
        left += (self.total - known) * self.epochs
        now = time.monotonic()
        elapsed = now - self.started
        since, counted = self.rate_from or (now, self.session_epochs)
        rated = self.session_epochs - counted
        eta = clock((now - since) / rated * left) if rated else "?"
        for trial in trials:  # a resumed study starts from what its trials reported before
            for member, result in _reports(trial, trial.last_result):
                self._better(result.get(self.metric), member)
        best = f"{self.best[0]:.4f} ({self.best[1]})" if self.best else "-"
        if self.blind:
            best = "hidden until the declared looks"
        fraction = 1 - left / (self.total * self.epochs) if self.total else 1
        return (f"[{clock(elapsed)}] {bar(fraction)} {len(ended)}/{self.total} trials done, "
                f"{running} running, {self.failed} failed, {self.diverged} diverged | best "
                f"{self.metric} {best} | ETA {eta}")

    def _show(self, trials, event: str = "", force: bool = False) -> None:
        """Redraw the line in place on a terminal; else print it (throttled unless forced).
        An `event` is a line of its own that stays on screen."""
        now = time.monotonic()
        throttle = self.redraw_s if self.terminal else self.interval_s
        if not (event or force or now - self.last_print >= throttle):
            return
        self.last_print = now
        if self.terminal:
            if self.drawn:
                self.out.write("\r\x1b[K")  # back to the line's start, clear it
            # a line wider than the terminal wraps, and \r would only go back one row
            width = shutil.get_terminal_size().columns - 1
            self.out.write((event + "\n" if event else "") + self.line(trials)[:width])
            self.drawn = True
        else:
            self.out.write((event + "\n" if event else "") + self.line(trials) + "\n")
        self.out.flush()

    def _better(self, value, config: dict) -> None:
        if isinstance(value, float) and value == value and (self.best is None or value > self.best[0]):
            self.best = (value, run_name(config))

    def on_trial_start(self, iteration, trials, trial, **info):
        """The first line as soon as a trial starts (its first epoch, with Ray's and the step's
        start, can take a minute); later starts only as the throttle allows."""
        self.launched.add(trial.trial_id)
        self._show(trials, force=self.last_print == float("-inf"))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        for member, reported in _reports(trial, result):
            key = member["trial_key"]
            epoch = int(reported.get("epoch", 0))
            if epoch > self.epochs_done.get(key, 0):
                self.session_epochs += 1
                self.epochs_done[key] = epoch
            self._better(reported.get(self.metric), member)
            if reported.get("status") == STATUS_DIVERGED and key not in self.ended:
                self.diverged += 1
            if "status" in reported and PACK_MEMBERS in trial.config["trial"]:
                self.ended.add(key)  # a member ends before its pack
        if self.rate_from is None:
            self.rate_from = (time.monotonic(), self.session_epochs)
        self._show(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended.update(m["trial_key"] for m in _members(trial))
        self._show(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        keys = {m["trial_key"] for m in _members(trial)} - self.ended
        self.ended.update(keys)
        self.failed += len(keys)
        self._show(trials, f"{_name(trial)} failed after {trial.num_failures} tries: "
                           f"{_last_error_line(trial)}")

    def on_trial_recover(self, iteration, trials, trial, **info):
        epoch = int((trial.last_result or {}).get("epoch", 0))
        self._show(trials, f"{_name(trial)} stopped ({_last_error_line(trial)}); it resumes "
                           f"after epoch {epoch} (try {trial.num_failures + 1})")

    def on_experiment_end(self, trials, **info):
        if self.drawn:
            self.out.write("\n")
            self.out.flush()
            self.drawn = False


def _last_error_line(trial, width: int = 140) -> str:
    """The last line of the trial's error file (Tune writes it beside the trial before the
    retry; on shared storage it may not be synced yet), cut to `width`; for a worker Ray's
    memory monitor killed, that and the node's memory use."""
    try:
        local = trial.error_file
        text = Path(local).read_text() if local and Path(local).is_file() else trial.get_error()
    except OSError:
        text = ""
    usage = memory_usage(str(text))
    if usage is not None:  # Ray's last line is advice on its memory monitor
        return f"its worker was killed by Ray's memory monitor ({usage})"
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[-1] if lines else "no error text saved"
    return line if len(line) <= width else line[:width - 1] + "…"
