"""Driver load: how fast Tune's driver takes packed results while the MLflow recorder records them.

The setting: N packs of K members in flight at once (`--packs`, `--members`), each a Tune trial
of a trainable that does no training: it reports `--epochs` results as fast as Tune takes them,
each carrying every member's per-epoch metrics (what `pack_trial.train_pack` reports). The trial
configs are real ones (`search_spaces/smoke.yaml` with one optimizer, depth 2 and N × K seeds,
packed by `packs.pack_configs`), so the recorder makes one MLflow run per member with its params
and tags, as in a study. The driver runs in this process with the harness' own callbacks and
environment (`runner.study_callbacks`: the MLflow recorder, the progress line, Tune's
result.json; `runner.DRIVER_ENVIRONMENT`), on an embedded Ray; every trial asks for 0.01 CPU so that
all N packs run at once.

Measured, in the driver: the time of each of Tune's `_process_trial_result` calls (scheduler,
search algorithm and every callback's `on_trial_result`: what Tune warns about as
"process_trial_result took ..."), its median and 95th percentile; results per second over the
run (from the start of the first result's processing to the end of the last's); the wall time of the whole `fit` (including the recorder's final
flush). Then the store is checked: every member's run holds every epoch of every metric once
(`duplicates`, `missing`).

    python benchmarks/driver_load.py [--packs 64] [--members 16] [--epochs 10]
        [--tracking-uri URI] [--json PATH]

Without `--tracking-uri`, a new SQLite store in a temporary folder (counted with SQL on it; for
another URI, through MlflowClient). To compare code versions, run the script with
`PYTHONPATH=<an export of the other commit>` (the script itself only needs `harness.study`'s
recorder, progress printer, packs and space).
`--json PATH` writes {"rows": [{"packs", "members", "epochs", "results", "results_per_s",
"p50_s", "p95_s", "max_s", "fit_s", "runs", "duplicates", "missing"}], "setup": {...}}.
Target: 64 packs of 16 in flight, p95 ≤ 0.1 s per result on SQLite, every metric recorded once.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def report_pack(config):
    """The trainable: every epoch, each member's metrics, as fast as Tune takes them."""
    from ray import tune

    trial = config["trial"]
    epochs = trial["members"][0]["epochs"]
    for epoch in range(1, epochs + 1):
        members = {}
        for i, member in enumerate(trial["members"]):
            value = 1.0 / (epoch + i)
            members[member["trial_key"]] = {
                "epoch": epoch, "train_loss": value, "train_accuracy": 1 - value,
                "val_loss": value, "val_accuracy": 1 - value, "epoch_time_s": 0.01,
                "images_per_s": 1000.0,
                **({"status": "finished"} if epoch == epochs else {})}
        tune.report({"epoch": epoch, "members": members})


def pack_configs_for(packs: int, members: int, epochs: int, workdir: Path) -> list[dict]:
    from harness.study.packs import pack_configs
    from harness.study.space import parse_space, trial_configs

    data = yaml.safe_load((REPO / "search_spaces" / "smoke.yaml").read_text())
    data.update(name="driverload", epochs=epochs, seeds=list(range(packs * members)),
                model={"family": "dense", "depths": [2]},
                optimizers=[{"base": "adam", "learning_rate": 1.0e-3}])
    path = workdir / "driverload.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = parse_space(data, path)
    configs = pack_configs(trial_configs(spec), members)
    assert len(configs) == packs, (len(configs), packs)
    return spec, configs


def timed_result_processing() -> list[tuple[float, float]]:
    """Wrap Tune's `_process_trial_result` to time each call; the list of (start, seconds) it
    appends to."""
    from ray.tune.execution.tune_controller import TuneController

    times: list[tuple[float, float]] = []
    original = TuneController._process_trial_result

    def timed(self, trial, result):
        started = time.perf_counter()
        try:
            return original(self, trial, result)
        finally:
            times.append((started, time.perf_counter() - started))

    TuneController._process_trial_result = timed
    return times


