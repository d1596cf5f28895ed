"""What the harness costs: the same small trials by `harness run` vs plain Keras in one process.

Both sides train the same configs (dense net on synthetic MNIST-shaped data, Adam and L-Adam,
several seeds) with TensorFlow pinned to the same thread counts. The plain side is a loop in
this process (`plain_keras.train`: build, compile, `fit` per epoch, `evaluate`). The harness
side is `run_study` on a fresh embedded Ray, one trial at a time (the same work in sequence),
with MLflow logging and per-epoch checkpoints. The two sides alternate for `--repeats` rounds
(plain, harness, plain, harness, ...) so background load hits both alike; the table gives the
median over rounds and the spread (min-max).

Each round runs the study twice, with N trials and with N_small trials, so that what a study
pays once and what each trial pays can be told apart:

- fixed cost per trial = slope of (harness − plain) over the trial count,
  ((H_N − P_N) − (H_small − P_small)) / (N − N_small): Tune scheduling, MLflow writes,
  checkpoints, the trial's set-up — what every further trial adds;
- fixed cost per study = (H_N − P_N) − N × that: the embedded Ray's start, the first worker's
  start and TensorFlow import, the MLflow experiment;
- ratio = H_N / P_N, the whole study (per-study cost included), and the per-trial ratio
  1 + fixed cost per trial / (P_N / N), what a long study tends to.
Targets (issue 13): ratio ≤ 1.10, fixed cost ≤ 1 s per trial.

    python benchmarks/harness_overhead.py [--train-size 20000] [--epochs 3] [--seeds 4]
        [--small-seeds 1] [--repeats 2] [--threads 1] [--json PATH]

`--json PATH` writes {"ratio", "ratio_per_trial", "fixed_s_per_trial", "fixed_s_per_study",
"rounds": [...], "setup": {...}}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plain_keras  # noqa: E402


def _space(args, seeds: int) -> dict:
    return {
        "name": "overhead",
        "dataset": {"name": "synthetic", "batch_size": 128, "validation_size": 1000,
                    "options": {"train_size": args.train_size, "test_size": 1000}},
        "model": {"family": "dense", "depths": [args.depth]},
        "optimizers": [{"base": "adam", "learning_rate": 1e-3},
                       {"base": "adam", "learning_rate": 1e-3, "sigma": 1e-3}],
        "seeds": seeds,
        "epochs": args.epochs,
        "max_concurrent_trials": 1,
        "max_failures": 0,
    }


def harness_run(spec, workdir: str) -> float:
    """Wall seconds of the whole study on a fresh embedded Ray (its start included)."""
    import ray

    from harness.study.runner import run_study

    start = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    run_study(spec, tracking_uri=f"sqlite:///{workdir}/mlflow.db",
              storage_path=f"{workdir}/results", out=lambda line: None)
    total = time.perf_counter() - start
    ray.shutdown()
    return total


def _spread(values) -> str:
    return f"{statistics.median(values):8.2f}  [{min(values):.2f}, {max(values):.2f}]"


def one_round(studies: dict) -> dict:
    """Plain and harness for both study sizes, interleaved; the round's figures."""
    times = {}
    for size, (spec, configs) in studies.items():
        times[size, "plain"] = sum(plain_keras.train(c) for c in configs)
        with tempfile.TemporaryDirectory() as workdir:
            times[size, "harness"] = harness_run(spec, workdir)
    n_small, n = len(studies["small"][1]), len(studies["big"][1])
    extra = {size: times[size, "harness"] - times[size, "plain"] for size in studies}
    per_trial = (extra["big"] - extra["small"]) / (n - n_small)
    plain_per_trial = times["big", "plain"] / n
    return {"plain_s": times["big", "plain"], "harness_s": times["big", "harness"],
            "plain_small_s": times["small", "plain"], "harness_small_s": times["small", "harness"],
            "ratio": times["big", "harness"] / times["big", "plain"],
            "fixed_s_per_trial": per_trial, "fixed_s_per_study": extra["big"] - n * per_trial,
            "ratio_per_trial": 1 + per_trial / plain_per_trial}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=4, help="N = 2 × seeds trials")
    parser.add_argument("--small-seeds", type=int, default=1, help="N_small = 2 × this")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="TF intra/inter-op threads")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args()
    plain_keras.pin_threads(args.threads)

    from harness.study.space import parse_space, trial_configs

    studies = {}
    for size, seeds in (("small", args.small_seeds), ("big", args.seeds)):
        spec = parse_space(_space(args, seeds), Path("benchmark"))
        studies[size] = (spec, trial_configs(spec))
    n = len(studies["big"][1])
    plain_keras.train(studies["big"][1][0])  # warm this process as a worker's first trial is
    rounds = [one_round(studies) for _ in range(args.repeats)]
    column = {k: [r[k] for r in rounds] for k in rounds[0]}
    print(f"\n{n} trials (and {len(studies['small'][1])} for the slope): dense-{args.depth}, "
          f"synthetic {args.train_size} images, {args.epochs} epochs, one trial at a time; "
          f"{args.threads} TF thread(s); median [min, max] of {args.repeats} interleaved rounds")
    print(f"{'':32s}{'median':>8s}  spread")
    for label, key in (("plain Keras, one process (s)", "plain_s"),
                       ("harness run (s)", "harness_s"),
                       ("ratio harness / plain", "ratio"),
                       ("ratio per trial (long study)", "ratio_per_trial"),
                       ("fixed cost per study (s)", "fixed_s_per_study"),
                       ("fixed cost per trial (s)", "fixed_s_per_trial")):
        print(f"{label:32s}{_spread(column[key])}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {key: statistics.median(column[key]) for key in (
                "ratio", "ratio_per_trial", "fixed_s_per_trial", "fixed_s_per_study")}
            | {"rounds": rounds, "setup": vars(args) | {"trials": n}}, indent=2))


if __name__ == "__main__":
    main()
