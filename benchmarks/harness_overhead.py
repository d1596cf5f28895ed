"""What the harness costs: the same small trials by `harness run` vs plain Keras in one process.

Both sides train the same configs (dense net on synthetic MNIST-shaped data, Adam and L-Adam,
several seeds). The plain side is a loop in this process: build, compile, `fit`, `evaluate`.
The harness side is `run_study` on an embedded Ray, one trial at a time (the same work in
sequence), with MLflow logging and per-epoch checkpoints. Printed: wall times, the ratio, and
the fixed cost per trial ((harness − plain − study start) / trials) and per study (Ray start).
Target: ratio ≤ 1.10 for trials of about a minute, fixed cost < 2 s per trial.

    python benchmarks/harness_overhead.py [--train-size 20000] [--epochs 3] [--seeds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import harness  # noqa: F401  (quiets TensorFlow)


def _space(args) -> dict:
    return {
        "name": "overhead",
        "dataset": {"name": "synthetic", "batch_size": 128, "validation_size": 1000,
                    "options": {"train_size": args.train_size, "test_size": 1000}},
        "model": {"family": "dense", "depths": [args.depth]},
        "optimizers": [{"base": "adam", "learning_rate": 1e-3},
                       {"base": "adam", "learning_rate": 1e-3, "sigma": 1e-3}],
        "seeds": args.seeds,
        "epochs": args.epochs,
        "max_concurrent_trials": 1,
        "max_failures": 0,
    }


def plain_keras(configs) -> float:
    import keras

    from harness.data import open_splits
    from harness.models import build_model
    from harness.optimizers import LAdam

    start = time.perf_counter()
    for c in configs:
        keras.backend.clear_session()
        keras.utils.set_random_seed(c["seed"])
        splits = open_splits(c["dataset"], c["batch_size"], c["seed"],
                             validation_size=c["validation_size"], **c["dataset_options"])
        model = build_model(c["model"], c["depth"], splits.info.input_shape,
                            splits.info.num_classes)
        model.compile(optimizer=LAdam(c["learning_rate"], sigma=c["sigma"], seed=c["seed"]),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        for epoch in range(1, c["epochs"] + 1):
            model.fit(splits.train(epoch), validation_data=splits.validation, verbose=0)
        model.evaluate(splits.test, verbose=0)
    return time.perf_counter() - start


def harness_run(spec, workdir: str) -> tuple[float, float]:
    import ray

    from harness.study.runner import run_study

    start = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - start
    run_study(spec, tracking_uri=f"sqlite:///{workdir}/mlflow.db",
              storage_path=f"{workdir}/results", out=lambda line: None)
    total = time.perf_counter() - start
    ray.shutdown()
    return total, ray_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()

    from harness.study.space import parse_space, trial_configs

    spec = parse_space(_space(args), "benchmark")
    configs = trial_configs(spec)
    plain = plain_keras(configs)
    with tempfile.TemporaryDirectory() as workdir:
        total, ray_start = harness_run(spec, workdir)
    n = len(configs)
    per_trial = (total - plain - ray_start) / n
    print(f"\n{n} trials: dense-{args.depth}, synthetic {args.train_size} images, "
          f"{args.epochs} epochs, one trial at a time")
    print(f"{'':28s}{'seconds':>10s}")
    print(f"{'plain Keras, one process':28s}{plain:10.1f}")
    print(f"{'harness run (Ray + MLflow)':28s}{total:10.1f}")
    print(f"{'ratio harness / plain':28s}{total / plain:10.2f}")
    print(f"{'plain seconds per trial':28s}{plain / n:10.1f}")
    print(f"{'fixed cost per study':28s}{ray_start:10.1f}   (embedded Ray start)")
    print(f"{'fixed cost per trial':28s}{per_trial:10.1f}   (process, TF import, MLflow, ckpt)")


if __name__ == "__main__":
    main()