def check_store(uri: str, experiment: str, epochs: int, runs_expected: int) -> dict:
    """Runs, duplicated (run, metric, step) entries and missing ones, per-epoch metrics only."""
    from harness.study.run_schema import EPOCH_METRICS

    expected = runs_expected * epochs * len(EPOCH_METRICS)
    if uri.startswith("sqlite:///"):
        names = ",".join(f"'{m}'" for m in EPOCH_METRICS)
        with sqlite3.connect(uri.removeprefix("sqlite:///")) as db:
            runs = db.execute("SELECT COUNT(*) FROM runs r JOIN experiments e ON "
                              "r.experiment_id = e.experiment_id WHERE e.name = ?",
                              (experiment,)).fetchone()[0]
            rows = db.execute(f"SELECT COUNT(*), COUNT(DISTINCT m.run_uuid || '/' || m.key || '/' "
                              f"|| m.step) FROM metrics m JOIN runs r ON m.run_uuid = r.run_uuid "
                              f"JOIN experiments e ON r.experiment_id = e.experiment_id "
                              f"WHERE e.name = ? AND m.key IN ({names})",
                              (experiment,)).fetchone()
        total, distinct = rows
    else:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                                   max_results=50000)
        runs = len(found)
        steps = [(r.info.run_id, m, p.step) for r in found for m in EPOCH_METRICS
                 for p in client.get_metric_history(r.info.run_id, m)]
        total, distinct = len(steps), len(set(steps))
    return {"runs": runs, "duplicates": total - distinct, "missing": expected - distinct}


def run(packs: int, members: int, epochs: int, uri: str, workdir: Path) -> dict:
    import ray
    from ray import tune

    from harness.study import runner

    spec, configs = pack_configs_for(packs, members, epochs, workdir)
    times = timed_result_processing()
    args = (uri, spec.experiment_name, spec.name, packs * members, epochs)
    if hasattr(runner, "study_callbacks"):  # this commit's driver
        for key, value in runner.DRIVER_ENVIRONMENT.items():
            os.environ.setdefault(key, value)
        callbacks = runner.study_callbacks(*args, stream=io.StringIO())
    else:  # an earlier commit's (PYTHONPATH): its recorder and progress line, Tune's loggers
        from harness.study.progress import ProgressPrinter
        from harness.study.tracking import MLflowRecorder

        callbacks = [MLflowRecorder(*args[:3]), ProgressPrinter(*args[3:], stream=io.StringIO())]
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    tuner = tune.Tuner(
        tune.with_resources(report_pack, {"cpu": 0.01}),
        param_space={"trial": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(max_concurrent_trials=packs),
        run_config=tune.RunConfig(name="driverload", storage_path=str(workdir / "results"),
                                  verbose=0, callbacks=callbacks),
    )
    started = time.perf_counter()
    results = tuner.fit()
    fit_s = time.perf_counter() - started
    ray.shutdown()
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise SystemExit(f"driver_load: {len(errors)} trials failed: {errors[0]}")
    ordered = sorted(seconds for _, seconds in times)
    stamps = len(times)
    span = times[-1][0] + times[-1][1] - times[0][0]
    return {
        "packs": packs, "members": members, "epochs": epochs, "results": stamps,
        "results_per_s": stamps / span,
        "p50_s": statistics.median(ordered), "p95_s": ordered[int(0.95 * (stamps - 1))],
        "max_s": ordered[-1], "fit_s": fit_s,
        **check_store(uri, spec.experiment_name, epochs, packs * members),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, default=64, help="packs in flight (Tune trials)")
    parser.add_argument("--members", type=int, default=16, help="members per pack")
    parser.add_argument("--epochs", type=int, default=10, help="results per pack")
    parser.add_argument("--tracking-uri", help="MLflow store (default: a new SQLite file)")
    parser.add_argument("--json", type=Path, help="write the rows and setup here")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        uri = args.tracking_uri or f"sqlite:///{workdir}/mlflow.db"
        row = run(args.packs, args.members, args.epochs, uri, workdir)
    import harness

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(harness.__file__).parent).stdout.strip()
    setup = {"store": "sqlite" if not args.tracking_uri else args.tracking_uri,
             "harness": str(Path(harness.__file__).parent), "commit": commit or "unknown",
             "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
             "load": os.getloadavg()[0]}
    print(f"{'packs':>6} {'members':>8} {'results':>8} {'results/s':>10} {'p50 s':>8} "
          f"{'p95 s':>8} {'max s':>8} {'fit s':>8} {'runs':>6} {'dup':>5} {'missing':>8}")
    print(f"{row['packs']:>6} {row['members']:>8} {row['results']:>8} "
          f"{row['results_per_s']:>10.1f} {row['p50_s']:>8.4f} {row['p95_s']:>8.4f} "
          f"{row['max_s']:>8.3f} {row['fit_s']:>8.1f} {row['runs']:>6} {row['duplicates']:>5} "
          f"{row['missing']:>8}")
    print(f"setup: {setup}")
    if args.json:
        args.json.write_text(json.dumps({"rows": [row], "setup": setup}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
