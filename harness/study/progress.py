"""Progress of a study on the terminal: trials done/total, running, failed, best so far, ETA.

A Tune callback that prints one line whenever a trial starts, finishes an epoch (at most every
`interval_s`), ends or fails. ETA = elapsed / finished epochs × remaining epochs of the grid
(trials that ended early count as done).
"""

from __future__ import annotations

import time

from ray import tune

from harness.study.run_schema import STATUS_DIVERGED


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


class ProgressPrinter(tune.Callback):
    def __init__(self, total_trials: int, epochs: int, metric: str = "val_accuracy",
                 interval_s: float = 10.0, out=print):
        self.total, self.epochs, self.metric = total_trials, epochs, metric
        self.interval_s, self.out = interval_s, out
        self._reset()

    def _reset(self):
        self.started = time.monotonic()
        self.last_print = 0.0
        self.epochs_done: dict[str, int] = {}
        self.ended: set[str] = set()
        self.failed = self.diverged = 0
        self.best: tuple[float, str] | None = None

    def __getstate__(self):
        return {k: self.__dict__[k] for k in ("total", "epochs", "metric", "interval_s")}

    def __setstate__(self, state):
        self.__dict__.update(state, out=print)
        self._reset()

    def line(self, running: int) -> str:
        done = len(self.ended)
        elapsed = time.monotonic() - self.started
        finished_epochs = sum(self.epochs_done.values())
        remaining = sum(self.epochs - e for k, e in self.epochs_done.items() if k not in self.ended)
        remaining += (self.total - len(self.epochs_done)) * self.epochs
        eta = _duration(elapsed / finished_epochs * remaining) if finished_epochs else "?"
        best = f"{self.best[0]:.4f} ({self.best[1]})" if self.best else "-"
        return (f"[{_duration(elapsed)}] trials {done}/{self.total} done, {running} running, "
                f"{self.failed} failed, {self.diverged} diverged | best {self.metric} {best} "
                f"| ETA {eta}")

    @staticmethod
    def _running(trials) -> int:
        return sum(t.status == "RUNNING" for t in trials)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        key = trial.config["trial"]["trial_key"]
        self.epochs_done[key] = max(self.epochs_done.get(key, 0), int(result.get("epoch", 0)))
        value = result.get(self.metric)
        if isinstance(value, float) and value == value and (self.best is None or value > self.best[0]):
            self.best = (value, key)
        if result.get("status") == STATUS_DIVERGED:
            self.diverged += 1
        if time.monotonic() - self.last_print >= self.interval_s:
            self.last_print = time.monotonic()
            self.out(self.line(self._running(trials)))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended.add(trial.config["trial"]["trial_key"])
        self.out(self.line(self._running(trials)))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended.add(trial.config["trial"]["trial_key"])
        self.failed += 1
        self.out(self.line(self._running(trials)) + f"  <- {trial.config['trial']['trial_key']} failed")
