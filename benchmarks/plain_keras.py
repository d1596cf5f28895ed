"""The reference the harness benchmarks compare with: the same trials trained in plain Keras.

`pin_threads(n)` fixes TensorFlow's thread pools through the environment before TensorFlow is
imported, so this process and the Ray workers it starts (they inherit the environment) train
with the same number of threads. `train(config)` trains one trial config of
`harness.study.space.trial_config` as a user would without the harness: build, compile, one `fit`
per epoch with validation, `evaluate` on the test split; it returns the seconds it took.
Dataset arrays come from the harness' own per-process read cache, as in a harness worker.
"""

from __future__ import annotations

import os
import time


def pin_threads(threads: int) -> None:
    """TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS for this process and its children."""
    if "tensorflow" in __import__("sys").modules:
        raise RuntimeError("pin_threads must run before TensorFlow is imported")
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def train(config: dict) -> float:
    """Seconds to train and test one trial config in this process."""
    import keras

    from harness.data import open_splits
    from harness.models import build_model
    from harness.optimizers import OPTIMIZERS

    start = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(config["seed"])
    splits = open_splits(config["dataset"], config["batch_size"], config["seed"],
                         validation_size=config["validation_size"], limit=config["limit"],
                         **config["dataset_options"])
    model = build_model(config["model"], config["depth"], splits.info.input_shape,
                        splits.info.num_classes, **config["model_options"])
    optimizer = OPTIMIZERS[config["base_optimizer"]](
        config["learning_rate"], sigma=config["sigma"], seed=config["seed"], **config["hyper"])
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    for epoch in range(1, config["epochs"] + 1):
        model.fit(splits.train(epoch), validation_data=splits.validation, verbose=0)
    model.evaluate(splits.test, verbose=0)
    return time.perf_counter() - start
