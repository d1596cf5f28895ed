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


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """One `MirroredStrategy` over the two logical CPUs, shared by every test.

    A second MirroredStrategy in the same process reuses collective instance keys, and its
    all-reduce then fails with "Shape mismatch in the collective instance" (seen when the model,
    data and optimizer tests ran in one pytest process), so tests never build their own.
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest.py must configure two logical CPUs"
    return tf.distribute.MirroredStrategy(devices)


@pytest.fixture(scope="module")
def worker():
    """A local Ray and one trial worker process for a module's trials (`trainable_helpers`)."""
    import ray
    from trainable_helpers import start_worker

    yield start_worker()
    ray.shutdown()


@pytest.fixture(scope="module")
def workdir(request, tmp_path_factory):
    """A folder for a module's trials, their storage and MLflow store."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
