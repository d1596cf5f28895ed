"""Test set-up that must happen before TensorFlow initialises.

Two logical CPU devices let the tests run `tf.distribute.MirroredStrategy` with two replicas on
a CPU-only machine. TensorFlow only accepts this before its runtime starts, so it runs at import
time of this file (pytest imports conftest before any test module), not in a fixture.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
