"""How close a study of many short trials comes to the ideal: `harness run` vs the same trainings
in plain Keras spread over the same slots.

The study: `--trials` short trials (dense net, synthetic data, Adam and L-Adam over seeds), run by
`run_study` on a fresh embedded Ray with `--slots` trials at once (Ray start included: a user
waits for it too). The ideal: every trial's plain-Keras time (`plain_keras.train`, measured one
after the other in this process, with the same pinned TensorFlow threads) spread over the same
number of slots: max(sum / slots, longest), a bound no scheduler can beat even without any
per-trial or per-study cost (so the efficiency below is, if anything, understated). The two alternate for `--repeats` rounds; the table
gives median and spread (min-max).

- efficiency = ideal time / actual time (target ≥ 0.8, issue 13);
- trials per hour = trials / actual time.

`--tracking-uri` sends the records to an MLflow server instead of a fresh SQLite file, e.g. the
cluster's secured server started on loopback (`MLFLOW_HOST=127.0.0.1 cluster/mlflow-server.sh
start`, credentials in ~/.mlflow/credentials), to compare a secured server with SQLite.

    python benchmarks/study_throughput.py [--trials 32] [--slots 2] [--epochs 4] [--repeats 2]
        [--tracking-uri URI] [--json PATH]

`--json PATH` writes {"efficiency", "trials_per_hour", "rounds": [...], "setup": {...}}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plain_keras  # noqa: E402


def _space(args, name: str) -> dict:
    return {
        "name": name,
        "dataset": {"name": "synthetic", "batch_size": 64, "validation_size": 500,
                    "options": {"train_size": args.train_size, "test_size": 500}},
        "model": {"family": "dense", "depths": [args.depth], "options": {"width": 64}},
        "optimizers": [{"base": "adam", "learning_rate": 1e-3},
                       {"base": "adam", "learning_rate": 1e-3, "sigma": 1e-3}],
        "seeds": args.trials // 2,
        "epochs": args.epochs,
        "max_concurrent_trials": args.slots,
        "resources": {"cpu": 1},
        "max_failures": 0,
    }


def ideal_time(durations: list[float], slots: int) -> float:
    """The shortest time in which `slots` slots can run trials of these durations."""
    return max(sum(durations) / slots, max(durations))


def harness_run(spec, tracking_uri: str | None, workdir: str) -> float:
    import ray

    from harness.study.runner import run_study

    start = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    run_study(spec, tracking_uri=tracking_uri or f"sqlite:///{workdir}/mlflow.db",
              storage_path=f"{workdir}/results", out=lambda line: None)
    total = time.perf_counter() - start
    ray.shutdown()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--slots", type=int, default=2, help="trials at once (one CPU each)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="TF intra/inter-op threads")
    parser.add_argument("--tracking-uri", help="MLflow server; default: a fresh SQLite file")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args()
    plain_keras.pin_threads(args.threads)

    from harness.study.space import parse_space, trial_configs

    configs = trial_configs(parse_space(_space(args, "throughput"), Path("benchmark")))
    plain_keras.train(configs[0])  # warm this process as a worker's first trial is
    rounds = []
    for _ in range(args.repeats):
        ideal = ideal_time([plain_keras.train(c) for c in configs], args.slots)
        # a new study name per round: a server keeps every round's runs
        spec = parse_space(_space(args, f"throughput-{uuid.uuid4().hex[:8]}"), Path("benchmark"))
        with tempfile.TemporaryDirectory() as workdir:
            actual = harness_run(spec, args.tracking_uri, workdir)
        rounds.append({"ideal_s": ideal, "actual_s": actual, "efficiency": ideal / actual,
                       "trials_per_hour": len(configs) / actual * 3600})
    column = {k: [r[k] for r in rounds] for k in rounds[0]}

    def spread(values) -> str:
        return f"{statistics.median(values):10.2f}  [{min(values):.2f}, {max(values):.2f}]"

    print(f"\n{len(configs)} trials (dense-{args.depth}, synthetic {args.train_size} images, "
          f"{args.epochs} epochs), {args.slots} at once, {args.threads} TF thread(s), tracking "
          f"{args.tracking_uri or 'SQLite'}; median [min, max] of {args.repeats} rounds")
    print(f"{'':28s}{'median':>10s}  spread")
    print(f"{'ideal (plain Keras) (s)':28s}{spread(column['ideal_s'])}")
    print(f"{'harness run (s)':28s}{spread(column['actual_s'])}")
    print(f"{'efficiency ideal / actual':28s}{spread(column['efficiency'])}")
    print(f"{'trials per hour':28s}{spread(column['trials_per_hour'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"efficiency": statistics.median(column["efficiency"]),
             "trials_per_hour": statistics.median(column["trials_per_hour"]),
             "rounds": rounds, "setup": vars(args) | {"trials": len(configs)}}, indent=2))


if __name__ == "__main__":
    main()
