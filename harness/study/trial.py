"""One trial: train one (model, depth, optimizer, seed) config and report every epoch to Ray Tune.

`train_trial(config)` is the Ray Tune function trainable (config = one dict of
`space.trial_configs`). It
- trains on exactly the GPUs Ray gave it, under `MirroredStrategy` over them, capped to its
  share of a GPU's memory when it holds a fraction of one (`devices`), or on the default CPU
  strategy when there are none, real or visible (fake GPU ids on a test cluster run on CPU);
  the global batch is the per-replica batch × replicas;
- seeds Python, NumPy, TF/Keras, the data order and the optimizer noise from `config["seed"]`, so
  Adam and L-Adam with one seed start from the same weights and see the same batches;
- reports per epoch the metrics of `run_schema.EPOCH_METRICS` (+ epoch, status), the test metrics
  with the last epoch (not for a tuning trial of a tuned study: tuning sees validation only),
  and a checkpoint (model + optimizer state + epoch) every epoch but the last (a finished trial
  has nothing to resume; one whose last report was lost restarts from the epoch before);
- resumes from `tune.get_checkpoint()`: a retried trial continues at the next epoch with the same
  weights, optimizer state, noise stream and data order it would have had;
- ends as `diverged` (reported, not raised) when a loss is NaN or infinite.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from pathlib import Path

from harness.study import devices
from harness.study.run_schema import PHASE_TUNE, STATUS_DIVERGED, STATUS_FINISHED

MODEL_FILE = "model.keras"
STATE_FILE = "state.json"


def seed_everything(seed: int) -> None:
    import keras
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)  # Python, NumPy and the TF/Keras global generators


def open_trial_splits(config: dict, replicas: int = 1):
    """The trial's `Splits`: its dataset, global batch (per-replica batch × replicas), its seed's
    validation carve and data order."""
    from harness.data import open_splits

    return open_splits(
        config["dataset"],
        batch_size=config["batch_size"] * replicas,
        seed=config["seed"],
        validation_size=config["validation_size"],
        augment=config["augment"],
        standardize=config["standardize"],
        data_dir=config["data_dir"],
        limit=config["limit"],
        **config["dataset_options"],
    )


def build_trial_model(config: dict, splits):
    """The trial's freshly initialised model (initialised from the global seed: seed first)."""
    from harness.models import build_model

    return build_model(config["model"], depth=config["depth"], input_shape=splits.info.input_shape,
                       num_classes=splits.info.num_classes, **config["model_options"])


def make_optimizer(config: dict, steps_per_epoch: int, model):
    from harness.optimizers import OPTIMIZERS
    from harness.optimizers.schedules import from_spec

    optimizer = OPTIMIZERS[config["base_optimizer"]](
        learning_rate=from_spec(config["learning_rate"], config["lr_schedule"], steps_per_epoch),
        sigma=from_spec(config["sigma"], config["sigma_schedule"], steps_per_epoch),
        seed=config["seed"],
        layer_fraction=config["layer_fraction"],
        **config["hyper"],
    )
    if 0.0 < config["layer_fraction"] < 1.0:
        optimizer.resolve_layer_fraction(model)
    return optimizer


def _compile(model, optimizer, config: dict, replicas: int) -> None:
    import keras

    jit = config["jit_compile"]
    if replicas > 1:
        jit = False  # Keras cannot run XLA under MirroredStrategy
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit,
    )


def _save_checkpoint(model, state: dict, directory: Path) -> None:
    model.save(directory / MODEL_FILE)
    (directory / STATE_FILE).write_text(json.dumps(state))


def provenance(strategy, memory_limit_mb) -> dict:
    """Reported with a trial's first epoch; the recorder turns them into run tags."""
    import ray
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return {"devices": ",".join(names) or "CPU", "tensorflow_version": tf.__version__,
            "replicas": strategy.num_replicas_in_sync, "ray_gpu_ids": ",".join(
                str(i) for i in ray.get_gpu_ids()) or "none",
            "node_id": ray.get_runtime_context().get_node_id(),
            "gpu_memory_limit_mb": memory_limit_mb or "none"}


def _training_clock():
    """A Keras callback whose `.seconds` is the last epoch's training time, validation excluded."""
    import keras

    class TrainingClock(keras.callbacks.Callback):
        seconds = float("nan")

        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.seconds = time.perf_counter(), float("nan")

        def on_test_begin(self, logs=None):  # validation runs at the end of each fit epoch
            if self.seconds != self.seconds:
                self.seconds = time.perf_counter() - self.started

        def on_epoch_end(self, epoch, logs=None):
            if self.seconds != self.seconds:
                self.seconds = time.perf_counter() - self.started

    return TrainingClock()


def finite(*values) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def train_trial(tune_config: dict) -> None:
    """Ray Tune function trainable over the param space {"trial": config}; returns None."""
    import keras
    from ray import tune

    from harness.optimizers import register_all

    register_all()  # the classes load_model needs
    config = tune_config["trial"]
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if config["mixed_precision"] else "float32"
    )
    strategy, memory_limit = devices.strategy()
    replicas = strategy.num_replicas_in_sync
    seed_everything(config["seed"])

    splits = open_trial_splits(config, replicas)
    steps_per_epoch = splits.steps_per_epoch

    checkpoint = tune.get_checkpoint()
    with strategy.scope():
        if checkpoint is None:
            model = build_trial_model(config, splits)
            optimizer = make_optimizer(config, steps_per_epoch, model)
            start_epoch = 0
        else:
            with checkpoint.as_directory() as directory:
                model = keras.models.load_model(Path(directory) / MODEL_FILE)
                start_epoch = json.loads((Path(directory) / STATE_FILE).read_text())["epoch"]
            optimizer = model.optimizer
        _compile(model, optimizer, config, replicas)

    clock = _training_clock()
    for epoch in range(start_epoch + 1, config["epochs"] + 1):
        started = time.perf_counter()
        history = model.fit(splits.train(epoch), epochs=1, validation_data=splits.validation,
                            callbacks=[clock], verbose=0).history
        seconds = time.perf_counter() - started
        metrics = {
            "epoch": epoch,
            "train_loss": history["loss"][-1],
            "train_accuracy": history["accuracy"][-1],
            "val_loss": history.get("val_loss", [float("nan")])[-1],
            "val_accuracy": history.get("val_accuracy", [float("nan")])[-1],
            "epoch_time_s": seconds,
            "images_per_s": splits.num_train / clock.seconds,  # training only
        }
        if epoch == start_epoch + 1:
            metrics.update(provenance(strategy, memory_limit), resumed_from_epoch=start_epoch)
        if not finite(metrics["train_loss"]):
            tune.report({**metrics, "status": STATUS_DIVERGED})
            return
        if epoch == config["epochs"] and config.get("phase") == PHASE_TUNE:
            metrics["status"] = STATUS_FINISHED  # tuning never looks at the test split
        elif epoch == config["epochs"]:
            test_loss, test_accuracy = model.evaluate(splits.test, verbose=0)
            metrics.update(test_loss=test_loss, test_accuracy=test_accuracy,
                           status=STATUS_DIVERGED if not finite(test_loss) else STATUS_FINISHED)
        if epoch == config["epochs"]:  # nothing left to resume: no checkpoint to write
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as directory:
            _save_checkpoint(model, {"epoch": epoch}, Path(directory))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
